"""Perplexity with 95% hierarchical bootstrap intervals: documents, and seeds where there are several.

Tokens of one document are not independent, so the unit resampled is the document: each resample draws the
split's documents with replacement and recomputes exp(total NLL / total tokens). A system trained with several
seeds is scored as the mean over seeds of its log-perplexity; inside each resample its seeds are drawn with
replacement too, so the interval holds both sources of variation (with 3 seeds the seed level is a rough one: a
bootstrap of three values). Two systems are compared on the same resamples (paired): the same documents, and the
same seed draws, which pairs runs that saw the same batches. That comparison is what decides an order.
"""
import math

import numpy as np

RESAMPLES = 2000


def document_totals(p_targets: np.ndarray, documents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(NLL summed per document, tokens per document)."""
    with np.errstate(divide="ignore"):
        nll = -np.log(np.asarray(p_targets, dtype=np.float64))
    count = np.bincount(documents)
    return np.bincount(documents, weights=nll, minlength=len(count)), count


def resample_weights(n_documents: int, seed: int = 0) -> np.ndarray:
    """(RESAMPLES, n_documents): how many times each document is drawn in each resample."""
    draws = np.random.default_rng(seed).integers(0, n_documents, size=(RESAMPLES, n_documents))
    return np.stack([np.bincount(row, minlength=n_documents) for row in draws]).astype(np.float64)


def seed_draws(n_seeds: int, resamples: int) -> np.ndarray:
    """(resamples, n_seeds): the runs drawn in each resample; one table per seed count, so that every system with
    as many seeds is drawn alike (paired by seed)."""
    if n_seeds == 1:
        return np.zeros((resamples, 1), dtype=np.int64)
    return np.random.default_rng([1, n_seeds]).integers(0, n_seeds, size=(resamples, n_seeds))


def log_ppl(runs: list, documents: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Mean over runs (seeds) of log-perplexity: one value; or, given the document weights, one per resample with
    the seeds drawn again in each."""
    per_run = []
    for p in runs:
        nll, count = document_totals(p, documents)
        per_run.append(nll.sum() / count.sum() if weights is None else (weights @ nll) / (weights @ count))
    if weights is None:
        return np.mean(per_run)
    per_run = np.stack(per_run, axis=1)  # (resamples, seeds)
    return np.take_along_axis(per_run, seed_draws(len(runs), len(per_run)), axis=1).mean(axis=1)


def summary(runs: list, documents: np.ndarray, weights: np.ndarray) -> dict:
    """Perplexity (mean over seeds of log-ppl, exponentiated), its 95% interval, and the spread over seeds."""
    boot = np.exp(log_ppl(runs, documents, weights))
    per_seed = [math.exp(log_ppl([p], documents)) for p in runs]
    return {"ppl": math.exp(log_ppl(runs, documents)), "lo": float(np.percentile(boot, 2.5)),
            "hi": float(np.percentile(boot, 97.5)), "seed_mean": float(np.mean(per_seed)),
            "seed_sd": float(np.std(per_seed, ddof=1)) if len(runs) > 1 else 0.0, "seeds": len(runs)}


def paired_ratio(runs_a: list, runs_b: list, documents: np.ndarray, weights: np.ndarray) -> dict:
    """ppl_a / ppl_b with its 95% interval on the same resamples; `separated` when the interval excludes 1."""
    diff = log_ppl(runs_a, documents, weights) - log_ppl(runs_b, documents, weights)
    lo, hi = np.exp(np.percentile(diff, [2.5, 97.5]))
    ratio = math.exp(log_ppl(runs_a, documents) - log_ppl(runs_b, documents))
    return {"ratio": ratio, "lo": float(lo), "hi": float(hi), "separated": bool(hi < 1 or lo > 1)}
