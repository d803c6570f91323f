"""The kNN-LM is never queried with more context than its keys were built with: a stored key saw at most `block`
tokens, so past `block` tokens the query key is the key of the last `block` tokens only, in compare, score and
generate alike, while the base still reads its whole context. A memory with a short block (memdec.json `block`) makes
the tiny models' prompts longer than a block."""
import dataclasses

import numpy as np
import pytest
import torch

from app.core.distributions import knn_target_probs, model_probs
from app.serve import compare, generate, score
from app.serve.engine import Engine
from tests.support.reference import knn_lm_continuation

BLOCK = 16
TEXT = "cell protein gene membrane enzyme binding receptor kinase tissue neuron signal pathway " * 3


@pytest.fixture(scope="module")
def short(tiny_models):
    """The bio memory with keys of BLOCK tokens, under its own name, so its store is its own."""
    memory = dataclasses.replace(tiny_models["memories"]["bio"], block=BLOCK)
    return Engine(tiny_models["bases"], {"bio-short": memory})


def hooked_key(lm, ids: list) -> np.ndarray:
    """The key of the last position of ids, read with our own hook on the last feed-forward layer."""
    seen = {}
    handle = lm.transformer.h[-1].mlp.register_forward_pre_hook(lambda _m, args: seen.update(key=args[0]))
    with torch.no_grad():
        lm(input_ids=torch.tensor([ids]))
    handle.remove()
    return seen["key"][0, -1:].numpy()


def prompt_ids(engine: Engine, text: str) -> list:
    return engine.resolve().encode(text, truncate=True)[0][0].tolist()


def test_the_store_is_built_with_the_memorys_block(short):
    store = short.datastore(short.default_base, "bio-short")
    assert store.recipe["block"] == BLOCK == short.resolve().block


def test_compare_queries_with_the_last_block_of_a_long_prompt(short):
    ids = prompt_ids(short, TEXT)
    assert len(ids) > 2 * BLOCK
    nt = compare.next_token(short, short.resolve(), TEXT)
    store, lm = short.datastore(nt.base, nt.domain), short.pair(None, None).lm
    windowed, full = hooked_key(lm, ids[-BLOCK:]), hooked_key(lm, ids)
    assert not np.allclose(windowed, full, atol=1e-3)  # the whole prompt would give another query
    distances, entries = store.search(windowed, nt.k)
    np.testing.assert_allclose(nt.distances.numpy(), distances[0], rtol=1e-4, atol=1e-4)
    assert nt.ids.tolist() == entries[0].tolist()
    assert store.search(full, nt.k)[1][0].tolist() != nt.ids.tolist()
    # the base still reads the whole prompt
    with torch.no_grad():
        p_base = model_probs(lm(input_ids=torch.tensor([ids])).logits[0, -1], len(nt.tokens))
    assert torch.allclose(nt.p_base, p_base, atol=1e-6)


def test_score_queries_each_position_with_at_most_a_block(short):
    s = score.score(short, short.resolve(), TEXT)
    ids = prompt_ids(short, TEXT)
    store, lm = short.datastore(s.base, s.domain), short.pair(None, None).lm
    for t in (3, BLOCK - 1, BLOCK, BLOCK + 5, len(ids) - 2):  # position t predicts ids[t + 1]
        key = hooked_key(lm, ids[max(0, t - BLOCK + 1): t + 1])
        distances, _, values = store.neighbours(key, s.k)
        expected = knn_target_probs(distances, values, s.temperature, torch.tensor([ids[t + 1]]))
        assert float(s.p_knn[t]) == pytest.approx(float(expected[0]), abs=1e-5), t
    # and it agrees with a comparison on each prefix, past the block too
    for t in (BLOCK + 2, len(ids) - 2):
        nt = compare.next_token(short, short.resolve(), short.pair(None, None).tokenizer.decode(ids[1: t + 1]))
        assert float(s.p_knn[t]) == pytest.approx(float(nt.p_knn[ids[t + 1]]), abs=1e-5), t


@pytest.mark.parametrize("text", ["protein binding", TEXT], ids=["crosses the block", "longer than the block"])
@pytest.mark.parametrize("seed", [None, 5], ids=["greedy", "sampled"])
def test_cached_knn_generation_equals_a_cache_free_recompute(short, text, seed):
    """Sampling also checks the weight: it follows every probability, not only the largest."""
    steps = 2 * BLOCK
    result = generate.generate(short, short.resolve(), text, max_new_tokens=steps,
                               sample=seed is not None, seed=seed or 0)
    ids = prompt_ids(short, text)
    expected = knn_lm_continuation(short, ids, steps, seed)[len(ids):]
    tokenizer = short.pair(None, None).tokenizer
    if tokenizer.eos_token_id in expected:  # generation stops there
        expected = expected[: expected.index(tokenizer.eos_token_id)]
    assert len(ids) + len(expected) > BLOCK
    assert result["continuations"]["mix_knn"]["tokens"] == [tokenizer.decode([t]) for t in expected]
