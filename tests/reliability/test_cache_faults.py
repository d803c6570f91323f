"""Caches that heal: each fault a cache can suffer (a truncated file, same-size wrong content, an unreadable recipe) is
injected into a tiny datastore, token stream or kNN targets; the next load must detect it, move the damaged copy
aside (logged), rebuild, and answer exactly as a fresh build does."""
import logging
import shutil

import numpy as np
import pytest
import torch

from app.core import checksums, datastore, paths, quarantine
from app.core.models import load_lm, tokenizer_fingerprint
from app.core.tokens import encode_file
from app.make import targets
from app.serve import compare
from app.serve.engine import Engine

BLOCK, K, TEMPERATURE = 16, 6, 3.0
PROMPT = "cell protein gene membrane"


@pytest.fixture(scope="module")
def world(tiny_models, tmp_path_factory):
    """A tiny base, its tokenizer, two domain corpora, and a pristine store of the first with its answers."""
    base = tiny_models["bases"]["tiny-a"]
    tokenizer = tiny_models["tokenizer"]
    w = {"base": base, "tokenizer": tokenizer, "model": load_lm(base, torch.device("cpu")),
         "corpus": tiny_models["memories"]["bio"].corpus, "other": tiny_models["memories"]["law"].corpus,
         "pristine": tmp_path_factory.mktemp("faults") / "pristine"}
    w["stream"] = encode_file(tokenizer, w["corpus"], tokenizer_fingerprint(tokenizer))
    w["wanted"] = datastore.wanted_recipe(base, tokenizer, w["corpus"], BLOCK, w["stream"])
    store = datastore.build(w["model"], tokenizer, base, w["corpus"], w["pristine"], BLOCK)
    w["queries"] = datastore.recall_queries(store.keys, 30, seed=3)
    w["answers"] = answers(store, w["queries"])
    w["targets"] = targets.build_targets(store, K, TEMPERATURE)
    return w


def answers(store, queries):
    """What the kNN-LM reads from a store: distances, entry ids and next-token values of each query's neighbours."""
    distances, ids, values = store.neighbours(queries, 8)
    return distances.numpy(), ids.numpy(), values.numpy()


# --- the faults -----------------------------------------------------------------------------------------------
def truncated(path, _world=None):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def random_keys(path, _world=None):
    """Same size, a valid .npy, plausible numbers: only a checksum can tell."""
    keys = np.load(path)
    np.save(path, np.random.default_rng(1).normal(0, keys.astype(np.float32).std(), keys.shape).astype(np.float16))


def other_domain_values(path, world):
    """The next tokens of the other domain's corpus, as many as the store holds: same size, same vocabulary."""
    other = encode_file(world["tokenizer"], world["other"], tokenizer_fingerprint(world["tokenizer"]))
    np.save(path, np.resize(other[1:], len(np.load(path))).astype(np.int32))


def random_tokens(path, _world=None):
    stream = np.load(path)
    np.save(path, np.random.default_rng(2).integers(0, stream.max() + 1, stream.shape).astype(np.int32))


def random_probs(path, _world=None):
    probs = np.load(path)
    np.save(path, np.random.default_rng(3).random(probs.shape).astype(probs.dtype))


STORE_FAULTS = {
    "truncated keys.npy": ("keys.npy", truncated),
    "truncated values.npy": ("values.npy", truncated),
    "truncated meta.json": ("meta.json", truncated),
    "truncated index.faiss": ("index.faiss", truncated),
    "truncated recipe.json": ("recipe.json", truncated),
    "truncated checksums.json": ("checksums.json", truncated),
    "random key data, same size": ("keys.npy", random_keys),
    "another domain's values, same size": ("values.npy", other_domain_values),
}


def damaged_copy(world, tmp_path, fault: str):
    folder = tmp_path / "store"
    shutil.copytree(world["pristine"], folder)
    name, inject = STORE_FAULTS[fault]
    inject(folder / name, world)
    return folder


@pytest.mark.parametrize("fault", STORE_FAULTS)
def test_a_damaged_store_is_detected_moved_aside_and_rebuilt(world, tmp_path, caplog, fault):
    folder = damaged_copy(world, tmp_path, fault)
    with pytest.raises(datastore.DamagedDatastore):
        datastore.load(folder, world["wanted"], world["stream"])
    said = []
    with caplog.at_level(logging.WARNING, logger=quarantine.__name__):
        healed = datastore.load_or_build(world["model"], world["tokenizer"], world["base"], world["corpus"], folder,
                                         BLOCK, progress=lambda _f, desc: said.append(desc))
    (aside,) = tmp_path.glob("store.damaged-*")
    assert (aside / STORE_FAULTS[fault][0]).exists()  # kept for a look, not deleted
    assert "store is damaged" in caplog.text and aside.name in caplog.text
    assert said[0].startswith("the datastore was damaged")
    for got, expected in zip(answers(healed, world["queries"]), world["answers"]):
        np.testing.assert_array_equal(got, expected)  # no wrong answer: exactly the fresh build's
    again = datastore.load(folder, world["wanted"], world["stream"])  # and it stays healed
    np.testing.assert_array_equal(np.asarray(again.keys), np.asarray(healed.keys))


def test_a_store_from_before_checksums_is_accepted_once_checked_then_guarded(world, tmp_path):
    folder = tmp_path / "store"
    shutil.copytree(world["pristine"], folder)
    (folder / checksums.FILE).unlink()  # as the previous code wrote it
    store = datastore.load(folder, world["wanted"], world["stream"])
    np.testing.assert_array_equal(answers(store, world["queries"])[1], world["answers"][1])
    assert checksums.is_sealed(folder) and checksums.problem(folder) is None  # recorded on that first load
    random_keys(folder / "keys.npy")
    with pytest.raises(datastore.DamagedDatastore, match="checksum"):
        datastore.load(folder, world["wanted"], world["stream"])


def test_an_old_store_with_wrong_counts_or_values_is_refused(world, tmp_path):
    """Without checksums, shapes and counts are still checked, and values against the corpus's next tokens."""
    for fault, reason in (("truncated meta.json", "unreadable"), ("another domain's values, same size", "next tokens")):
        shutil.rmtree(tmp_path / "store", ignore_errors=True)
        folder = damaged_copy(world, tmp_path, fault)
        (folder / checksums.FILE).unlink()
        with pytest.raises(datastore.DamagedDatastore, match=reason):
            datastore.load(folder, world["wanted"], world["stream"])


def test_large_files_are_checked_by_samples_and_in_full_on_request(world, tmp_path, monkeypatch):
    monkeypatch.setattr(checksums, "SAMPLES", 4)  # samples that cover little of the tiny files
    monkeypatch.setattr(checksums, "SAMPLE_BYTES", 256)
    folder = tmp_path / "store"
    shutil.copytree(world["pristine"], folder)
    checksums.seal(folder, ["keys.npy", "values.npy", "index.faiss", "meta.json"])
    monkeypatch.setattr(checksums, "FULL_BYTES", 1024)  # every file of the tiny store counts as large
    random_keys(folder / "keys.npy")
    assert "checksum" in checksums.problem(folder)  # a rewrite changes the sampled blocks
    shutil.copy(world["pristine"] / "keys.npy", folder / "keys.npy")
    keys = bytearray((folder / "keys.npy").read_bytes())
    keys[(len(keys) - 256) // 3 + 300] ^= 0xFF  # one byte between the second and the third sampled blocks
    (folder / "keys.npy").write_bytes(bytes(keys))
    assert checksums.problem(folder) is None and "checksum" in checksums.problem(folder, full=True)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """An empty cache of its own, so that what a test damages no other test reads."""
    monkeypatch.setattr(paths, "CACHE", tmp_path / "cache")
    return tmp_path / "cache"


def compared(tiny_models) -> compare.NextToken:
    """A comparison by a fresh engine, which reads the cache anew."""
    engine = Engine(tiny_models["bases"], tiny_models["memories"])
    return compare.next_token(engine, engine.resolve(), PROMPT)


@pytest.mark.parametrize("fault", [truncated, random_tokens], ids=["truncated", "random tokens, same size"])
def test_a_damaged_token_stream_heals_in_the_neighbours_view(tiny_models, cache, caplog, fault):
    before = compared(tiny_models)
    (stream,) = (cache / "tokens").glob("*.npy")
    fault(stream)
    with caplog.at_level(logging.WARNING, logger=quarantine.__name__):
        after = compared(tiny_models)
    assert len(list(stream.parent.glob(f"{stream.name}.damaged-*"))) == 1 and "damaged" in caplog.text
    assert after.neighbours == before.neighbours and before.neighbours
    assert torch.equal(after.p_knn, before.p_knn)


def test_a_damaged_store_heals_behind_the_engine(tiny_models, cache):
    before = compared(tiny_models)
    (folder,) = [f for f in (cache / "datastores").iterdir() if f.is_dir()]
    random_keys(folder / "keys.npy")
    after = compared(tiny_models)
    assert len(list(folder.parent.glob(f"{folder.name}.damaged-*"))) == 1
    assert torch.equal(after.p_knn, before.p_knn) and after.neighbours == before.neighbours


def test_damage_that_repeats_keeps_only_the_latest_copies_aside(world, cache):
    fingerprint = tokenizer_fingerprint(world["tokenizer"])
    encode_file(world["tokenizer"], world["corpus"], fingerprint)
    (stream,) = (cache / "tokens").glob("*.npy")
    for _ in range(quarantine.KEPT + 3):
        truncated(stream)
        np.testing.assert_array_equal(encode_file(world["tokenizer"], world["corpus"], fingerprint), world["stream"])
    assert len(list(stream.parent.glob(f"{stream.name}.damaged-*"))) == quarantine.KEPT


TARGET_FAULTS = {
    "truncated ids.npy": ("ids.npy", truncated),
    "truncated offsets.npy": ("offsets.npy", truncated),
    "random probabilities, same size": ("probs.npy", random_probs),
    "truncated recipe.json": ("recipe.json", truncated),
}


@pytest.mark.parametrize("fault", TARGET_FAULTS)
def test_damaged_knn_targets_are_moved_aside_and_rebuilt(world, tmp_path, caplog, fault):
    store = datastore.load(world["pristine"], world["wanted"], world["stream"])
    folder = tmp_path / "targets"
    targets.save(world["targets"], folder)
    name, inject = TARGET_FAULTS[fault]
    inject(folder / name, world)
    with caplog.at_level(logging.WARNING, logger=quarantine.__name__):
        healed = targets.load_or_build(store, K, TEMPERATURE, folder)
    assert len(list(tmp_path.glob("targets.damaged-*"))) == 1 and "damaged" in caplog.text
    for part in ("offsets", "ids", "probs"):
        np.testing.assert_array_equal(getattr(healed, part), getattr(world["targets"], part))
    assert targets.load(folder, healed.recipe) is not None


def test_targets_from_before_checksums_are_accepted_and_sealed(world, tmp_path):
    store = datastore.load(world["pristine"], world["wanted"], world["stream"])
    folder, t = tmp_path / "targets", world["targets"]
    folder.mkdir()
    np.savez(folder / targets.LEGACY, offsets=t.offsets, ids=t.ids, probs=t.probs)  # as the previous code saved them
    targets.recipe.record(folder, t.recipe)
    loaded = targets.load_or_build(store, K, TEMPERATURE, folder)
    np.testing.assert_array_equal(loaded.probs, t.probs)
    assert checksums.is_sealed(folder) and not (folder / targets.LEGACY).exists()
