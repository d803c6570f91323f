"""The real app on a free port, called through gradio_client: every endpoint, its numbers, and bad input."""
import csv
import json

import pytest
import torch
from gradio_client import Client

from app.serve import compare, generate, score

PROMPT = "cell protein gene membrane"


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False)


def test_compare_endpoint_numbers(client, engine):
    out = client.predict(PROMPT, api_name="/compare")
    memory = engine.memories[engine.default_domain]
    assert (out["base"], out["domain"], out["alpha"], out["k"]) == (engine.default_base, engine.default_domain,
                                                                    memory.alpha, memory.knn_k)
    resolved = engine.resolve()
    direct = compare.to_dict(compare.next_token(engine, resolved, PROMPT), resolved.weights)
    for name in ("base", "memdec", "knn", "mix_memdec", "mix_knn"):
        assert [t["id"] for t in out["top"][name]] == [t["id"] for t in direct["top"][name]], name
        assert [t["p"] for t in out["top"][name]] == pytest.approx([t["p"] for t in direct["top"][name]], abs=1e-6)
        assert sum(t["p"] for t in out["top"][name]) <= 1.0 + 1e-6
    a, lam = out["alpha"], out["knn_lambda"]
    for row in out["axis"]:
        assert row["mix_memdec"] == pytest.approx(a * row["memdec"] + (1 - a) * row["base"], abs=1e-7)
        assert row["mix_knn"] == pytest.approx(lam * row["knn"] + (1 - lam) * row["base"], abs=1e-7)
    assert set(out["latency_ms"]) == {"base forward", "decoder forward", "kNN search", "mixing"}
    assert all(v > 0 for v in out["latency_ms"].values())


def test_compare_endpoint_settings(client, engine):
    out = client.predict(PROMPT, base="tiny-b", domain="law", alpha=0.2, k=5, temperature=2.0, top_n=4,
                         api_name="/compare")
    assert (out["base"], out["domain"], out["alpha"], out["k"], out["temperature"]) == ("tiny-b", "law", 0.2, 5, 2.0)
    assert len(out["top"]["base"]) == 4
    assert sum(t["p"] for t in out["top"]["knn"]) <= 1.0 + 1e-6  # at most 5 neighbours' tokens
    nt = compare.next_token(engine, engine.resolve(base="tiny-b", domain="law", k=5, temperature=2.0), PROMPT)
    assert out["top"]["knn"][0]["p"] == pytest.approx(float(nt.p_knn.max()), abs=1e-6)


def test_generate_endpoint(client, engine):
    out = client.predict(PROMPT, max_new_tokens=5, api_name="/generate")
    direct = generate.generate(engine, engine.resolve(), PROMPT, max_new_tokens=5)
    assert set(out["continuations"]) == {"base", "mix_memdec", "mix_knn"}
    for name, c in out["continuations"].items():
        assert c["tokens"] == direct["continuations"][name]["tokens"]
        assert len(c["tokens"]) <= 5 and c["ms_per_token"] > 0
    sampled = client.predict(PROMPT, max_new_tokens=5, sample=True, seed=7, api_name="/generate")
    again = client.predict(PROMPT, max_new_tokens=5, sample=True, seed=7, api_name="/generate")
    tokens = [c["tokens"] for c in sampled["continuations"].values()]
    assert tokens == [c["tokens"] for c in again["continuations"].values()]


def test_score_endpoint(client, engine):
    text = "licence software copyright warranty"
    out = client.predict(text, alpha=0.3, api_name="/score")
    s = score.score(engine, engine.resolve(), text)
    assert [t["token"] for t in out["tokens"]] == s.tokens
    assert [t["base"] for t in out["tokens"]] == pytest.approx(s.p_base.tolist(), rel=1e-5)
    for name, key in (("base", "base"), ("memdec", "memdec"), ("mix_memdec", "mix_memdec"), ("mix_knn", "mix_knn")):
        probs = torch.tensor([t[key] for t in out["tokens"]], dtype=torch.float64)
        assert out["perplexity"][name] == pytest.approx(float(torch.exp(-probs.log().mean())), rel=1e-4), name
    curve = out["perplexity_vs_alpha"]
    assert curve["alpha"][0] == 0.0 and curve["alpha"][-1] == 1.0 and len(curve["mix_knn"]) == len(curve["alpha"])


def test_page_endpoint_exports_json_and_csv(client, engine):
    """The Compare button's endpoint, then the export button's: the two files are written only when asked for, into
    Gradio's cache (which delete_cache empties), never left in the temporary folder."""
    import glob
    import tempfile

    before = set(glob.glob(f"{tempfile.gettempdir()}/comparison-*"))
    result = client.predict(PROMPT, engine.default_base, engine.default_domain, 0.5, 0.25, False, 16, 5.0, 6, False,
                            api_name="/compare_view")  # alpha, lambda, lock, k, T, tokens shown, measure precisely
    assert not [r for r in result if isinstance(r, (list, tuple)) and r]  # no export files from a comparison alone
    exported = client.predict(0.5, 0.25, False, 6, api_name="/compare_export")
    paths = [f if isinstance(f, str) else f.get("path", f.get("name")) for f in exported]
    assert set(glob.glob(f"{tempfile.gettempdir()}/comparison-*")) == before
    data = json.loads(open(next(p for p in paths if p.endswith(".json"))).read())
    rows = list(csv.DictReader(open(next(p for p in paths if p.endswith(".csv")))))
    assert (data["alpha"], data["knn_lambda"], data["lock_alpha"]) == (0.5, 0.25, False) and len(rows) == 6
    assert [int(r["id"]) for r in rows] == [r["id"] for r in data["axis"]]
    assert float(rows[0]["mix_knn"]) == pytest.approx(data["axis"][0]["mix_knn"])


def test_score_and_generate_export_what_the_page_shows(client, engine):
    """The Score and Generate tabs' exports: the JSON is the answer the API gives, the CSV its table."""
    client.predict("cell protein gene membrane", engine.default_base, "bio", 0.5, 0.25, False, 16, 5.0,
                   api_name="/score_view")  # passage, then alpha, lambda, lock, k, T
    paths = [f if isinstance(f, str) else f.get("path", f.get("name"))
             for f in client.predict(0.5, 0.25, False, api_name="/score_export")]
    scored = json.loads(open(next(p for p in paths if p.endswith(".json"))).read())
    rows = list(csv.DictReader(open(next(p for p in paths if p.endswith(".csv")))))
    direct = client.predict("cell protein gene membrane", domain="bio", alpha=0.5, knn_lambda=0.25, k=16,
                            temperature=5.0, api_name="/score")
    assert scored["perplexity"] == pytest.approx(direct["perplexity"], rel=1e-6) and len(rows) == len(scored["tokens"])
    assert [float(r["mix_memdec"]) for r in rows] == pytest.approx([t["mix_memdec"] for t in scored["tokens"]])
    client.predict("cell protein", engine.default_base, "bio", 0.5, 0.25, False, 16, 5.0, 4, False, 0,
                   api_name="/generate_view")  # prompt, ..., new tokens, sample, seed
    paths = [f if isinstance(f, str) else f.get("path", f.get("name"))
             for f in client.predict(api_name="/generate_export")]
    generated = json.loads(open(next(p for p in paths if p.endswith(".json"))).read())
    rows = list(csv.DictReader(open(next(p for p in paths if p.endswith(".csv")))))
    assert generated["prompt"] == "cell protein" and generated["max_new_tokens"] == 4
    assert [r["predictor"] for r in rows] == list(generated["continuations"])
    assert [r["stopped"] for r in rows] == [c["stopped"] for c in generated["continuations"].values()]


@pytest.mark.parametrize("endpoint, kwargs, message", [
    ("/compare", dict(text=""), "empty"),
    ("/compare", dict(text="x" * 50_000), "at most"),
    ("/compare", dict(text=PROMPT, alpha=1.5), "alpha"),
    ("/compare", dict(text=PROMPT, k=0), "k must be"),
    ("/compare", dict(text=PROMPT, temperature=-3), "temperature"),
    ("/compare", dict(text=PROMPT, base="nope"), "unknown base"),
    ("/generate", dict(text=PROMPT, max_new_tokens=5000), "max_new_tokens"),
    ("/score", dict(text="cell " * 400), "at most"),
    ("/score", dict(text=" "), "empty"),
])
def test_bad_input_gets_a_clear_error_and_the_app_keeps_serving(client, endpoint, kwargs, message):
    with pytest.raises(Exception, match=message):
        client.predict(api_name=endpoint, **kwargs)
    assert client.predict(PROMPT, top_n=3, api_name="/compare")["top"]["base"]


def test_garbage_text_is_answered(client):
    out = client.predict("\x00\x1b[31m ☃ }{ \ufffd\ufffd ;;;", api_name="/compare")
    assert len(out["top"]["mix_knn"]) == 10


def test_python_app_py_serves_the_embedded_models(tmp_path):
    """`python app.py` as Spaces runs it, with the real cache (datastores shared with the pipeline)."""
    import os
    import time

    from app.core import models
    from app.core.paths import ROOT
    from tests.support.serving import app_process

    if not models.embedded("base") or not models.embedded("memdec"):
        pytest.skip("the embedded models are not in models/ yet")
    env = {k: v for k, v in os.environ.items() if k != "MEMDEC_CACHE"}
    # the limits only stop a hung start: it answers in seconds and builds a missing store in a minute or two on two
    # busy cores (how fast it starts is for a benchmark to measure, not a test)
    start = time.monotonic()
    with app_process([], ROOT, env, tmp_path / "app.log") as url:
        client = Client(url, verbose=False)
        # the datastores are loaded (built when missing) in the background; until then, base and Memory Decoder answer
        # and the kNN-LM's part says how far its store is
        while (out := client.predict("The", api_name="/compare"))["knn_building"]:
            assert "is being built in the background" in out["knn_unavailable"] and time.monotonic() - start < 900
            time.sleep(1)
        assert sum(t["p"] for t in out["top"]["mix_knn"]) <= 1 + 1e-6
        assert set(out["latency_ms"]) == {"base forward", "decoder forward", "kNN search", "mixing"}
