"""Score and Generate answer with base and Memory Decoder while the kNN-LM's store is being built or cannot be had
(a hub corpus that is neither cached nor reachable, as the gpt2-wikitext preset's offline), saying why in the same
fields as Compare; a failed build is reported for a while, not retried at every poll; a continuation says why it
stopped."""
import dataclasses
import time

import pytest
import torch

from app.core import paths
from app.serve import builds, compare, generate, score
from app.serve.engine import Engine
from app.serve.presets import HubText
from tests.support.builds import LIMIT_S, held_builds


def test_score_and_generate_answer_while_the_store_builds(tiny_models, tmp_path, monkeypatch):
    release = held_builds(monkeypatch, tmp_path)
    engine = Engine(tiny_models["bases"], tiny_models["memories"])
    engine.prepare_in_background()
    try:
        resolved = engine.resolve(domain="law")
        summary = score.summary(score.score(engine, resolved, "licence software contract"), resolved.weights)
        out = generate.generate(engine, resolved, "licence", max_new_tokens=3)
        assert not release.is_set()
        for answer in (summary, out):
            pending = answer["pending"]["knn"]
            assert answer["knn_building"] and "being built" in pending["reason"]
            assert pending["fraction"] is None or 0 <= pending["fraction"] <= 1
        assert summary["knn_coverage"] is None and "mix_knn" not in summary["perplexity"]
        assert summary["perplexity"]["memdec"] > 0 and set(out["continuations"]) == {"base", "mix_memdec"}
    finally:
        release.set()


def test_an_unreachable_corpus_is_said_and_not_retried_at_every_request(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CACHE", tmp_path)
    memory = dataclasses.replace(tiny_models["memories"]["law"],
                                 corpus=HubText("nobody/not-cached-anywhere", "*.parquet", "offline-test"))
    engine = Engine(tiny_models["bases"], {"wiki": memory}, corpus_tokens=1000)
    engine.prepare_in_background()
    resolved = engine.resolve(domain="wiki")
    for _ in range(LIMIT_S * 10):  # the first requests see the build starting, then its failure
        nt = compare.next_token(engine, resolved, "cell protein")
        if not nt.unavailable.building:
            break
        time.sleep(0.1)
    answer = compare.to_dict(nt, resolved.weights)
    assert nt.p_knn is None and nt.p_mem.sum().item() == pytest.approx(1, abs=1e-4)
    assert "neither cached nor reachable" in answer["knn_unavailable"] and answer["pending"] is None
    assert set(answer["top"]) == {"base", "memdec", "mix_memdec"}
    queued = list(engine.builds.order)
    again = compare.next_token(engine, resolved, "cell protein")  # within RETRY_AFTER_S: the same reason, no build
    assert again.knn_missing == nt.knn_missing and engine.builds.order == queued
    assert builds.RETRY_AFTER_S >= 30


def test_a_continuation_says_why_it_stopped(engine, monkeypatch):
    resolved = engine.resolve(domain="law")
    out = generate.generate(engine, resolved, "licence", max_new_tokens=5)
    for run in out["continuations"].values():
        assert run["stopped"] == "reached the 5 new tokens asked for" and len(run["tokens"]) == 5
    eos = resolved.pair.tokenizer.eos_token_id
    # a base that always ends the text at once: each predictor mixes it, so each one stops after 0 tokens
    monkeypatch.setattr(generate, "model_probs",
                        lambda logits, vocab: torch.nn.functional.one_hot(torch.tensor(eos), vocab).float())
    ended = generate.generate(engine, resolved, "licence", max_new_tokens=5)["continuations"]
    assert all(r["stopped"].startswith("the model ended the text") and r["tokens"] == [] for r in ended.values())
    assert "after 0 of 5 tokens" in ended["base"]["stopped"]

