"""Corpora as token streams, cut into the fixed blocks that training, datastores and evaluation all share."""
import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from . import checksums, locks, paths, quarantine
from .documents import read_documents, write_documents
from .files import read_json, write_json
from .vocab import document_start_ids


def encode_file(tokenizer, path, fingerprint: str) -> np.ndarray:
    """Documents as one int32 stream, each started as its family starts a text and ended by EOS; cached by (file
    content, tokenizer), encoded once however many threads and processes ask at the same time."""
    start = document_start_ids(tokenizer)
    key = hashlib.sha256(open(path, "rb").read() + fingerprint.encode() + str(start).encode()).hexdigest()[:16]
    cached = paths.token_cache(key)
    with locks.held(cached):
        stream = read_stream(cached)
        if stream is None:
            ids = []
            # The backend tokenizer encodes whole documents without the model-length warning of the wrapper.
            for encoding in tokenizer.backend_tokenizer.encode_batch(read_documents(path), add_special_tokens=False):
                ids.extend(start + encoding.ids)
                ids.append(tokenizer.eos_token_id)
            stream = np.asarray(ids, dtype=np.int32)
            write_stream(cached, stream)
        return stream


def read_stream(cached: Path) -> np.ndarray | None:
    """The cached stream when it matches its checksum (<key>.json); None when there is none. A damaged one is moved
    aside; one cached before checksums were is accepted when it reads as a stream, and its checksum recorded."""
    if not cached.exists():
        return None
    sums = cached.with_suffix(".json")
    try:
        recorded = read_json(sums)
        problem = checksums.mismatch(cached, recorded) if recorded is not None else None
        if problem is None:
            stream = np.load(cached)
            if stream.dtype == np.int32 and stream.ndim == 1:
                if recorded is None:
                    write_json(sums, checksums.entry(cached))
                return stream
            problem = f"holds {stream.dtype} of shape {stream.shape}, not a stream of int32 token ids"
    except (OSError, ValueError, EOFError, KeyError, TypeError) as error:
        problem = f"unreadable: {error}"
    quarantine.move_aside(cached, problem)
    return None


def write_stream(cached: Path, stream: np.ndarray):
    """The stream, then its checksum: a stream without its checksum is never taken as checked."""
    sums = cached.with_suffix(".json")
    sums.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cached.parent, prefix=f"{cached.stem}.", suffix=".tmp.npy")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, stream)
        os.replace(tmp, cached)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    write_json(sums, checksums.entry(cached))


def blocks(stream: np.ndarray, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping (inputs, labels) blocks; position p of the stream is block p // length, column p % length."""
    n = (len(stream) - 1) // length
    inputs = torch.from_numpy(stream[: n * length].astype(np.int64)).view(n, length)
    labels = torch.from_numpy(stream[1: n * length + 1].astype(np.int64)).view(n, length)
    return inputs, labels


def block_entries(stream: np.ndarray, length: int) -> int:
    """How many positions the blocks of this stream cover: one datastore entry each."""
    return (len(stream) - 1) // length * length


def first_tokens(corpus: Path, tokenizer, fingerprint: str, cap: int) -> Path:
    """The corpus file's first documents holding at most cap tokens (at least one document), written once into the
    cache; the corpus itself when it is no longer than that."""
    stream = encode_file(tokenizer, corpus, fingerprint)
    if len(stream) <= cap:
        return corpus
    digest = hashlib.sha256(Path(corpus).read_bytes() + f"|{fingerprint}|{cap}".encode()).hexdigest()[:12]
    out = paths.CACHE / "corpora" / f"{corpus.parent.name}-{corpus.name.split('.')[0]}-first{cap}-{digest}.txt"
    if not out.exists():
        ends = np.flatnonzero(stream == tokenizer.eos_token_id) + 1  # where each document's tokens end
        write_documents(out, read_documents(corpus)[:max(1, int(np.searchsorted(ends, cap, side="right")))])
    return out
