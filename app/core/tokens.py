"""Corpora as token streams, cut into the fixed blocks that training, datastores and evaluation all share."""
import hashlib

import numpy as np
import torch

from . import paths
from .documents import read_documents
from .vocab import document_start_ids


def encode_file(tokenizer, path, fingerprint: str) -> np.ndarray:
    """Documents as one int32 stream, each started as its family starts a text and ended by EOS; cached by (file
    content, tokenizer)."""
    start = document_start_ids(tokenizer)
    key = hashlib.sha256(open(path, "rb").read() + fingerprint.encode() + str(start).encode()).hexdigest()[:16]
    cached = paths.token_cache(key)
    if cached.exists():
        return np.load(cached)
    ids = []
    # The backend tokenizer encodes whole documents without the model-length warning of the wrapper.
    for encoding in tokenizer.backend_tokenizer.encode_batch(read_documents(path), add_special_tokens=False):
        ids.extend(start + encoding.ids)
        ids.append(tokenizer.eos_token_id)
    stream = np.asarray(ids, dtype=np.int32)
    cached.parent.mkdir(parents=True, exist_ok=True)
    np.save(cached.with_suffix(".tmp.npy"), stream)
    cached.with_suffix(".tmp.npy").replace(cached)
    return stream


def blocks(stream: np.ndarray, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping (inputs, labels) blocks; position p of the stream is block p // length, column p % length."""
    n = (len(stream) - 1) // length
    inputs = torch.from_numpy(stream[: n * length].astype(np.int64)).view(n, length)
    labels = torch.from_numpy(stream[1: n * length + 1].astype(np.int64)).view(n, length)
    return inputs, labels


def block_entries(stream: np.ndarray, length: int) -> int:
    """How many positions the blocks of this stream cover: one datastore entry each."""
    return (len(stream) - 1) // length * length
