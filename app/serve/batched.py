"""The model calls of a request, submitted to the engine's scheduler so that concurrent requests share them: forward
passes of one model over several prompts become one right-padded pass (causal attention never lets a real token see
the padding after it, so each row is computed as it would be alone), and searches of one datastore at one k become
one search over all the queries. Each returns a Future of scheduler.Done."""
import numpy as np
import torch

from ..core.distributions import model_probs
from ..core.keys import KeyCapture
from .engine import Engine

LOGITS_BUDGET = 2**26  # floats of logits per batched pass (256 MB): more rows than that are split into several passes


def forward(engine: Engine, model, vocab: int, ids: torch.Tensor, positions: list[int], repeats: int = 1):
    """(p(next) over the tokenizer at each position (P, vocab), the kNN keys there (P, hidden)) for ids (1, n)."""
    return engine.scheduler.submit(lambda items: _forward(model, vocab, items), (ids[0], positions),
                                   key=("forward", id(model)), repeats=repeats)


def search(engine: Engine, store, queries: np.ndarray, k: int, repeats: int = 1):
    """(distances, entry ids, values) of the k nearest entries to each query (q, d), as store.neighbours."""
    return engine.scheduler.submit(lambda items: _search(store, k, items), queries, key=("search", id(store), k),
                                   repeats=repeats)


def _forward(model, vocab: int, items: list) -> list:
    out, chunk, size = [], [], 0
    for row, positions in items:
        if chunk and (size + len(positions)) * vocab > LOGITS_BUDGET:
            out += _padded_pass(model, vocab, chunk)
            chunk, size = [], 0
        chunk.append((row, positions))
        size += len(positions)
    return out + _padded_pass(model, vocab, chunk)


def _padded_pass(model, vocab: int, items: list) -> list:
    batch = torch.zeros(len(items), max(len(row) for row, _ in items), dtype=torch.long)
    keep = torch.zeros(batch.shape, dtype=torch.bool)  # logits only where asked: (rows' positions, vocab)
    for i, (row, positions) in enumerate(items):
        batch[i, :len(row)] = row
        keep[i, positions] = True
    with KeyCapture(model) as capture:
        logits = model(input_ids=batch.to(model.device), logits_to_keep=keep.to(model.device)).logits
    probs = model_probs(logits, vocab).cpu()
    keys = capture.keys[keep.to(capture.keys.device)].float().cpu()
    out, start = [], 0
    for _, positions in items:  # the kept rows come in order: row by row, position by position
        end = start + len(positions)
        out.append((probs[start:end], keys[start:end]))
        start = end
    return out


def _search(store, k: int, items: list) -> list:
    distances, ids, values = store.neighbours(np.concatenate(items), k)
    ends = np.cumsum([len(q) for q in items])
    return [(distances[a:b], ids[a:b], values[a:b]) for a, b in zip([0, *ends[:-1]], ends)]
