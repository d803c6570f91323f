"""The published shapes at full size (random weights): GPT-2 124M with its 124M decoder, and Qwen2.5-0.5B with its
0.5B decoder, through the app's engine. Slow (about a minute and 3 GB of disk in a temporary folder), so it runs
only when asked: python -m pytest -m slow tests/engine/test_full_size.py"""
import dataclasses

import huggingface_hub.constants as hub
import pytest

from app.serve import compare, generate, presets
from app.serve.engine import Engine
from tests.support import standins

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("preset, base, decoder, parameters", [
    ("gpt2-wikitext", "openai-community/gpt2", "Clover-Hill/MemoryDecoder-gpt2-small", 124_439_808),
    ("qwen2.5-law", "Qwen/Qwen2.5-0.5B", "Clover-Hill/MemoryDecoder-Qwen-law", 494_032_768),
])
def test_full_size_pair_compares_and_generates(tmp_path, monkeypatch, preset, base, decoder, parameters):
    for repo in (base, decoder):
        standins.write_model(tmp_path, repo, size="full")
    standins.write_wikitext(tmp_path)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    engine = Engine.from_presets([preset], corpus_tokens=2000)
    domain = engine.default_domain
    engine.memories[domain] = dataclasses.replace(engine.memories[domain], corpus=presets.WIKITEXT)
    pair = engine.pair(None, None)
    assert sum(p.numel() for p in pair.lm.parameters()) == parameters
    nt = compare.next_token(engine, engine.resolve(), "The history of the")
    assert float(nt.p_knn.sum()) == pytest.approx(1.0, abs=1e-5)
    out = generate.generate(engine, engine.resolve(), "The history of the", max_new_tokens=4)
    assert all(c["ms_per_token"] > 0 for c in out["continuations"].values())
