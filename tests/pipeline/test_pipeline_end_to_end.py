"""The pipeline on a user's own domain and bases given as folders (the hub path, without a download)."""
import json

import pandas as pd
import pytest

from app.core import paths, recipe
from app.core.documents import read_documents, write_documents
from app.core.models import load_lm, load_tokenizer, model_fingerprint
from app.core.settings import Settings
from app.core.tokens import blocks, encode_file
from app.make import key_targets, pipeline

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
                    batch_size=8, k=8, block=16, eval_stride=8, seeds=(0, 1), dapt_lrs=(1e-3, 1e-2),
                    dapt_lr_edge=3e-2, budgets=(60,), dapt_budgets=(60,), budget_domains=("toy",),
                    general_eval_chars=2000)


def test_pipeline_trains_controls_evaluates_with_intervals_and_skips_current_steps(toy, capsys):
    """The whole pipeline on one domain: every loss and seed, DAPT with its learning rate chosen, the evaluation and
    the ablation, then the longer budgets, the cost on general text and the training curves."""
    write_documents(paths.general_corpus(), [f"{a} {b}" for a in SENTENCES[::-1] for b in SENTENCES] * 2)
    pipeline.memdec_step("toy", toy)
    out = paths.model_folder("memdec", "toy")
    made_from = recipe.recorded(out)
    assert made_from["init"] == model_fingerprint(toy.bases["tiny"]) and made_from["steps"] == 40
    # every loss and seed, and DAPT from the key model, at the same budget
    for loss in ("ce", "kl", "distil"):
        for seed in (0, 1):
            assert recipe.recorded(pipeline.decoder_folder("toy", loss, seed, toy))["seed"] == seed
    lr_grid = pipeline.dapt_lr_grid("toy", toy)
    lr = min(lr_grid, key=lr_grid.get)
    dapt = recipe.recorded(pipeline.dapt_folder("toy", 1, toy, lr))
    assert dapt["init"] == model_fingerprint(toy.bases["wide"]) and dapt["beta"] == 0.0 and dapt["targets"] is None
    assert dapt["steps"] == made_from["steps"] and dapt["batch_size"] == made_from["batch_size"] and dapt["lr"] == lr
    # the grid (and its edge, 3e-2, only when 1e-2 is best): every other rate trains seed 0 alone
    assert list(lr_grid) == ([1e-3, 1e-2, 3e-2] if min([1e-3, 1e-2], key=lr_grid.get) == 1e-2 else [1e-3, 1e-2])
    for other in set(lr_grid) - {lr}:
        assert recipe.recorded(pipeline.dapt_folder("toy", 0, toy, other))["lr"] == other
        assert not pipeline.dapt_folder("toy", 1, toy, other).exists()
    # the distilled control: the Memory Decoder's recipe with the key model's distribution as its targets
    distilled = recipe.recorded(pipeline.decoder_folder("toy", "distil", 0, toy))
    assert distilled["targets"]["kind"] == "key model distribution" and distilled["beta"] == made_from["beta"]
    assert {k: v for k, v in distilled.items() if k != "targets"} == {k: v for k, v in made_from.items()
                                                                     if k != "targets"}
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
    assert "dapt" in rows[1] and "dapt" not in rows[0] and rows[1]["dapt_lr"] == lr
    assert rows[1]["dapt_lr_validation"] == {f"{rate:g}": ppl for rate, ppl in lr_grid.items()}
    assert [a["loss"] for a in ablation] == ["KL only", "CE only", "KL to the key model + CE", "KL + CE"]
    for a in ablation:  # the mixed column's paired test: the ratio of the mixtures, inside its own interval
        versus = a["with_key_vs_memdec"]
        assert versus["ratio"] == pytest.approx(a["with_key"]["ppl"] / ablation[-1]["with_key"]["ppl"])
        assert versus["lo"] <= versus["ratio"] <= versus["hi"]
    assert "| + distilled decoder |" in (paths.RESULTS / "evaluation.md").read_text()
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
    # the longer budgets, the cost on general text and the training curves
    pipeline.budgets_step("toy", toy)
    for loss in toy.budget_losses:
        assert recipe.recorded(pipeline.decoder_folder("toy", loss, 0, toy, 60))["steps"] == 60
        assert not pipeline.decoder_folder("toy", loss, 1, toy, 60).exists()  # the budget seeds alone
    general = pipeline.general_step(toy, rows)
    # each base alone and with the memory (its seeds at their own alphas), and DAPT against the key model
    assert [(g["base"], g["system"]) for g in general] == [("tiny", "Memory Decoder"), ("wide", "Memory Decoder"),
                                                           ("wide", "DAPT")]
    for g, row in zip(general, (rows[0], rows[1], rows[1])):
        assert g["change"]["ratio"] == pytest.approx(g["with_memory"]["ppl"] / g["base_only"]["ppl"])
        assert g["with_memory"]["seeds"] == 2 and g["alpha"] == (row["alpha"] if g["system"] != "DAPT" else None)
    budgets = pipeline.evaluate_budgets(toy, rows)
    assert [(b["steps"], b["tokens"]) for b in budgets] == [(40, 40 * 8 * 16), (60, 60 * 8 * 16)]
    for b in budgets:
        assert b["memdec"]["seeds"] == 1 and b["dapt_lr"] == rows[1]["dapt_lr"]
        for name in ("ce", "distil", "dapt"):
            assert b[f"memdec_vs_{name}"]["ratio"] == pytest.approx(b["memdec"]["ppl"] / b[name]["ppl"])
        key_alone = general[1]["base_only"]["ppl"]  # DAPT forgets against the key model it started from
        assert b["dapt_general_vs_base"]["ratio"] == pytest.approx(b["dapt_general"]["ppl"] / key_alone)
    table = (paths.RESULTS / "budgets.md").read_text().splitlines()
    assert len(table) == 4 and table[0].count("|") == table[1].count("|") == table[3].count("|")
    curves = pd.read_csv(paths.RESULTS / "budget_curves.csv")
    # every run logs its validation cross-entropy at its last step (runs this short checkpoint once)
    assert set(zip(curves.budget, curves.system, curves.step)) >= {(60, name, 60) for name in ("memdec", "ce", "distil",
                                                                                               "dapt")}


def test_key_model_targets_are_its_own_top_k_distribution_at_every_training_position(toy):
    corpus = paths.corpus_path("toy", "train")
    found, built = key_targets.load_or_build(toy.bases["wide"], corpus, toy.block, toy.k, tmp := paths.CACHE / "kt")
    assert built and not key_targets.load_or_build(toy.bases["wide"], corpus, toy.block, toy.k, tmp)[1]
    tokenizer, model = load_tokenizer(toy.bases["wide"]), load_lm(toy.bases["wide"])
    inputs, _ = blocks(encode_file(tokenizer, corpus, "toy"), toy.block)
    assert len(found) == inputs.numel()
    block = 3  # block b, column c is row b * block + c, as in the kNN targets
    logits = model(input_ids=inputs[block: block + 1]).logits[0, :, :len(tokenizer)]
    for column in (0, 7, toy.block - 1):
        row = found.row(block * toy.block + column)
        top = logits[column].softmax(-1).topk(toy.k)
        assert list(row) == top.indices.tolist() and sum(row.values()) == pytest.approx(1, abs=1e-2)
        assert row[top.indices[0].item()] == pytest.approx((top.values[0] / top.values.sum()).item(), rel=1e-2)


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

    general = pipeline.general_step(fam, rows)
    card = json.loads((out / "memdec.json").read_text())
    assert [g["memory"] for g in general] == ["toy"] and general[0]["alpha"] == [card["alpha_by_base"]["wide"]]
    g = general[0]
    assert g["change"]["ratio"] == pytest.approx(g["with_memory"]["ppl"] / g["base_only"]["ppl"])
    assert g["change"]["lo"] <= g["change"]["ratio"] <= g["change"]["hi"]
    held_out, general_docs = read_documents(pipeline.general_held_out(fam)), read_documents(paths.general_corpus())
    assert 1 < len(held_out) and sum(map(len, held_out)) <= 2000 and held_out == general_docs[-len(held_out):]
    assert json.loads((paths.RESULTS / "fam" / "general.json").read_text())[0]["memory"] == "toy"
    assert not (paths.RESULTS / "timings.json").exists()  # a step's time, when it took one, is the family's
