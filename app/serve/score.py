"""Score a passage: the probability each predictor gives to every actual next token, the perplexities, the
gain from base to mixture per token, and perplexity against alpha. Mixing target probabilities is exact:
p_mix(y) = alpha * p_other(y) + (1 - alpha) * p_base(y), so a new alpha needs no model call."""
import math
from dataclasses import dataclass

import torch

from ..core.distributions import knn_target_probs, mix, perplexity
from . import batched
from .engine import Engine, InputError, Resolved, Weights
from .queries import query_keys

CURVE_ALPHAS = [round(a * 0.05, 2) for a in range(21)]  # the chart's x axis, 0 to 1


@dataclass
class Scored:
    text: str
    base: str
    domain: str
    k: int
    temperature: float
    tokens: list  # the predicted tokens (every token of the passage)
    p_base: torch.Tensor  # (n,) probability of the actual next token
    p_mem: torch.Tensor
    p_knn: torch.Tensor | None  # None when the memory has no corpus to search
    tuned: Weights  # the memory's own weights for this base, marked on the chart
    knows: str = ""  # what the memory's corpus is


def score(engine: Engine, resolved: Resolved, text: str, progress=None, knn: bool = True) -> Scored:
    """knn False: the base and the decoder only, the kNN-LM's store not asked for (a caller whose store is still
    building scores the rest now)."""
    pair = resolved.pair
    lm, decoder, tokenizer = pair.lm, pair.decoder, pair.tokenizer
    ids, _ = resolved.encode(text, truncate=False)
    if ids.shape[1] < 2:
        raise InputError("the passage has no token to score")
    store = engine.datastore(pair.base, pair.domain, progress) if knn else None
    targets, vocab = ids[0, 1:], resolved.vocab
    positions = torch.arange(len(targets))
    calls = [batched.forward(engine, model, vocab, ids, positions.tolist()) for model in (lm, decoder)]
    (p_base, keys), (p_mem, _) = [call.result().value for call in calls]
    p_base, p_mem = p_base[positions, targets], p_mem[positions, targets]
    p_knn = None
    if store is not None:
        # past the store's block, a query reads only the block's worth of latest tokens, as the stored keys did
        queries = engine.scheduler.call(query_keys, lm, ids, keys[None], store.recipe["block"],
                                        positions.tolist()).value
        distances, _, values = batched.search(engine, store, queries, resolved.k).result().value
        p_knn = knn_target_probs(distances, values, resolved.temperature, targets)
    return Scored(text, pair.base, pair.domain, resolved.k, resolved.temperature,
                  tokenizer.batch_decode(targets[:, None].tolist()), p_base, p_mem, p_knn, resolved.tuned,
                  pair.memory.knows)


def finite(value: float) -> float | None:
    """JSON has no infinity: an infinite perplexity (some token had probability 0) is null."""
    return value if math.isfinite(value) else None


def gain_bits(p_mix: float, p_base: float) -> float:
    """log2 p_mix / p_base: how many bits the mixture gains over the base on this token (negative: it loses)."""
    return math.log2(max(p_mix, 1e-300) / max(p_base, 1e-300))


def summary(s: Scored, weights: Weights | float) -> dict:
    """Per-token probabilities and gains and the perplexities at these weights (a single number: both at that alpha),
    the perplexity curve, and each mixture's tuned weight with its perplexity."""
    w = Weights.of(weights)
    others = {"memdec": s.p_mem} if s.p_knn is None else {"memdec": s.p_mem, "knn": s.p_knn}
    mixed = {f"mix_{name}": mix(s.p_base, p, w.of_mixture(f"mix_{name}")) for name, p in others.items()}
    tuned = {name: s.tuned.of_mixture(f"mix_{name}") for name in others}
    tokens = []
    for i, (t, b) in enumerate(zip(s.tokens, s.p_base.tolist())):
        mixes = {name: float(p[i]) for name, p in mixed.items()}
        tokens.append({"token": t, "base": b, **{name: float(p[i]) for name, p in others.items()}, **mixes,
                       "gain_bits": {name: gain_bits(p, b) for name, p in mixes.items()}})
    return {
        "text": s.text, "base": s.base, "domain": s.domain, "knows": s.knows, "alpha": w.alpha,
        "knn_lambda": w.knn_lambda, "lock_alpha": w.locked, "k": s.k, "temperature": s.temperature,
        "tokens": tokens,
        "perplexity": {"base": finite(perplexity(s.p_base)), "memdec": finite(perplexity(s.p_mem)),
                       **{name: finite(perplexity(p)) for name, p in mixed.items()}},
        # share of tokens that some neighbour predicts
        "knn_coverage": None if s.p_knn is None else float((s.p_knn > 0).float().mean()),
        "perplexity_vs_alpha": {"alpha": CURVE_ALPHAS,
                                **{f"mix_{name}": [finite(perplexity(mix(s.p_base, p, a))) for a in CURVE_ALPHAS]
                                   for name, p in others.items()}},
        "tuned": {f"mix_{name}": {"weight": a, "perplexity": finite(perplexity(mix(s.p_base, others[name], a)))}
                  for name, a in tuned.items()},
    }
