"""The evaluation protocol: sliding windows over a split's token stream.

A window of `window` tokens starts every `stride` tokens and scores only its last `stride` labels, so every scored
token is predicted from at least window - stride + 1 tokens of context (more than half the window) and each is
scored once. The stream's first window - stride labels and a tail shorter than a stride are not scored. With the
window equal to the datastore's block, a kNN-LM query never holds more context than the keys it is compared with.
Every scored token carries the index of its document, for intervals over documents.
"""
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Windows:
    inputs: torch.Tensor  # (n, window) token ids
    labels: torch.Tensor  # (n, window) next tokens
    stride: int  # the last `stride` columns of each window are scored
    documents: np.ndarray  # (n * stride,) document index of each scored label, in stream order

    def scored(self, values: torch.Tensor) -> torch.Tensor:
        """(n, window, ...) per-position values -> (n * stride, ...), the scored ones in stream order."""
        return values[:, -self.stride:].flatten(0, 1)


def sliding_windows(stream: np.ndarray, eos_id: int, window: int, stride: int) -> Windows:
    if not 0 < stride <= window // 2:
        raise ValueError(f"stride {stride} must be between 1 and half the window ({window // 2})")
    starts = np.arange(0, len(stream) - window, stride)  # window s predicts labels s + 1 .. s + window
    cols = np.arange(window)
    inputs = stream[starts[:, None] + cols]
    labels = stream[starts[:, None] + cols + 1]
    # the document of the label at position p: how many documents ended (EOS) before p
    ended_before = np.concatenate([[0], np.cumsum(stream == eos_id)])
    positions = (starts[:, None] + cols[-stride:] + 1).ravel()
    return Windows(torch.from_numpy(inputs.astype(np.int64)), torch.from_numpy(labels.astype(np.int64)), stride,
                   ended_before[positions])
