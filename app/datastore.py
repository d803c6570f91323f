"""The kNN-LM datastore: one (key, value) pair per token of a corpus, searched with FAISS.

Key at position t: the input of the last block's feed-forward layer (after its LayerNorm), read with a
forward hook. Value: the token at t + 1. Keys are stored in fp16 with a metadata file holding the model,
tokenizer and corpus fingerprints, so a store made from another model or corpus is never reused.
"""
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import faiss  # after torch (faiss issue 2126)
from tqdm.auto import tqdm

from .models import file_digest, last_mlp, model_fingerprint, tokenizer_fingerprint
from .paths import CACHE
from .tokens import blocks, encode_file

FORMAT = 1
IVF_THRESHOLD = 2_000_000  # exact search below this many entries; IVF-PQ above (the paper's index)


class StaleDatastore(Exception):
    """The store on disk was made from another model, tokenizer or corpus."""


class KeyCapture:
    """Context manager that records the input of the last MLP on every forward pass."""

    def __init__(self, model):
        self.module, self.keys = last_mlp(model), None

    def __enter__(self):
        self.handle = self.module.register_forward_pre_hook(lambda _m, args: setattr(self, "keys", args[0].detach()))
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def store_folder(model, domain: str) -> Path:
    """Where the store of (model, domain) lives, one place for the app and the pipeline so each reuses the other's."""
    name = Path(model).name if Path(model).exists() else str(model).replace("/", "--")
    return CACHE / "datastores" / f"{name}__{domain}"


def expected_meta(model_folder, tokenizer, corpus_path, block: int) -> dict:
    return {"format": FORMAT, "model": model_fingerprint(model_folder), "tokenizer": tokenizer_fingerprint(tokenizer),
            "corpus": file_digest(corpus_path), "block": block,
            "model_folder": str(model_folder), "corpus_path": str(corpus_path)}


def _matches(meta: dict, expected: dict) -> bool:
    return all(meta.get(k) == expected[k] for k in ("format", "model", "tokenizer", "corpus", "block"))


@dataclass
class Datastore:
    keys: np.ndarray  # (n, d) float16
    values: np.ndarray  # (n,) int32
    index: faiss.Index
    meta: dict

    def __len__(self):
        return len(self.values)

    def search(self, queries, k: int):
        """Squared L2 distances and entry ids of the k nearest keys, sorted nearest first (checked, not assumed)."""
        q = np.ascontiguousarray(np.asarray(queries, dtype=np.float32))
        k = min(k, len(self))
        distances, ids = self.index.search(q, k)
        order = np.argsort(distances, axis=1, kind="stable")
        return np.take_along_axis(distances, order, 1), np.take_along_axis(ids, order, 1)

    def neighbours(self, queries, k: int):
        """(distances, ids, next-token values) as torch tensors."""
        distances, ids = self.search(queries, k)
        return torch.from_numpy(distances), torch.from_numpy(ids), torch.from_numpy(self.values[ids].astype(np.int64))


def make_index(keys: np.ndarray) -> faiss.Index:
    n, d = keys.shape
    if n < IVF_THRESHOLD:
        index = faiss.IndexFlatL2(d)
    else:
        subquantizers = max(m for m in range(1, 65) if d % m == 0)  # up to 64-byte codes, as in the paper
        lists = min(4096, n // 64)  # FAISS wants dozens of training points per list
        index = faiss.IndexIVFPQ(faiss.IndexFlatL2(d), d, lists, subquantizers, 8)
        sample = keys[np.random.default_rng(0).choice(n, size=min(n, 256 * lists), replace=False)]
        index.train(sample.astype(np.float32))
        index.nprobe = 32
    for start in range(0, n, 65536):
        index.add(keys[start: start + 65536].astype(np.float32))
    return index


@torch.no_grad()
def compute_keys(model, inputs: torch.Tensor, batch_size: int = 16, progress=None, desc: str = "keys") -> np.ndarray:
    """Keys for every position of the (blocks, length) inputs, in stream order, as fp16."""
    out = []
    dev = next(model.parameters()).device
    with KeyCapture(model) as capture:
        for start in tqdm(range(0, len(inputs), batch_size), desc=desc, leave=False):
            model(input_ids=inputs[start: start + batch_size].to(dev))
            out.append(capture.keys.flatten(0, 1).to(torch.float16).cpu().numpy())
            if progress:
                progress(min(1.0, (start + batch_size) / len(inputs)), desc)
    return np.concatenate(out)


def build(model, tokenizer, model_folder, corpus_path, folder: Path, block: int = 128, progress=None) -> Datastore:
    """Builds the store into a temporary folder and renames it into place, so a cut-off build leaves nothing."""
    meta = expected_meta(model_folder, tokenizer, corpus_path, block)
    inputs, labels = blocks(encode_file(tokenizer, corpus_path, meta["tokenizer"]), block)
    keys = compute_keys(model, inputs, progress=progress, desc="datastore keys")
    values = labels.flatten().numpy().astype(np.int32)
    index = make_index(keys)
    meta.update(entries=len(values), dim=int(keys.shape[1]), index=type(index).__name__)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / "keys.npy", keys)
    np.save(tmp / "values.npy", values)
    if not isinstance(index, faiss.IndexFlat):
        faiss.write_index(index, str(tmp / "index.faiss"))
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return Datastore(keys, values, index, meta)


def load(folder: Path, expected: dict) -> Datastore:
    """Loads a store, refusing one whose fingerprints differ from expected."""
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"no datastore at {folder}")
    meta = json.loads(meta_path.read_text())
    if not _matches(meta, expected):
        raise StaleDatastore(f"datastore {folder} was built from another model, tokenizer or corpus")
    keys = np.load(folder / "keys.npy", mmap_mode="r")
    values = np.load(folder / "values.npy")
    index = faiss.read_index(str(folder / "index.faiss")) if (folder / "index.faiss").exists() else make_index(keys)
    return Datastore(keys, values, index, meta)


def load_or_build(model, tokenizer, model_folder, corpus_path, folder: Path, block: int = 128, progress=None) -> Datastore:
    """The current store for (model, corpus): reused when its fingerprints match, rebuilt when missing or stale."""
    try:
        return load(folder, expected_meta(model_folder, tokenizer, corpus_path, block))
    except (FileNotFoundError, StaleDatastore):
        return build(model, tokenizer, model_folder, corpus_path, folder, block, progress)
