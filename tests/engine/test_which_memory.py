"""Which memory knows this passage: every memory's numbers are score.summary's for that memory alone at its own tuned
weights, the heatmap's rows are log2(p_mix / p_base) per token, the best memory comes first, and a kNN-LM not ready or
without a corpus is left out with its reason."""
import dataclasses
import math

import pytest

from app.serve import compare, score, which_memory
from app.serve.builds import Unavailable
from app.serve.engine import Engine, InputError, StillBuilding

LAW = "licence software copyright warranty party agreement"


@pytest.fixture(scope="module")
def survey(engine):
    return which_memory.survey(engine, LAW, base="tiny-b")


def test_each_memory_equals_score_summary_alone(engine, survey):
    assert {m["memory"] for m in survey["memories"]} == set(engine.memories)
    for m in survey["memories"]:
        resolved = engine.resolve(base="tiny-b", domain=m["memory"])
        alone = score.summary(score.score(engine, resolved, LAW), resolved.weights)
        assert m["perplexity"] == pytest.approx(alone["perplexity"], rel=1e-6)
        # each memory at its own tuned weights for tiny-b (the fixture's memdec.json: alpha 0.5, lambda 0.7)
        assert (m["alpha"], m["knn_lambda"]) == (0.5, 0.7) == (alone["alpha"], alone["knn_lambda"])
        for name in ("mix_memdec", "mix_knn"):
            ppl, base = alone["perplexity"][name], alone["perplexity"]["base"]
            assert m["change_percent"][name] == pytest.approx(100 * (ppl / base - 1), rel=1e-9)
            # the mean gain per token is the perplexity ratio in bits
            assert m["bits_per_token"][name] == pytest.approx(math.log2(base / ppl), rel=1e-4, abs=1e-9)
        assert m["notes"] == []
    assert survey["tokens"] == score.score(engine, engine.resolve(base="tiny-b"), LAW).tokens


def test_gain_rows_are_log2_of_mixture_over_base(engine, survey):
    for m in survey["memories"]:
        resolved = engine.resolve(base="tiny-b", domain=m["memory"])
        s = score.score(engine, resolved, LAW)
        p_mix = resolved.weights.alpha * s.p_mem.double() + (1 - resolved.weights.alpha) * s.p_base.double()
        expected = (p_mix / s.p_base.double()).log2().tolist()
        assert len(m["token_gain_bits"]) == len(survey["tokens"]) == len(expected)
        assert m["token_gain_bits"] == pytest.approx(expected, abs=1e-5)


def test_best_memory_first_and_table(survey):
    ranked = [m["perplexity"]["mix_memdec"] for m in survey["memories"]]
    assert ranked == sorted(ranked)
    table = which_memory.rows(survey)
    assert [r["memory"] for r in table] == [m["memory"] for m in survey["memories"]]
    assert [r["perplexity base + MemDec"] for r in table] == ranked
    assert len({r["perplexity base"] for r in table}) == 1  # one base, one passage


def test_store_still_building_says_so_and_the_rest_answers(engine, monkeypatch):
    real = engine.datastore

    def building(base, domain, progress=None, here=False):
        if domain == "law":
            raise StillBuilding(Unavailable("the law store is being built in the background and is at 40%", True))
        return real(base, domain, progress, here)

    monkeypatch.setattr(engine, "datastore", building)
    out = {m["memory"]: m for m in which_memory.survey(engine, LAW, base="tiny-a")["memories"]}
    assert "mix_knn" not in out["law"]["perplexity"] and out["law"]["knn_lambda"] is None
    assert out["law"]["notes"] == ["the law store is being built in the background and is at 40%"]
    resolved = engine.resolve(base="tiny-a", domain="law")
    alone = score.summary(score.score(engine, resolved, LAW), resolved.weights)  # its kNN-LM building, as above
    assert out["law"]["perplexity"] == pytest.approx(alone["perplexity"], rel=1e-6)
    assert "mix_knn" in out["bio"]["perplexity"] and out["bio"]["notes"] == []
    row = next(r for r in which_memory.rows({"memories": list(out.values())}) if r["memory"] == "law")
    assert row["perplexity base + kNN-LM"] is None and "40%" in row["note"]


def test_memory_without_corpus_or_decoder(tiny_models):
    bio = tiny_models["memories"]["bio"]
    engine = Engine(tiny_models["bases"], {"bio": bio, "paper": dataclasses.replace(bio, corpus=None),
                                           "knn-only": dataclasses.replace(bio, decoder=None)})
    out = {m["memory"]: m for m in which_memory.survey(engine, LAW)["memories"]}
    assert out["paper"]["notes"] == [compare.NO_CORPUS] and "mix_knn" not in out["paper"]["perplexity"]
    assert out["knn-only"]["notes"] == [which_memory.NO_DECODER]
    assert out["knn-only"]["token_gain_bits"] == pytest.approx([0.0] * len(out["bio"]["token_gain_bits"]), abs=1e-9)


def test_bad_requests(engine):
    with pytest.raises(InputError, match="empty"):
        which_memory.survey(engine, "  ")
    with pytest.raises(InputError, match="unknown base"):
        which_memory.survey(engine, LAW, base="nope")


def test_family_chooses_the_memories(tiny_models):
    family = {"tiny-a": "one", "bio": "one", "tiny-b": "two", "law": "two"}
    engine = Engine(tiny_models["bases"], tiny_models["memories"], family=family)
    assert [m["memory"] for m in which_memory.survey(engine, LAW, base="tiny-a")["memories"]] == ["bio"]
    out = which_memory.survey(engine, LAW, base="tiny-b", family="two")
    assert (out["family"], [m["memory"] for m in out["memories"]]) == ("two", ["law"])
    with pytest.raises(InputError, match="base 'tiny-a' is not of the two family; choose one of tiny-b"):
        which_memory.survey(engine, LAW, base="tiny-a", family="two")
    with pytest.raises(InputError, match="unknown model family"):
        which_memory.survey(engine, LAW, family="three")


def test_cli_prints_json_or_writes_csv(engine, tiny_models, monkeypatch, capsys, tmp_path):
    """`which-memory` and `batch` as a user types them, run in this process: the same numbers as the engine's."""
    import csv
    import json
    import sys

    from app.serve import batch
    from app.serve import cli as command

    bio, law = tiny_models["memories"]["bio"], tiny_models["memories"]["law"]
    models = ["--model", f"tiny-a={tiny_models['bases']['tiny-a']}", "--memory", f"bio={bio.decoder},{bio.corpus}",
              "--memory", f"law={law.decoder},{law.corpus}"]

    def cli(*args):
        monkeypatch.setattr(sys, "argv", ["app.serve.cli", *args, *models])
        capsys.readouterr()
        command.run()
        return capsys.readouterr()

    printed = json.loads(cli("which-memory", LAW).out)
    direct = which_memory.survey(engine, LAW, base="tiny-a")
    assert [m["memory"] for m in printed["memories"]] == [m["memory"] for m in direct["memories"]]
    for got, want in zip(printed["memories"], direct["memories"]):
        assert got["perplexity"] == pytest.approx(want["perplexity"], rel=1e-6)
    table = tmp_path / "survey.csv"
    assert cli("which-memory", LAW, "--csv", str(table)).out == ""
    assert [float(r["perplexity base + kNN-LM"]) for r in csv.DictReader(table.open())] == pytest.approx(
        [m["perplexity"]["mix_knn"] for m in direct["memories"]], rel=1e-6)
    prompts, table = tmp_path / "prompts.txt", tmp_path / "batch.csv"
    prompts.write_text("cell protein\nlicence software\n")
    cli("batch", "--file", str(prompts), "--top-n", "2", "--csv", str(table))
    rows = list(csv.DictReader(table.open()))
    want = batch.rows(batch.batch(engine, ["cell protein", "licence software"], base="tiny-a", top_n=2))
    assert [(r["prompt"], r["memory"], r["mix_memdec"]) for r in rows] == [(r["prompt"], r["memory"], r["mix_memdec"])
                                                                          for r in want]


def test_plots_name_the_tokens_on_their_x_axis(engine, survey):
    """The Score tab's per-token plot and the heatmap tick every position with its token's text, repeats included."""
    from app.serve import plots

    labels = [plots.label(t) for t in survey["tokens"]]
    heatmap = plots.memory_gains(survey)
    assert list(heatmap.layout.xaxis.ticktext) == labels and list(heatmap.layout.xaxis.tickvals) == list(
        range(len(labels)))
    assert list(heatmap.data[0].y) == [m["memory"] for m in survey["memories"]]
    assert [list(row) for row in heatmap.data[0].z] == [m["token_gain_bits"] for m in survey["memories"]]
    resolved = engine.resolve(base="tiny-b")
    summary = score.summary(score.score(engine, resolved, "gene gene gene cell"), resolved.weights)
    ticks = list(plots.token_probabilities(summary).layout.xaxis.ticktext)
    assert ticks == [plots.label(t["token"]) for t in summary["tokens"]] and len(ticks) == len(summary["tokens"])
