"""Perplexity of base, base + kNN-LM and base + Memory Decoder on a domain split.

Each predictor is run once per split, over the sliding windows of app.make.windows, and reduced to p(next token)
at every scored position; every mixture on the
alpha / temperature grids is then exact arithmetic on those vectors (p = a * p_other + (1 - a) * p_base).
Settings are tuned on validation and reported on test.
"""
from contextlib import nullcontext

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.distributions import knn_target_probs, mix, perplexity
from ..core.keys import KeyCapture, compute_keys
from .windows import Windows


@torch.no_grad()
def label_probs(model, windows: Windows, vocab_size: int, batch_size: int = 16, keys: list | None = None) -> np.ndarray:
    """p_model(label) at every scored position of the sliding windows, in stream order. Given a list as keys, the
    kNN keys of the scored positions are appended to it from the same pass (a base's keys cost no second forward)."""
    dev = next(model.parameters()).device
    out = []
    with KeyCapture(model) if keys is not None else nullcontext() as capture:
        for start in tqdm(range(0, len(windows.inputs), batch_size), desc="label probs", leave=False):
            part = slice(start, start + batch_size)
            logits = model(input_ids=windows.inputs[part].to(dev)).logits[..., :vocab_size].float()
            logp = torch.log_softmax(logits, -1).gather(-1, windows.labels[part, :, None].to(dev))[..., 0]
            out.append(logp[:, -windows.stride:].exp().flatten().cpu().double().numpy())
            if keys is not None:
                keys.append(windows.scored(capture.keys).to(torch.float16).cpu().numpy())
    return np.concatenate(out)


@torch.no_grad()
def knn_label_probs(model, store, windows: Windows, k: int, temperatures, keys: np.ndarray | None = None) -> dict:
    """{T: p_kNN(label)} at every scored position; the search runs once, the temperatures reuse it. Each query
    key is read in its window, so it never holds more context than the store's keys (built on blocks as long).
    keys: those of the scored positions when label_probs already read them."""
    if keys is None:
        keys = compute_keys(model, windows.inputs, desc="query keys").reshape(*windows.inputs.shape, -1)
        keys = np.ascontiguousarray(keys[:, -windows.stride:].reshape(-1, keys.shape[-1]))
    flat = windows.scored(windows.labels)
    out = {t: [] for t in temperatures}
    for start in tqdm(range(0, len(keys), 4096), desc="knn search", leave=False):
        distances, _, values = store.neighbours(keys[start: start + 4096].astype(np.float32), k)
        for t in temperatures:
            out[t].append(knn_target_probs(distances, values, t, flat[start: start + 4096]).double().numpy())
    return {t: np.concatenate(v) for t, v in out.items()}


def mixture_perplexity(p_base: np.ndarray, p_other: np.ndarray, alpha: float) -> float:
    return perplexity(mix(p_base, p_other, alpha))


def tune_alpha(p_base: np.ndarray, p_other: np.ndarray, alphas) -> float:
    return min(alphas, key=lambda a: mixture_perplexity(p_base, p_other, a))


def tune_knn(p_base: np.ndarray, p_knn: dict, alphas) -> tuple[float, float]:
    """(temperature, lambda) with the lowest validation perplexity."""
    return min(((t, a) for t in p_knn for a in alphas), key=lambda ta: mixture_perplexity(p_base, p_knn[ta[0]], ta[1]))
