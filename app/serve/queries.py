"""The kNN-LM's query keys, never read with more context than the datastore's keys were. A stored key saw at most
`block` tokens (the stream is cut into blocks of that length, app.core.tokens.blocks), so the query at position t is
the key of the base's pass over the `block` tokens ending at t; the base's own prediction still reads its whole
context. Within the first `block` tokens that is the full pass's key itself."""
import numpy as np
import torch

from ..core.keys import KeyCapture

BATCH = 32  # windows per forward pass when a long passage needs many


def last_keys(lm, windows: torch.Tensor) -> torch.Tensor:
    """The key at the last position of each (m, length) window, float32 on the CPU, (m, width)."""
    out = []
    with KeyCapture(lm) as capture:
        for start in range(0, len(windows), BATCH):
            lm(input_ids=windows[start: start + BATCH].to(lm.device))
            out.append(capture.keys[:, -1].float().cpu())
    return torch.cat(out)


def query_keys(lm, ids: torch.Tensor, keys: torch.Tensor, block: int, positions) -> np.ndarray:
    """Query keys (len(positions), width) for these positions of ids (1, n); keys (1, n, width) are the full pass's,
    kept where the context fits in a block, recomputed on the last `block` tokens where it does not."""
    positions = list(positions)
    out = keys[0, positions].float().cpu()
    late = [i for i, t in enumerate(positions) if t >= block]
    if late:
        windows = torch.stack([ids[0, positions[i] - block + 1: positions[i] + 1] for i in late])
        out[late] = last_keys(lm, windows)
    return out.numpy()
