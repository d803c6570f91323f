"""A base + kNN-LM continuation computed the slow, cache-free way, which the engine's cached generation must equal
(checked in more than one test module)."""
import torch

from app.core.distributions import knn_probs, mix, model_probs


def knn_lm_continuation(engine, ids: list, steps: int, seed: int | None = None) -> list:
    """base + kNN-LM without any cache, greedy (or sampled as generate does with a seed): at every step a full pass of
    the base for p_base, and the query key read with our own hook from a pass over the last `block` tokens only (the
    longest context a stored key saw)."""
    resolved = engine.resolve()
    pair, weights, k, temperature = resolved.pair, resolved.weights, resolved.k, resolved.temperature
    lm, vocab, store = pair.lm, len(pair.tokenizer), engine.datastore(pair.base, pair.domain)
    block = store.recipe["block"]
    seq, seen, generator = list(ids), {}, torch.Generator().manual_seed(seed or 0)
    handle = lm.transformer.h[-1].mlp.register_forward_pre_hook(lambda _m, args: seen.update(key=args[0]))
    try:
        for _ in range(steps):
            with torch.no_grad():
                p_base = model_probs(lm(input_ids=torch.tensor([seq])).logits[0, -1], vocab)
                lm(input_ids=torch.tensor([seq[-block:]]))
            distances, _, values = store.neighbours(seen["key"][0, -1:].numpy(), k)
            p = mix(p_base, knn_probs(distances, values, temperature, vocab)[0], weights.knn_lambda)
            seq.append(int(p.argmax()) if seed is None else int(torch.multinomial(p, 1, generator=generator)))
    finally:
        handle.remove()
    return seq
