"""Each mixture at its own tuned weight by default (the decoder's alpha and the kNN-LM's lambda, per base, from
memdec.json; the published alpha for hub presets; UNTUNED_MEMORY without memdec.json), one switch that locks both to
one alpha, and every memory saying what its corpus is: in the engine, the CLI, and on a real server."""
import json
import sys
import urllib.request

import pytest
import torch
from gradio_client import Client

from app.core.settings import UNTUNED_MEMORY, Settings
from app.serve import compare, generate, plots, presets, score
from app.serve.engine import InputError, Memory, Weights

PROMPT = "cell protein gene membrane"
TUNED = {"tiny-a": 0.35, "tiny-b": 0.7}  # the kNN-LM's lambda per base in the tiny memories' memdec.json (conftest)


def test_memory_reads_every_tuned_value_per_base(tmp_path):
    (tmp_path / "memdec.json").write_text(json.dumps({
        "alpha": 0.9, "alpha_by_base": {"small": 0.8}, "knn_temperature": 8.0, "knn_k": 128, "block": 64,
        "knn_by_base": {"small": {"lambda": 0.6, "temperature": 4.0, "knn_k": 32, "block": 96},
                        "medium": {"lambda": 0.4}},
        "beta": 0.5, "tuned_on": "validation split", "key_model": "models/base-large",
        "label": "licences and statutes"}))
    memory = Memory.from_folder(tmp_path, None, "fallback label")
    assert memory.knows == "licences and statutes"
    small, medium, large = (memory.defaults(b) for b in ("small", "medium", "large"))
    assert (small.alpha, small.knn_lambda, small.temperature, small.k, small.block) == (0.8, 0.6, 4.0, 32, 96)
    assert (medium.alpha, medium.knn_lambda, medium.temperature, medium.k, medium.block) == (0.9, 0.4, 8.0, 128, 64)
    assert (large.alpha, large.knn_lambda) == (0.9, 0.9)  # nothing tuned for it: the kNN-LM falls back to alpha


def test_fallbacks_without_memdec_json_and_for_hub_presets(tmp_path):
    plain = Memory.from_folder(tmp_path, None, "what it knows").defaults("any")
    assert (plain.alpha, plain.knn_lambda, plain.k, plain.temperature, plain.block) == (
        UNTUNED_MEMORY["alpha"], UNTUNED_MEMORY["alpha"], UNTUNED_MEMORY["knn_k"], UNTUNED_MEMORY["knn_temperature"],
        Settings.block)
    assert Memory.from_folder(tmp_path, None, "what it knows").knows == "what it knows"
    gpt2 = presets.PRESETS["gpt2-wikitext"].memories["wikitext"]
    assert [gpt2.defaults(b).knn_lambda for b in ("gpt2", "gpt2-xl")] == [0.8, 0.55]  # the published alpha
    assert presets.PRESETS["qwen2.5-law"].memories["law"].defaults("Qwen2.5-0.5B").knn_lambda == 0.6


def test_embedded_memories_say_what_they_know():
    embedded = presets.embedded().memories
    for domain, words in (("law", "licence"), ("finance", "Factbook"), ("biomed", "Gene Ontology")):
        if domain in embedded:
            assert words in embedded[domain].knows, domain


def test_engine_weights(engine):
    for base, lam in TUNED.items():
        assert engine.weights(base, "bio") == Weights(0.5, lam)
    assert engine.weights("tiny-b", "bio", alpha=0.2) == Weights(0.2, 0.7)  # alpha is the decoder's only
    assert engine.weights("tiny-b", "bio", knn_lambda=0.1) == Weights(0.5, 0.1)
    assert engine.weights("tiny-b", "bio", alpha=0.2, lock_alpha=True) == Weights(0.2, 0.2, True)
    assert engine.weights("tiny-b", "bio", lock_alpha=True) == Weights(0.5, 0.5, True)
    # the lock rule, the same for the page, the API and the CLI: locked, lambda is not read
    assert engine.weights(None, None, alpha=0.2, knn_lambda=0.9, lock_alpha=True) == Weights(0.2, 0.2, True)
    with pytest.raises(InputError, match="knn_lambda must be a number from 0.0 to 1.0"):
        engine.weights(None, None, knn_lambda=1.5)


def test_each_mixture_is_mixed_at_its_own_weight(engine):
    resolved = engine.resolve(base="tiny-b")
    nt, w = compare.next_token(engine, resolved, PROMPT), resolved.weights
    dists = compare.mixtures(nt, w)
    assert torch.allclose(dists["mix_memdec"], 0.5 * nt.p_mem + 0.5 * nt.p_base, atol=1e-7)
    assert torch.allclose(dists["mix_knn"], 0.7 * nt.p_knn + 0.3 * nt.p_base, atol=1e-7)
    t = compare.teach(nt, w)
    assert t["knn"]["p_mix"] == pytest.approx(0.7 * t["knn"]["p_knn"] + 0.3 * t["knn"]["p_base"], rel=1e-6)
    s = score.summary(score.score(engine, resolved, PROMPT), w)
    for token in s["tokens"]:
        assert token["mix_knn"] == pytest.approx(0.7 * token["knn"] + 0.3 * token["base"], rel=1e-6)
        assert token["mix_memdec"] == pytest.approx(0.5 * token["memdec"] + 0.5 * token["base"], rel=1e-6)
    gen = generate.generate(engine, resolved, PROMPT, max_new_tokens=2)
    assert (gen["alpha"], gen["knn_lambda"], gen["lock_alpha"]) == (0.5, 0.7, False)


def test_score_marks_both_tuned_points(engine):
    s = score.score(engine, engine.resolve(base="tiny-a", domain="law"), "licence software copyright warranty")
    summary = score.summary(s, 0.9)  # whatever the sliders say, the marks are the tuned weights
    tokens = summary["tokens"]
    for mixture, other, weight in (("mix_memdec", "memdec", 0.5), ("mix_knn", "knn", 0.35)):
        probs = torch.tensor([weight * t[other] + (1 - weight) * t["base"] for t in tokens], dtype=torch.float64)
        assert summary["tuned"][mixture]["weight"] == weight
        assert summary["tuned"][mixture]["perplexity"] == pytest.approx(float(torch.exp(-probs.log().mean())), rel=1e-5)
    figure = plots.perplexity_vs_alpha(summary)
    stars = [(t.x[0], t.name) for t in figure.data if t.marker.symbol == "star"]
    assert stars == [(0.5, "tuned α = 0.5"), (0.35, "tuned λ = 0.35")]


def test_cli_takes_the_switch_and_lists_memories(tiny_models, monkeypatch, capsys):
    """The command line as a user types it, run in this process (its parsing and printing are the point)."""
    from app.serve import cli as command

    memory = tiny_models["memories"]["bio"]
    models = ["--model", f"tiny-a={tiny_models['bases']['tiny-a']}",
              "--memory", f"bio={memory.decoder},{memory.corpus}"]

    def cli(*args):
        monkeypatch.setattr(sys, "argv", ["app.serve.cli", *args, *models])
        capsys.readouterr()
        command.run()
        return json.loads(capsys.readouterr().out)

    fair = cli("compare", PROMPT)
    assert (fair["alpha"], fair["knn_lambda"], fair["lock_alpha"]) == (0.5, 0.35, False)
    locked = cli("score", PROMPT, "--alpha", "0.3", "--lock-alpha")
    assert (locked["alpha"], locked["knn_lambda"], locked["lock_alpha"]) == (0.3, 0.3, True)
    assert locked["tuned"]["mix_knn"]["weight"] == 0.35
    listed = cli("memories")
    assert listed == [{"name": "bio", "label": "bio: made-up bio word lists", "knows": "made-up bio word lists",
                       "live_knn": True, "defaults": {"alpha": 0.5, "knn_lambda": 0.35, "k": 16, "temperature": 5.0,
                                                      "block": Settings.block}}]


# --- on a real server -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False)


def test_api_mixes_each_at_its_tuned_weight_per_base(client, engine):
    for base, lam in TUNED.items():
        out = client.predict(PROMPT, base=base, api_name="/compare")
        assert (out["alpha"], out["knn_lambda"], out["lock_alpha"]) == (0.5, lam, False)
        for row in out["axis"]:
            assert row["mix_knn"] == pytest.approx(lam * row["knn"] + (1 - lam) * row["base"], abs=1e-7)
            assert row["mix_memdec"] == pytest.approx(0.5 * row["memdec"] + 0.5 * row["base"], abs=1e-7)
    gen = client.predict(PROMPT, base="tiny-b", max_new_tokens=2, api_name="/generate")
    assert (gen["alpha"], gen["knn_lambda"]) == (0.5, 0.7)


def test_api_lock_switch(client):
    out = client.predict(PROMPT, alpha=0.25, lock_alpha=True, api_name="/compare")
    assert (out["alpha"], out["knn_lambda"], out["lock_alpha"]) == (0.25, 0.25, True)
    for row in out["axis"]:
        assert row["mix_knn"] == pytest.approx(0.25 * row["knn"] + 0.75 * row["base"], abs=1e-7)
    scored = client.predict(PROMPT, alpha=0.25, lock_alpha=True, api_name="/score")
    assert (scored["knn_lambda"], scored["tuned"]["mix_knn"]["weight"]) == (0.25, 0.35)
    locked = client.predict(PROMPT, alpha=0.25, knn_lambda=0.8, lock_alpha=True, api_name="/compare")
    assert (locked["alpha"], locked["knn_lambda"]) == (0.25, 0.25)  # locked, as on the page: lambda is not read
    with pytest.raises(Exception, match="knn_lambda must be"):
        client.predict(PROMPT, alpha=0.25, knn_lambda=1.8, lock_alpha=True, api_name="/compare")
    with pytest.raises(Exception, match="knn_lambda must be"):
        client.predict(PROMPT, knn_lambda=-1, api_name="/score")
    assert client.predict(PROMPT, top_n=3, api_name="/compare")["knn_lambda"] == 0.35  # still serving


def test_api_lists_what_each_memory_knows(client, engine):
    listed = client.predict(base="tiny-b", api_name="/memories")
    assert [m["name"] for m in listed] == list(engine.memories)
    for m in listed:
        assert m["knows"] == f"made-up {m['name']} word lists" and m["label"] == f"{m['name']}: {m['knows']}"
        assert m["defaults"]["knn_lambda"] == 0.7 and m["defaults"]["alpha"] == 0.5 and m["live_knn"]
    with pytest.raises(Exception, match="unknown base"):
        client.predict(base="nope", api_name="/memories")


def test_page_labels_the_memory_menu_and_says_what_it_knows(server):
    """The page as served: the menu's choices carry each memory's corpus, and the line under it the chosen one's, its
    tuned weights and the warning about other legal and financial text."""
    config = json.load(urllib.request.urlopen(f"{server}config", timeout=30))
    by_id = {c["props"].get("elem_id"): c["props"] for c in config["components"] if c["props"].get("elem_id")}
    assert [list(choice) for choice in by_id["domain"]["choices"]] == [
        ["bio: made-up bio word lists", "bio"], ["law: made-up law word lists", "law"]]
    about = by_id["memory-knows"]["value"]
    assert "**bio** knows made-up bio word lists" in about and "λ = 0.35" in about and "α = 0.5" in about
    assert "far less on other legal or financial text" in about
    assert (by_id["knn-lambda"]["value"] == 0.35 and by_id["alpha"]["value"] == 0.5
            and by_id["lock-alpha"]["value"] is False)
