"""Score a passage: the probability each predictor gives to every actual next token, the perplexities, the
gain from base to mixture per token, and perplexity against alpha. Mixing target probabilities is exact:
p_mix(y) = alpha * p_other(y) + (1 - alpha) * p_base(y), so a new alpha needs no model call."""
import math
from dataclasses import dataclass

import torch

from .datastore import KeyCapture
from .distributions import knn_target_probs, mix, model_probs
from .engine import Engine, InputError, check

ALPHAS = [round(a * 0.05, 2) for a in range(21)]


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
    p_knn: torch.Tensor


def score(engine: Engine, text: str, base=None, domain=None, k=None, temperature=None, progress=None) -> Scored:
    base, domain, lm, decoder, tokenizer, memory = engine.pair(base, domain)
    k, temperature = engine.knn_settings(domain, k, temperature)
    ids, _ = engine.encode(tokenizer, text, engine.context(lm, decoder), truncate=False)
    if ids.shape[1] < 2:
        raise InputError("the passage has no token to score")
    store = engine.datastore(base, domain, progress)
    targets, vocab = ids[0, 1:], len(tokenizer)
    with engine.lock, torch.no_grad():
        with KeyCapture(lm) as capture:
            logits = lm(input_ids=ids.to(lm.device)).logits[0, :-1]
        p_base = model_probs(logits, vocab).cpu()[torch.arange(len(targets)), targets]
        p_mem = model_probs(decoder(input_ids=ids.to(decoder.device)).logits[0, :-1], vocab).cpu()[torch.arange(len(targets)), targets]
        distances, _, values = store.neighbours(capture.keys[0, :-1].float().cpu().numpy(), k)
        p_knn = knn_target_probs(distances, values, temperature, targets)
    return Scored(text, base, domain, k, temperature, tokenizer.batch_decode(targets[:, None].tolist()), p_base, p_mem, p_knn)


def perplexity(p: torch.Tensor) -> float | None:
    """exp of the mean negative log-probability; None (JSON null) when some token has probability 0, as the
    kNN-LM alone gives to a token that no neighbour predicts."""
    value = float(torch.exp(-p.double().log().mean()))
    return value if math.isfinite(value) else None


def summary(s: Scored, alpha: float) -> dict:
    """Per-token probabilities and perplexities for this alpha, plus the perplexity curve over ALPHAS."""
    alpha = check("alpha", alpha)
    mixed = {"mix_memdec": mix(s.p_base, s.p_mem, alpha), "mix_knn": mix(s.p_base, s.p_knn, alpha)}
    return {
        "text": s.text, "base": s.base, "domain": s.domain, "alpha": alpha, "k": s.k, "temperature": s.temperature,
        "tokens": [{"token": t, "base": float(b), "memdec": float(m), "knn": float(n), **{name: float(p[i]) for name, p in mixed.items()}}
                   for i, (t, b, m, n) in enumerate(zip(s.tokens, s.p_base, s.p_mem, s.p_knn))],
        "perplexity": {"base": perplexity(s.p_base), "memdec": perplexity(s.p_mem),
                       **{name: perplexity(p) for name, p in mixed.items()}},
        "knn_coverage": float((s.p_knn > 0).float().mean()),  # share of tokens that some neighbour predicts
        "perplexity_vs_alpha": {"alpha": ALPHAS,
                                "mix_memdec": [perplexity(mix(s.p_base, s.p_mem, a)) for a in ALPHAS],
                                "mix_knn": [perplexity(mix(s.p_base, s.p_knn, a)) for a in ALPHAS]},
    }
