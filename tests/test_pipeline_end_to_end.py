"""The pipeline on a user's own domain and bases given as folders (the hub path, without a download)."""
import json

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from app import corpora, pipeline, tokens
from app.evaluate import ALPHAS
from app.models import model_fingerprint, save_model
from app.tokenizer import train_tokenizer

SENTENCES = [
    "The licensee shall retain this notice in all copies of the software.",
    "The licensor grants a worldwide, royalty-free licence to use the work.",
    "Redistribution in binary form must reproduce the above copyright notice.",
    "This licence terminates automatically if the licensee breaches its terms.",
]


@pytest.fixture()
def toy(tmp_path, monkeypatch):
    for module in (pipeline, tokens):
        monkeypatch.setattr(module, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(corpora, "CORPORA", tmp_path / "corpora")
    monkeypatch.setattr(pipeline, "MODELS", tmp_path / "models")
    monkeypatch.setattr(pipeline, "RESULTS", tmp_path / "results")
    docs = [f"{a} {b}" for a in SENTENCES for b in SENTENCES]
    for split, part in (("train", docs * 3), ("validation", docs[:6]), ("test", docs[6:12])):
        corpora.write_text(corpora.domain_path("toy", split), part)
    tokenizer = train_tokenizer(docs, vocab_size=320)
    bases = {}
    for name, (layers, width) in {"tiny": (1, 32), "wide": (2, 48)}.items():
        torch.manual_seed(len(name))
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_layer=layers, n_embd=width, n_head=2, n_positions=64))
        bases[name] = tmp_path / "hub" / name
        save_model(model, tokenizer, bases[name])
    return pipeline.Settings(domains=("toy",), bases=bases, key="wide", init="tiny", memdec_steps=40, memdec_lr=1e-2, batch_size=8, k=8, block=16)


def test_pipeline_trains_evaluates_and_skips_current_steps(toy, capsys):
    pipeline.memdec_step("toy", toy)
    out = pipeline.MODELS / "memdec-toy"
    recipe = json.loads((out / "pipeline.json").read_text())
    assert recipe["init"] == model_fingerprint(toy.bases["tiny"]) and recipe["steps"] == 40
    rows = pipeline.evaluate_step(toy)
    assert [r["base"] for r in rows] == ["tiny", "wide"]
    for row in rows:
        # Random bases know nothing of the domain; a decoder trained on it must cut perplexity sharply.
        assert row["memdec_ppl"] < 0.5 * row["base_ppl"]
        assert row["memdec_alpha"] in ALPHAS and row["knn_lambda"] in ALPHAS
    saved = json.loads((pipeline.RESULTS / "evaluation.json").read_text())
    assert saved == rows and (pipeline.RESULTS / "evaluation.csv").read_text().count("\n") == 3
    meta = json.loads((out / "memdec.json").read_text())
    assert meta["alpha"] in ALPHAS and meta["knn_k"] == 8 and set(meta["alpha_by_base"]) == {"tiny", "wide"}
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    capsys.readouterr()
    pipeline.memdec_step("toy", toy)
    assert "memdec-toy: current" in capsys.readouterr().out
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
