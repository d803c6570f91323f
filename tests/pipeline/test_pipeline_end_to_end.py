"""The pipeline on a user's own domain and bases given as folders (the hub path, without a download)."""
import json

import pytest

from app.core import paths, recipe
from app.core.documents import read_documents, write_documents
from app.core.models import model_fingerprint
from app.core.settings import Settings
from app.make import pipeline

SENTENCES = [
    "The licensee shall retain this notice in all copies of the software.",
    "The licensor grants a worldwide, royalty-free licence to use the work.",
    "Redistribution in binary form must reproduce the above copyright notice.",
    "This licence terminates automatically if the licensee breaches its terms.",
]


@pytest.fixture()
def toy(tmp_path, monkeypatch, tiny_family):
    """Every root of app.core.paths moved into tmp_path: one attribute each, read by every step."""
    for name in ("CACHE", "CORPORA", "MODELS", "RESULTS"):
        monkeypatch.setattr(paths, name, tmp_path / name.lower())
    docs = [f"{a} {b}" for a in SENTENCES for b in SENTENCES]
    for split, part in (("train", docs * 3), ("validation", docs[:8]), ("test", docs[8:16])):
        write_documents(paths.corpus_path("toy", split), part)
    _, bases = tiny_family(tmp_path / "hub", docs, {"tiny": (1, 32), "wide": (2, 48)}, vocab=320)
    return Settings(domains=("toy",), bases=bases, key="wide", init="tiny", memdec_steps=40, memdec_lr=1e-2,
                    batch_size=8, k=8, block=16, eval_stride=8, seeds=(0, 1))


def test_pipeline_trains_controls_evaluates_with_intervals_and_skips_current_steps(toy, capsys):
    pipeline.memdec_step("toy", toy)
    out = paths.model_folder("memdec", "toy")
    made_from = recipe.recorded(out)
    assert made_from["init"] == model_fingerprint(toy.bases["tiny"]) and made_from["steps"] == 40
    # every loss and seed, and DAPT from the key model, at the same budget
    for loss in ("ce", "kl"):
        for seed in (0, 1):
            assert recipe.recorded(pipeline.decoder_folder("toy", loss, seed, toy))["seed"] == seed
    dapt = recipe.recorded(pipeline.dapt_folder("toy", 1, toy))
    assert dapt["init"] == model_fingerprint(toy.bases["wide"]) and dapt["beta"] == 0.0 and dapt["targets"] is None
    assert dapt["steps"] == made_from["steps"] and dapt["batch_size"] == made_from["batch_size"]
    rows, ablation = pipeline.evaluate_step(toy)
    assert [r["base"] for r in rows] == ["tiny", "wide"]
    for row in rows:
        # Random bases know nothing of the domain; a decoder trained on it must cut perplexity sharply.
        assert row["memdec"]["ppl"] < 0.5 * row["base_only"]["ppl"]
        for name in ("base_only", "knn", "ce", "memdec"):
            assert row[name]["lo"] <= row[name]["ppl"] <= row[name]["hi"]
        assert row["memdec"]["seeds"] == 2 and row["memdec"]["seed_sd"] >= 0
        grid = set(toy.alphas) | {a for edge in toy.alpha_edges for a in edge}
        assert set(row["alpha"]) <= grid and row["knn_lambda"] in grid
    assert "dapt" in rows[1] and "dapt" not in rows[0]
    assert [a["loss"] for a in ablation] == ["KL only", "CE only", "KL + CE"]
    saved = json.loads((paths.RESULTS / "evaluation.json").read_text())
    assert [r["memdec"]["ppl"] for r in saved] == [r["memdec"]["ppl"] for r in rows]
    assert (paths.RESULTS / "evaluation.csv").read_text().count("\n") == 3
    meta = json.loads((out / "memdec.json").read_text())
    assert meta["knn_k"] == 8 and set(meta["alpha_by_base"]) == {"tiny", "wide"} and meta["block"] == 16
    assert set(meta["knn_by_base"]["wide"]) == {"lambda", "temperature"} and meta["label"]
    assert list(meta) == list(json.loads((paths.ROOT / "models" / "memdec-law" / "memdec.json").read_text()))
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    capsys.readouterr()
    pipeline.memdec_step("toy", toy)
    printed = capsys.readouterr().out
    assert "memdec-toy: current" in printed and "targets toy: current" in printed
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
    # every output of the run records its recipe, the one mechanism that decides "current"
    for folder in (paths.store_folder(toy.bases["wide"], "toy"), paths.targets_folder("toy"),
                   paths.predictions_folder("base-wide", "toy", "validation"), out):
        assert recipe.recorded(folder), folder


def test_a_changed_setting_redoes_only_what_depends_on_it(toy, capsys):
    pipeline.memdec_step("toy", toy, losses=("memdec",))
    store_made = recipe.recorded(paths.store_folder(toy.bases["wide"], "toy"))
    capsys.readouterr()
    toy.memdec_steps = 41  # enters the decoders' recipes only
    pipeline.memdec_step("toy", toy, losses=("memdec",))
    printed = capsys.readouterr().out
    assert "targets toy: current" in printed and "training 41 steps" in printed
    assert recipe.recorded(paths.model_folder("memdec", "toy"))["steps"] == 41
    assert recipe.recorded(paths.store_folder(toy.bases["wide"], "toy")) == store_made


def test_a_family_with_its_own_decoder_shape_keeps_to_its_folders_and_scores_general_text(toy, capsys):
    """As `--family smollm2` runs: one real base as key model and base, decoders of their own shape started from its
    projected embedding, one seed, no DAPT; models, controls, targets and results under the family's folders; and
    what each memory costs on held-out general text at the alpha tuned on its domain."""
    write_documents(paths.general_corpus(), [f"{a} {b}" for a in SENTENCES[::-1] for b in SENTENCES] * 2)
    fam = Settings(family="fam", domains=("toy",), bases={"wide": toy.bases["wide"]}, key="wide", init="",
                   decoder_shape={"n_embd": 16, "n_layer": 1, "n_head": 2}, dapt=False, ablation=False, seeds=(0,),
                   memdec_steps=40, memdec_lr=1e-2, batch_size=8, k=8, block=16, eval_stride=8, general_eval_chars=2000)
    pipeline.decoder_start_step(fam)
    pipeline.memdec_step("toy", fam, losses=("memdec", "ce"))
    out = paths.model_folder("memdec", "toy", "fam")
    assert out == paths.MODELS / "fam" / "memdec-toy" and not paths.model_folder("memdec", "toy").exists()
    made_from = recipe.recorded(out)
    assert made_from["init"] == model_fingerprint(paths.decoder_start_folder("fam"))
    assert json.loads((out / "config.json").read_text())["n_embd"] == 16
    assert recipe.recorded(paths.control_folder("toy", "ce-seed0", "fam"))["beta"] == 0.0
    assert recipe.recorded(paths.targets_folder("toy", "fam")) and not paths.targets_folder("toy").exists()
    assert not (paths.CACHE / "controls" / "fam" / "toy" / "dapt-seed0").exists()

    rows, ablation = pipeline.evaluate_step(fam, ("memdec", "ce"))
    assert ablation == [] and [r["base"] for r in rows] == ["wide"]
    row = rows[0]
    assert "dapt" not in row and row["memdec"]["seeds"] == 1
    assert row["alone"]["lo"] <= row["alone"]["ppl"] <= row["alone"]["hi"]
    assert row["memdec_vs_alone"]["ratio"] == pytest.approx(row["memdec"]["ppl"] / row["alone"]["ppl"])
    table = (paths.RESULTS / "fam" / "evaluation.md").read_text()
    assert "| decoder alone |" in table and "DAPT" not in table
    assert not (paths.RESULTS / "evaluation.json").exists()

    general = pipeline.general_step(fam)
    card = json.loads((out / "memdec.json").read_text())
    assert [g["memory"] for g in general] == ["toy"] and general[0]["alpha"] == card["alpha_by_base"]["wide"]
    g = general[0]
    assert g["memdec_vs_base"]["ratio"] == pytest.approx(g["memdec"]["ppl"] / g["base_only"]["ppl"])
    assert g["memdec_vs_base"]["lo"] <= g["memdec_vs_base"]["ratio"] <= g["memdec_vs_base"]["hi"]
    held_out, general_docs = read_documents(pipeline.general_held_out(fam)), read_documents(paths.general_corpus())
    assert 1 < len(held_out) and sum(map(len, held_out)) <= 2000 and held_out == general_docs[-len(held_out):]
    assert json.loads((paths.RESULTS / "fam" / "general.json").read_text())[0]["memory"] == "toy"
    assert not (paths.RESULTS / "timings.json").exists()  # a step's time, when it took one, is the family's
