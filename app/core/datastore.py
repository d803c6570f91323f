"""The kNN-LM datastore: one (key, value) pair per token of a corpus, searched with FAISS.

Key at position t: the kNN key of the model (app.core.keys) after reading the corpus up to t. Value: the token
at t + 1. Keys are stored in fp16. The store's recipe holds the model, tokenizer and corpus fingerprints, the
block length and the index, so a store made another way is never reused.
"""
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import faiss  # after torch (faiss issue 2126)

from . import recipe
from .files import read_json, write_json
from .keys import compute_keys
from .models import file_digest, model_fingerprint, tokenizer_fingerprint
from .tokens import block_entries, blocks, encode_file

FORMAT = 2
IVF_THRESHOLD = 2_000_000  # exact search below this many entries; IVF-PQ above (the paper's index)


class StaleDatastore(Exception):
    """The store on disk was made from another model, tokenizer, corpus, block length or index."""


def index_spec(entries: int) -> dict:
    """Which FAISS index a store of this many entries gets, with every parameter that changes its answers."""
    if entries < IVF_THRESHOLD:
        return {"type": "IndexFlatL2"}
    # up to 64-byte codes as in the paper; FAISS wants dozens of training points per list
    return {"type": "IndexIVFPQ", "lists": min(4096, entries // 64), "max_code_bytes": 64, "bits": 8, "nprobe": 32,
            "train_sample_per_list": 256, "seed": 0}


def bytes_per_entry(width: int) -> int:
    """Memory one entry takes while a store is built and searched exactly: its fp16 key, the float32 copy in the
    flat index and its int32 value."""
    return width * (2 + 4) + 4


def wanted_recipe(model_folder, tokenizer, corpus_path, block: int, stream: np.ndarray | None = None) -> dict:
    fingerprint = tokenizer_fingerprint(tokenizer)
    stream = encode_file(tokenizer, corpus_path, fingerprint) if stream is None else stream
    return {"format": FORMAT, "model": model_fingerprint(model_folder), "tokenizer": fingerprint,
            "corpus": file_digest(corpus_path), "block": block, "index": index_spec(block_entries(stream, block))}


@dataclass
class Datastore:
    keys: np.ndarray  # (n, d) float16
    values: np.ndarray  # (n,) int32
    index: faiss.Index
    recipe: dict  # what the store was made from: its identity
    meta: dict  # what it holds: entries, key width, where its model and corpus were

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


def make_index(keys: np.ndarray, spec: dict) -> faiss.Index:
    n, d = keys.shape
    if spec["type"] == "IndexFlatL2":
        index = faiss.IndexFlatL2(d)
    else:
        subquantizers = max(m for m in range(1, spec["max_code_bytes"] + 1) if d % m == 0)
        index = faiss.IndexIVFPQ(faiss.IndexFlatL2(d), d, spec["lists"], subquantizers, spec["bits"])
        size = min(n, spec["train_sample_per_list"] * spec["lists"])
        sample = keys[np.random.default_rng(spec["seed"]).choice(n, size=size, replace=False)]
        index.train(sample.astype(np.float32))
        index.nprobe = spec["nprobe"]
    for start in range(0, n, 65536):
        index.add(keys[start: start + 65536].astype(np.float32))
    return index


def build(model, tokenizer, model_folder, corpus_path, folder: Path, block: int, progress=None) -> Datastore:
    """Builds the store into a temporary folder and renames it into place, so a cut-off build leaves nothing."""
    stream = encode_file(tokenizer, corpus_path, tokenizer_fingerprint(tokenizer))
    made_from = wanted_recipe(model_folder, tokenizer, corpus_path, block, stream)
    inputs, labels = blocks(stream, block)
    keys = compute_keys(model, inputs, progress=progress, desc="datastore keys")
    values = labels.flatten().numpy().astype(np.int32)
    index = make_index(keys, made_from["index"])
    meta = {"entries": len(values), "dim": int(keys.shape[1]), "model_folder": str(model_folder), "corpus_path": str(corpus_path)}
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / "keys.npy", keys)
    np.save(tmp / "values.npy", values)
    if made_from["index"]["type"] != "IndexFlatL2":
        faiss.write_index(index, str(tmp / "index.faiss"))
    write_json(tmp / "meta.json", meta)
    recipe.record(tmp, made_from)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return Datastore(keys, values, index, made_from, meta)


def load(folder: Path, wanted: dict) -> Datastore:
    """Loads a store, refusing one made from anything other than the wanted recipe."""
    if recipe.recorded(folder) is None:
        raise FileNotFoundError(f"no datastore at {folder}")
    if not recipe.is_current(folder, wanted):
        raise StaleDatastore(f"datastore {folder} was made from another model, tokenizer, corpus or index")
    keys = np.load(folder / "keys.npy", mmap_mode="r")
    values = np.load(folder / "values.npy")
    index_file = folder / "index.faiss"
    index = faiss.read_index(str(index_file)) if index_file.exists() else make_index(keys, wanted["index"])
    return Datastore(keys, values, index, recipe.recorded(folder), read_json(folder / "meta.json"))


def load_or_build(model, tokenizer, model_folder, corpus_path, folder: Path, block: int, progress=None) -> Datastore:
    """The current store for (model, corpus): reused when its recipe matches, rebuilt when missing or stale."""
    try:
        return load(folder, wanted_recipe(model_folder, tokenizer, corpus_path, block))
    except (FileNotFoundError, StaleDatastore):
        return build(model, tokenizer, model_folder, corpus_path, folder, block, progress)
