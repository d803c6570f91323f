"""The kNN-LM datastore: one (key, value) pair per token of a corpus, searched with FAISS.

Key at position t: the kNN key of the model (app.core.keys) after reading the corpus up to t. Value: the token
at t + 1. Keys are stored in fp16. The store's recipe holds the model, tokenizer and corpus fingerprints, the
block length and the index, so a store made another way is never reused.

Building streams the keys in chunks into a folder of its own per recipe, so a killed build resumes from its last
finished chunk; the index is written next to the keys and memory-mapped on load, so a store need not fit in RAM.
One process builds a store at a time (a file lock per store); the others wait and load it. Each load checks the files
against the checksums written at build time and their shapes and counts against each other and the corpus; a damaged
store is moved aside (logged) and rebuilt by load_or_build.
"""
import hashlib
import json
import shutil
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

# isort: split
import faiss  # after torch (faiss issue 2126)

from . import checksums, locks, quarantine, recipe
from .files import read_json, replace_folder, write_json
from .keys import key_batches
from .models import file_digest, model_fingerprint, tokenizer_fingerprint
from .settings import Settings
from .tokens import block_entries, blocks, encode_file

FORMAT = 2  # unchanged: flat stores written before there was an index.faiss still load (see read_index)
IVF_THRESHOLD = 2_000_000  # exact search below this many entries; an approximate index above
# The approximate index by default, from a measurement (2 CPU cores; Gaussian-mixture keys of width 256; queries:
# 200 stored keys plus 5% noise; recall@128 against exact search; memory: the index's anonymous RSS):
#   IVF-PQ (the spec below)   200k: build 35 s, 239 MB, 0.3 ms/query, recall 0.947
#                               1M: build 463 s, 373 MB (268 MB of it the fixed precomputed table), 2.0 ms, 0.951
#   HNSW (M 32, efC 128, ef 256) 200k: build 28 s, 245 MB, 0.6 ms/query, recall 0.998
#                               1M: build 283 s, 1231 MB, 0.5 ms/query, 1.000
# HNSW is faster and finds more, but it keeps the float32 copy of every key that the threshold exists to avoid, plus
# its graph: 1.3 KB an entry at width 256 (16 KB at 4096) against IVF-PQ's 72 bytes, and a graph walk over a mapped
# file larger than RAM reads the disk at every hop. So IVF-PQ (also the paper's index) by default; HNSW on request.
APPROXIMATE = "ivfpq"
KINDS = {"exact": "exact search", "ivfpq": "IVF-PQ", "hnsw": "HNSW"}  # the index kinds a store may have, named
KEY_CHUNK_ROWS = 1 << 16  # keys are flushed and counted final at least this often while a build runs
RECALL_QUERIES, RECALL_NOISE, RECALL_SEED = 200, 0.05, 0  # the probe of an approximate index: see recall_queries
READ = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY  # flat codes, HNSW storage and graph, IVF lists: all mapped
KEYS, VALUES, INDEX, META, DONE = "keys.npy", "values.npy", "index.faiss", "meta.json", "keys-done.json"


class StaleDatastore(Exception):
    """The store on disk was made from another model, tokenizer, corpus, block length or index."""


class DamagedDatastore(Exception):
    """A file of the store on disk is unreadable, differs from what was written, or disagrees with the others."""


def index_spec(entries: int, kind: str | None = None) -> dict:
    """Which FAISS index a store of this many entries gets (kind: one of KINDS, None for the default at this size),
    with every parameter that changes its answers."""
    kind = kind or ("exact" if entries < IVF_THRESHOLD else APPROXIMATE)
    if kind == "exact":
        return {"type": "IndexFlatL2"}
    if kind == "ivfpq":  # up to 64-byte codes as in the paper; FAISS wants dozens of training points per list
        return {"type": "IndexIVFPQ", "lists": max(1, min(4096, entries // 64)), "max_code_bytes": 64, "bits": 8,
                "nprobe": 32, "train_sample_per_list": 256, "seed": 0}
    if kind == "hnsw":  # ef_search above Settings.k; a search for more neighbours widens it (wider_search)
        return {"type": "IndexHNSWFlat", "M": 32, "ef_construction": 128, "ef_search": 256}
    raise ValueError(f"unknown index kind {kind!r}: one of {', '.join(KINDS)}")


def bytes_per_entry(width: int) -> int:
    """Memory one entry takes while a store is built and searched exactly: its fp16 key, the float32 copy in the
    flat index and its int32 value."""
    return width * (2 + 4) + 4


def wanted_recipe(model_folder, tokenizer, corpus_path, block: int, stream: np.ndarray | None = None,
                  kind: str | None = None) -> dict:
    fingerprint = tokenizer_fingerprint(tokenizer)
    stream = encode_file(tokenizer, corpus_path, fingerprint) if stream is None else stream
    return {"format": FORMAT, "model": model_fingerprint(model_folder), "tokenizer": fingerprint,
            "corpus": file_digest(corpus_path), "block": block, "index": index_spec(block_entries(stream, block), kind)}


@dataclass
class Datastore:
    keys: np.ndarray  # (n, d) float16
    values: np.ndarray  # (n,) int32
    index: faiss.Index
    recipe: dict  # what the store was made from: its identity
    meta: dict  # what it holds: entries, key width, recall of its index, where its model and corpus were

    def __len__(self):
        return len(self.values)

    def search(self, queries, k: int):
        """Squared L2 distances and entry ids of the k nearest keys, sorted nearest first (checked, not assumed)."""
        q = np.ascontiguousarray(np.asarray(queries, dtype=np.float32))
        k = min(k, len(self))
        distances, ids = self.index.search(q, k, params=wider_search(self.index, k))
        order = np.argsort(distances, axis=1, kind="stable")
        return np.take_along_axis(distances, order, 1), np.take_along_axis(ids, order, 1)

    def neighbours(self, queries, k: int):
        """(distances, ids, next-token values) as torch tensors."""
        distances, ids = self.search(queries, k)
        return torch.from_numpy(distances), torch.from_numpy(ids), torch.from_numpy(self.values[ids].astype(np.int64))


def wider_search(index: faiss.Index, k: int):
    """HNSW explores only efSearch candidates, so below k it misses neighbours (measured): such searches get k."""
    if isinstance(index, faiss.IndexHNSW) and index.hnsw.efSearch < k:
        return faiss.SearchParametersHNSW(efSearch=k)
    return None


def make_index(keys: np.ndarray, spec: dict) -> faiss.Index:
    n, d = keys.shape
    if spec["type"] == "IndexFlatL2":
        index = faiss.IndexFlatL2(d)
    elif spec["type"] == "IndexHNSWFlat":
        index = faiss.IndexHNSWFlat(d, spec["M"])
        index.hnsw.efConstruction, index.hnsw.efSearch = spec["ef_construction"], spec["ef_search"]
    elif spec["type"] == "IndexIVFPQ":
        subquantizers = max(m for m in range(1, spec["max_code_bytes"] + 1) if d % m == 0)
        index = faiss.IndexIVFPQ(faiss.IndexFlatL2(d), d, spec["lists"], subquantizers, spec["bits"])
        size = min(n, spec["train_sample_per_list"] * spec["lists"])
        sample = keys[np.random.default_rng(spec["seed"]).choice(n, size=size, replace=False)]
        index.train(sample.astype(np.float32))
        index.nprobe = spec["nprobe"]
    else:
        raise ValueError(f"unknown index type {spec['type']!r}")
    for start in range(0, n, 65536):
        index.add(keys[start: start + 65536].astype(np.float32))
    return index


def recall_queries(keys: np.ndarray, count: int = RECALL_QUERIES, seed: int = RECALL_SEED) -> np.ndarray:
    """The fixed probe of an index: `count` stored keys drawn with the seed, each moved by Gaussian noise of
    RECALL_NOISE times the keys' spread, so that a query is near its key without being it."""
    rng = np.random.default_rng(seed)
    picked = keys[np.sort(rng.choice(len(keys), size=min(count, len(keys)), replace=False))].astype(np.float32)
    return picked + rng.normal(0, RECALL_NOISE * picked.std(), picked.shape).astype(np.float32)


def exact_neighbours(keys: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Ids of the k nearest keys by brute force over chunks, so memory-mapped keys are never copied whole."""
    distances, ids = np.empty((len(queries), 0), np.float32), np.empty((len(queries), 0), np.int64)
    for start in range(0, len(keys), 65536):
        chunk = keys[start: start + 65536].astype(np.float32)
        d, i = faiss.knn(queries, chunk, min(k, len(chunk)))
        distances, ids = np.hstack([distances, d]), np.hstack([ids, i + start])
        best = np.argsort(distances, axis=1, kind="stable")[:, :k]
        distances, ids = np.take_along_axis(distances, best, 1), np.take_along_axis(ids, best, 1)
    return ids


def measure_recall(keys: np.ndarray, index: faiss.Index, spec: dict, k: int = Settings.k) -> dict:
    """Share of the exact k nearest neighbours that the index finds for the fixed probe; exact search is 1.0."""
    k = min(k, len(keys))
    if spec["type"] == "IndexFlatL2":
        return {"value": 1.0, "k": k, "queries": 0}
    queries = recall_queries(keys)
    found = index.search(queries, k, params=wider_search(index, k))[1]
    exact = exact_neighbours(keys, queries, k)
    hits = sum(len(set(f) & set(e)) for f, e in zip(found, exact))
    return {"value": hits / exact.size, "k": k, "queries": len(queries), "seed": RECALL_SEED, "noise": RECALL_NOISE}


def building_folder(folder: Path, made_from: dict) -> Path:
    """Where a store is built: one folder per recipe, so a resumed build only ever continues its own keys."""
    digest = hashlib.sha256(json.dumps(made_from, sort_keys=True).encode()).hexdigest()[:16]
    return folder.with_name(f"{folder.name}.building-{digest}")


def write_keys(model, inputs: torch.Tensor, work: Path, progress=None) -> np.ndarray:
    """Keys of every position into work/keys.npy, batch by batch; each chunk is flushed, then the rows done are
    recorded (atomically), so a killed build resumes after its last finished chunk. Returns the keys, mapped."""
    path, length, desc = work / KEYS, inputs.shape[1], "datastore keys"
    done = (read_json(work / DONE) or {"rows": 0})["rows"]
    keys = np.lib.format.open_memmap(path, mode="r+") if done else None
    with closing(key_batches(model, inputs, start=done // length, desc=desc)) as batches:
        for blocks_done, batch in batches:
            if keys is None:  # the width is known from the first batch
                keys = np.lib.format.open_memmap(path, "w+", np.float16, (inputs.numel(), batch.shape[1]))
            end = blocks_done * length
            keys[end - len(batch): end] = batch
            if end - done >= KEY_CHUNK_ROWS or blocks_done == len(inputs):
                keys.flush()
                write_json(work / DONE, {"rows": end})
                done = end
            if progress:
                progress(blocks_done / len(inputs), desc)
    del keys
    return np.load(path, mmap_mode="r")


def write_index(keys: np.ndarray, spec: dict, work: Path) -> dict:
    """Builds the index into work/index.faiss; returns its measured recall."""
    index = make_index(keys, spec)
    faiss.write_index(index, str(work / INDEX))
    return measure_recall(keys, index, spec)


def build(model, tokenizer, model_folder, corpus_path, folder: Path, block: int, progress=None,
          kind: str | None = None) -> Datastore:
    """Builds the store in its building folder (resuming a killed build of the same recipe) and renames it into place;
    the checksums and then the recipe are recorded last, so a cut-off build never leaves a store that loads as current.
    Under the store's lock: a second builder waits, then finds the store built."""
    with locks.held(folder):
        stream = encode_file(tokenizer, corpus_path, tokenizer_fingerprint(tokenizer))
        made_from = wanted_recipe(model_folder, tokenizer, corpus_path, block, stream, kind)
        inputs, labels = blocks(stream, block)
        work = building_folder(folder, made_from)
        for abandoned in folder.parent.glob(f"{folder.name}.building-*"):  # cut-off builds of recipes no longer wanted
            if abandoned != work:
                shutil.rmtree(abandoned, ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        keys = write_keys(model, inputs, work, progress)
        np.save(work / VALUES, labels.flatten().numpy().astype(np.int32))
        if progress:
            progress(0.0, "datastore index")
        meta = {"entries": len(keys), "dim": int(keys.shape[1]), "recall": write_index(keys, made_from["index"], work),
                "model_folder": str(model_folder), "corpus_path": str(corpus_path)}
        write_json(work / META, meta)
        (work / DONE).unlink()
        checksums.seal(work, [KEYS, VALUES, INDEX, META])
        recipe.record(work, made_from)
        replace_folder(work, folder)
        return load(folder, made_from, stream)


def read_index(keys: np.ndarray, folder: Path, spec: dict) -> faiss.Index:
    """The store's index, memory-mapped (READ: no copy in RAM, and adding to it would abort). Flat stores written
    before index.faiss was have none: their index is rebuilt in RAM from the keys, as it always was."""
    path = folder / INDEX
    return faiss.read_index(str(path), READ) if path.exists() else make_index(keys, spec)


def load(folder: Path, wanted: dict, stream: np.ndarray | None = None) -> Datastore:
    """Loads a store, refusing one made from anything other than the wanted recipe (StaleDatastore) and a damaged one
    (DamagedDatastore): a file that differs from its checksum or cannot be read, shapes and counts that disagree, or,
    given the corpus's token stream, values that are not its next tokens. A store written before checksums were is
    accepted when its shapes and counts hold (rebuilding costs minutes a store), and its checksums are recorded then."""
    folder = Path(folder)
    with locks.held(folder):
        try:
            made_from = recipe.recorded(folder)
        except ValueError as error:
            raise DamagedDatastore(f"{recipe.FILE} is unreadable ({error})") from None
        if made_from is None:
            raise FileNotFoundError(f"no datastore at {folder}")
        if not recipe.is_current(folder, wanted):
            raise StaleDatastore(f"datastore {folder} was made from another model, tokenizer, corpus or index")
        sealed = checksums.is_sealed(folder)
        problem = checksums.problem(folder) if sealed else None  # first: a damaged index is never handed to FAISS
        if problem is None:
            try:
                meta = read_json(folder / META)
                keys = np.load(folder / KEYS, mmap_mode="r")
                values = np.load(folder / VALUES)
                index = read_index(keys, folder, made_from["index"])
                problem = disagreement(keys, values, index, meta, stream, made_from["block"])
            except (OSError, ValueError, EOFError, RuntimeError, KeyError, TypeError) as error:
                problem = f"unreadable: {error}"
        if problem:
            raise DamagedDatastore(problem)
        if not sealed:
            checksums.seal(folder, [name for name in (KEYS, VALUES, INDEX, META) if (folder / name).exists()])
        return Datastore(keys, values, index, made_from, meta)


def disagreement(keys: np.ndarray, values: np.ndarray, index: faiss.Index, meta: dict, stream: np.ndarray | None,
                 block: int) -> str | None:
    """What does not add up between a store's files, and its corpus's tokens when given; None when all does."""
    entries, dim = meta["entries"], meta["dim"]
    if keys.dtype != np.float16 or keys.shape != (entries, dim):
        return f"{KEYS} holds {keys.dtype} of shape {keys.shape}, {META} says float16 of shape ({entries}, {dim})"
    if values.dtype != np.int32 or values.shape != (entries,):
        return f"{VALUES} holds {values.dtype} of shape {values.shape}, {META} says int32 of shape ({entries},)"
    if index.ntotal != entries or index.d != dim:
        return f"{INDEX} holds {index.ntotal} keys of width {index.d}, {META} says {entries} of width {dim}"
    if stream is not None and block_entries(stream, block) != entries:
        return f"the corpus has {block_entries(stream, block)} positions, the store {entries}"
    if stream is not None and not np.array_equal(values, stream[1: entries + 1]):
        return f"{VALUES} are not the next tokens of the corpus"
    return None


def load_or_build(model, tokenizer, model_folder, corpus_path, folder: Path, block: int, progress=None,
                  kind: str | None = None) -> Datastore:
    """The current store for (model, corpus): reused when its recipe matches and it is intact, rebuilt when missing
    or stale, moved aside (logged, and said through progress) and rebuilt when damaged."""
    stream = encode_file(tokenizer, corpus_path, tokenizer_fingerprint(tokenizer))
    wanted = wanted_recipe(model_folder, tokenizer, corpus_path, block, stream, kind)
    with locks.held(folder):
        try:
            return load(folder, wanted, stream)
        except (FileNotFoundError, StaleDatastore):
            pass
        except DamagedDatastore as damage:
            quarantine.move_aside(folder, str(damage))
            if progress:
                progress(0.0, f"the datastore was damaged ({damage}): rebuilding it")
        return build(model, tokenizer, model_folder, corpus_path, folder, block, progress, kind)
