"""The retriever at scale: approximate indexes against exact search, their recorded recall, keys streamed to disk
and resumed after a killed build, index settings in the store's identity, memory-mapped indexes."""
import random

import numpy as np
import pytest
import torch

from app.core import datastore
from app.core.datastore import faiss
from app.core.documents import write_documents
from app.core.models import load_lm

WORDS = "cell protein gene licence software copyright interest rate bond treasury enzyme substrate".split()


@pytest.fixture(autouse=True, scope="module")
def one_faiss_thread():
    """FAISS's OpenMP threads spin-wait for each other: on busy shared cores one thread is several times faster."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_family):
    """A tiny model and a corpus of about 3,000 tokens (some 190 blocks of 16) on disk."""
    root = tmp_path_factory.mktemp("scale")
    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))) + "." for _ in range(300)]
    tokenizer, folders = tiny_family(root, texts, {"a": (1, 16)})  # narrow: PQ trains per dimension
    corpus = root / "corpus.txt.gz"
    write_documents(corpus, texts)
    return {"root": root, "tokenizer": tokenizer, "folder": folders["a"], "corpus": corpus,
            "model": load_lm(folders["a"], torch.device("cpu"))}


def build(world, name, kind=None, progress=None):
    return datastore.load_or_build(world["model"], world["tokenizer"], world["folder"], world["corpus"],
                                   world["root"] / name, 16, progress, kind)


def wanted(world, kind=None):
    return datastore.wanted_recipe(world["folder"], world["tokenizer"], world["corpus"], 16, kind=kind)


def exact_ids(keys, queries, k):
    """Brute force in float64, independent of FAISS."""
    keys = np.asarray(keys, dtype=np.float64)
    d = (queries.astype(np.float64) ** 2).sum(1)[:, None] - 2 * queries @ keys.T + (keys ** 2).sum(1)[None]
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def recall(found, exact):
    return np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)])


def mixture(n, d, seed=0):
    """Keys like hidden states: clusters of unequal spread per dimension, in fp16."""
    rng = np.random.default_rng(seed)
    scale = np.exp(rng.normal(0, 0.5, d))
    centres = rng.normal(0, 1, (64, d)) * scale
    return (centres[rng.integers(0, 64, n)] + rng.normal(0, 0.5, (n, d)) * scale).astype(np.float16)


@pytest.mark.parametrize("kind, floor", [("ivfpq", 0.8), ("hnsw", 0.95)])
def test_approximate_indexes_find_the_exact_neighbours(kind, floor):
    keys = mixture(10_000, 16)
    spec = datastore.index_spec(len(keys), kind)
    store = datastore.Datastore(keys, np.zeros(len(keys), np.int32), datastore.make_index(keys, spec), {}, {})
    assert type(store.index).__name__ == spec["type"]
    queries = datastore.recall_queries(keys)
    assert recall(store.search(queries, 32)[1], exact_ids(keys, queries, 32)) > floor


def test_hnsw_widens_its_search_to_k():
    """With efSearch below k, FAISS's HNSW still returns k ids but misses neighbours; the store searches wider."""
    keys = mixture(20_000, 32, seed=1)
    index = datastore.make_index(keys, dict(datastore.index_spec(len(keys), "hnsw"), ef_search=16))
    queries = datastore.recall_queries(keys)
    found = datastore.Datastore(keys, np.zeros(len(keys), np.int32), index, {}, {}).search(queries, 256)[1]
    assert recall(found, exact_ids(keys, queries, 256)) > 0.95


def test_defaults_by_size(monkeypatch):
    assert datastore.index_spec(datastore.IVF_THRESHOLD - 1) == {"type": "IndexFlatL2"}
    # today's IVF-PQ spec, field for field, so the recipes of stores already built stay equal
    assert datastore.index_spec(datastore.IVF_THRESHOLD) == {
        "type": "IndexIVFPQ", "lists": 4096, "max_code_bytes": 64, "bits": 8, "nprobe": 32,
        "train_sample_per_list": 256, "seed": 0}
    assert datastore.index_spec(10, "hnsw")["type"] == "IndexHNSWFlat"
    with pytest.raises(ValueError):
        datastore.index_spec(10, "lsh")


@pytest.mark.parametrize("kind", ["ivfpq", "hnsw"])
def test_recorded_recall_matches_a_recomputation(world, kind):
    store = build(world, f"recall-{kind}", kind)
    recorded = datastore.load(world["root"] / f"recall-{kind}", wanted(world, kind)).meta["recall"]
    assert recorded["k"] == 128 and recorded["queries"] == 200 and "recall" not in str(store.recipe)
    queries = datastore.recall_queries(store.keys)
    again = recall(store.search(queries, 128)[1], exact_ids(store.keys, queries, 128))
    # blocks that start with the same token have equal first keys: ties may break either way at the k-th neighbour
    assert recorded["value"] == pytest.approx(again, abs=2e-3)


def test_exact_store_records_recall_one_without_measuring(world, monkeypatch):
    monkeypatch.setattr(datastore, "recall_queries", None)  # measuring would call it
    store = build(world, "exact-recall")
    assert store.meta["recall"] == {"value": 1.0, "k": 128, "queries": 0}


def test_interrupted_key_extraction_resumes_to_the_same_keys(world, monkeypatch):
    batch_rows = 16 * 16  # compute_keys's batch of 16 blocks of 16 tokens
    monkeypatch.setattr(datastore, "KEY_CHUNK_ROWS", 2 * batch_rows)
    whole = build(world, "whole")
    calls, rows = [], []

    def killed_after_three_batches(fraction, desc):
        calls.append(fraction)
        if len(calls) == 3:  # two batches are one finished chunk; the third is lost
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build(world, "resumed", progress=killed_after_three_batches)
    with pytest.raises(FileNotFoundError):  # nothing half-made loads
        datastore.load(world["root"] / "resumed", wanted(world))
    # keys are read from the trunk (the output layer is not needed for them), so the trunk's passes are counted
    hook = world["model"].base_model.register_forward_pre_hook(
        lambda _m, _a, kwargs: rows.append(kwargs["input_ids"].numel()), with_kwargs=True)
    try:
        resumed = build(world, "resumed")
    finally:
        hook.remove()
    assert sum(rows) == len(whole) - 2 * batch_rows  # the finished chunk was not computed again
    assert np.array_equal(np.asarray(resumed.keys), np.asarray(whole.keys)) and resumed.keys.dtype == np.float16
    assert np.array_equal(resumed.values, whole.values)
    assert not list(world["root"].glob("resumed.building-*"))


def test_a_build_with_another_recipe_does_not_resume_its_keys(world, monkeypatch):
    monkeypatch.setattr(datastore, "KEY_CHUNK_ROWS", 1)
    with pytest.raises(KeyboardInterrupt):
        build(world, "other", progress=lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    (started,) = world["root"].glob("other.building-*")
    np.lib.format.open_memmap(started / "keys.npy", mode="r+")[:] = 7  # if resumed, these would show
    store = build(world, "other", kind="hnsw")
    assert not (np.asarray(store.keys[:256]) == 7).any()


def test_other_index_settings_are_stale_and_rebuilt(world):
    exact = build(world, "settings")
    folder = world["root"] / "settings"
    with pytest.raises(datastore.StaleDatastore):  # another kind
        datastore.load(folder, wanted(world, "hnsw"))
    hnsw = build(world, "settings", "hnsw")
    assert isinstance(hnsw.index, faiss.IndexHNSWFlat) and np.array_equal(np.asarray(hnsw.keys), np.asarray(exact.keys))
    other = wanted(world, "hnsw")
    other["index"]["ef_search"] = 64
    with pytest.raises(datastore.StaleDatastore):  # another parameter
        datastore.load(folder, other)
    datastore.load(folder, wanted(world, "hnsw"))


def mapped(index) -> bool:
    """Whether the index's bulk (flat codes, HNSW storage, IVF lists) is a view of the file, not a copy in RAM."""
    if isinstance(index, faiss.IndexHNSW):
        return not faiss.downcast_index(index.storage).codes.is_owned
    if isinstance(index, faiss.IndexIVF):
        return not faiss.downcast_InvertedLists(index.invlists).codes.at(0).is_owned
    return not index.codes.is_owned


@pytest.mark.parametrize("kind", ["exact", "ivfpq", "hnsw"])
def test_loaded_index_is_memory_mapped_and_answers_as_in_memory(world, kind):
    store = build(world, f"mapped-{kind}", kind)
    folder = world["root"] / f"mapped-{kind}"
    loaded = datastore.load(folder, wanted(world, kind))
    in_memory = faiss.read_index(str(folder / "index.faiss"))
    assert mapped(loaded.index) and mapped(store.index) and not mapped(in_memory)
    queries = datastore.recall_queries(loaded.keys, 50, seed=1)
    distances, ids = loaded.search(queries, 20)
    again = datastore.Datastore(loaded.keys, loaded.values, in_memory, {}, {}).search(queries, 20)
    assert np.array_equal(distances, again[0]) and np.array_equal(ids, again[1])


def test_flat_search_is_unchanged_by_the_file(world):
    """Exact stores answer exactly as the flat index the old layout built in RAM, also when loaded from that layout."""
    store = build(world, "flat")
    fresh = faiss.IndexFlatL2(store.keys.shape[1])
    fresh.add(np.asarray(store.keys, dtype=np.float32))
    queries = datastore.recall_queries(store.keys, 50, seed=2)
    old = datastore.Datastore(store.keys, store.values, fresh, {}, {}).search(queries, 20)
    for name in ("index.faiss", "checksums.json"):  # a store of the old layout
        (world["root"] / "flat" / name).unlink()
    legacy = datastore.load(world["root"] / "flat", wanted(world))
    for answer in (store.search(queries, 20), legacy.search(queries, 20)):
        assert np.array_equal(answer[0], old[0]) and np.array_equal(answer[1], old[1])
    assert legacy.index.codes.is_owned


