"""The three next-token distributions and their mixtures, all over the tokenizer's ids.

Mixing happens in probability space, p = alpha * p_other + (1 - alpha) * p_base; mixing logits is a
different (and wrong) model.
"""
import math

import numpy as np
import torch


def model_probs(logits: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Softmax over the tokenizer's ids only: output layers may be padded past the tokenizer (Qwen)."""
    return torch.softmax(logits[..., :vocab_size].float(), dim=-1)


def knn_weights(distances: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(-d / T) over the k neighbours of each query; d is the squared L2 distance."""
    return torch.softmax(-distances.float() / temperature, dim=-1)


def knn_probs(distances: torch.Tensor, values: torch.Tensor, temperature: float, vocab_size: int) -> torch.Tensor:
    """p_kNN(v): the summed weight of the neighbours whose next token is v. Shapes (q, k) -> (q, vocab)."""
    weights = knn_weights(distances, temperature)
    out = torch.zeros(distances.shape[0], vocab_size, dtype=weights.dtype, device=weights.device)
    return out.scatter_add_(1, values.long(), weights)


def knn_target_probs(distances: torch.Tensor, values: torch.Tensor, temperature: float,
                     targets: torch.Tensor) -> torch.Tensor:
    """p_kNN(target) for each query without building the full distribution (for perplexity)."""
    weights = knn_weights(distances, temperature)
    return (weights * (values.long() == targets.long()[:, None])).sum(-1)


def mix(p_base, p_other, alpha: float):
    """The interpolation, for tensors and numpy arrays alike (full distributions or target probabilities)."""
    return alpha * p_other + (1 - alpha) * p_base


def mix_log(logp_base: torch.Tensor, logp_other: torch.Tensor, alpha: float) -> torch.Tensor:
    """log of mix(), computed stably in log space."""
    if alpha <= 0.0:
        return logp_base
    if alpha >= 1.0:
        return logp_other
    return torch.logaddexp(logp_base + math.log(1.0 - alpha), logp_other + math.log(alpha))


def mix_logits(logp_base: torch.Tensor, logp_other: torch.Tensor, alpha: float) -> torch.Tensor:
    """The wrong mixture, for teaching: softmax(alpha * z_other + (1 - alpha) * z_base), z the log-probabilities (a
    logit differs from them by a constant per model, which the softmax cancels). It is a product of experts,
    p_other^alpha * p_base^(1-alpha) renormalised, not the interpolation. A probability of 0 (a token no neighbour
    predicts) is floored at the smallest float, so that it stays ruled out without 0 * -inf giving NaN."""
    floor = math.log(torch.finfo(logp_base.dtype).tiny)
    z = alpha * logp_other.clamp_min(floor) + (1 - alpha) * logp_base.clamp_min(floor)
    return torch.softmax(z, dim=-1)


def perplexity(p_targets) -> float:
    """exp of the mean negative log-probability of the actual tokens; infinite when one of them has probability 0,
    as the kNN-LM alone gives to a token that no neighbour predicts."""
    with np.errstate(divide="ignore"):
        nll = -float(np.mean(np.log(np.asarray(p_targets, dtype=np.float64))))
    return math.exp(nll) if nll < 700 else math.inf
