"""The Memory Decoder pipeline on small slices: each test checks a number against an independent computation."""
import contextlib
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from app.core import datastore
from app.core.distributions import knn_probs, mix_log, perplexity
from app.core.documents import read_documents, write_documents
from app.core.keys import KeyCapture
from app.core.models import load_lm, tokenizer_fingerprint
from app.core.tokens import blocks, encode_file
from app.make import targets, trainer
from app.make.evaluate import knn_label_probs, label_probs, mixture_perplexity
from app.make.train_memdec import decoder_loss, make_batches, memdec_loss
from app.make.trainer import TrainConfig, train
from app.make.windows import sliding_windows

TEXT = [
    "The licensee may copy and distribute the software provided that this notice is retained.",
    "Interest rates rose as the treasury issued new bonds to cover the budget deficit.",
    "The enzyme catalyses the transfer of a phosphate group to the substrate protein.",
    "Permission is hereby granted, free of charge, to any person obtaining a copy.",
] * 6


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_family):
    """A tokenizer, two different tiny models and two corpora, all on disk."""
    root = tmp_path_factory.mktemp("pipeline")
    tokenizer, folders = tiny_family(root, TEXT, {"a": (1, 32), "b": (1, 32)})
    corpus, other = root / "corpus.txt.gz", root / "other.txt.gz"
    write_documents(corpus, TEXT)
    write_documents(other, TEXT[::-1][:10])
    return {"root": root, "tokenizer": tokenizer, "folders": folders, "corpus": corpus, "other": other}


def build_store(world, name="a", corpus=None):
    model = load_lm(world["folders"][name], torch.device("cpu"))
    folder = world["root"] / f"store-{name}"
    return datastore.load_or_build(model, world["tokenizer"], world["folders"][name], corpus or world["corpus"],
                                   folder, block=16)


def brute_force_knn(keys, values, query, k, temperature, vocab):
    d = ((keys.astype(np.float64) - query.astype(np.float64)) ** 2).sum(1)
    nearest = np.argsort(d, kind="stable")[:k]
    w = np.exp(-(d[nearest] - d[nearest].min()) / temperature)
    w /= w.sum()
    p = np.zeros(vocab)
    np.add.at(p, values[nearest], w)
    return p, nearest


def test_knn_distribution_equals_brute_force(world):
    store = build_store(world)
    keys = np.asarray(store.keys, dtype=np.float32)
    queries = keys[[3, 40, 100]] + np.random.default_rng(0).normal(0, 0.05, (3, keys.shape[1])).astype(np.float32)
    distances, ids, values = store.neighbours(queries, 8)
    ours = knn_probs(distances, values, 2.0, len(world["tokenizer"])).numpy()
    for q, row in zip(queries, ours):
        expected, _ = brute_force_knn(keys, store.values, q, 8, 2.0, len(world["tokenizer"]))
        np.testing.assert_allclose(row, expected, atol=1e-5)
        assert row.sum() == pytest.approx(1.0, abs=1e-6)


def test_sparse_targets_round_trip_and_exclude_self(world, tmp_path):
    store = build_store(world)
    built = targets.build_targets(store, k=6, temperature=3.0, batch_size=50)
    targets.save(built, tmp_path)
    loaded = targets.load(tmp_path)
    assert len(loaded) == len(store) and loaded.recipe["k"] == 6
    np.testing.assert_array_equal(loaded.ids, built.ids)
    np.testing.assert_array_equal(loaded.probs, built.probs)
    keys = np.asarray(store.keys, dtype=np.float32)
    vocab = len(world["tokenizer"])
    for p in (0, 17, len(store) - 1):
        # Brute force over every key but the position itself.
        others = np.delete(np.arange(len(store)), p)
        expected, _ = brute_force_knn(keys[others], store.values[others], keys[p], 6, 3.0, vocab)
        row = loaded.row(p)
        dense = np.zeros(vocab)
        dense[list(row)] = list(row.values())
        np.testing.assert_allclose(dense, expected, atol=2e-3)  # fp16 storage
        assert list(row.values()) == sorted(row.values(), reverse=True)
    ids, probs = loaded.padded(np.array([0, 17]))
    assert probs.sum(-1).numpy() == pytest.approx([1.0, 1.0], abs=1e-6)
    assert dict(zip(ids[1].tolist(), probs[1].tolist())).keys() >= loaded.row(17).keys()


def test_loss_equals_hand_computation():
    logits = torch.tensor([[2.0, 0.0, -1.0, 0.5], [0.0, 1.0, 0.0, 3.0]])
    labels = torch.tensor([0, 3])
    target_ids = torch.tensor([[0, 3], [3, 1]])
    target_probs = torch.tensor([[0.75, 0.25], [1.0, 0.0]])
    loss, parts = memdec_loss(logits, labels, target_ids, target_probs, beta=0.5, vocab_size=4)
    q = np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(1, keepdims=True)
    kl = (0.75 * math.log(0.75 / q[0, 0]) + 0.25 * math.log(0.25 / q[0, 3]) + 1.0 * math.log(1.0 / q[1, 3])) / 2
    ce = -(math.log(q[0, 0]) + math.log(q[1, 3])) / 2
    assert parts["kl"] == pytest.approx(kl, rel=1e-5)
    assert parts["ce"] == pytest.approx(ce, rel=1e-5)
    assert loss.item() == pytest.approx(0.5 * kl + 0.5 * ce, rel=1e-5)


def test_interrupted_training_resumes_and_matches_uninterrupted(world, tmp_path):
    store = build_store(world)
    knn = targets.build_targets(store, k=4, temperature=3.0)
    stream = np.concatenate([world["tokenizer"](t)["input_ids"] + [world["tokenizer"].eos_token_id]
                             for t in TEXT]).astype(np.int32)
    inputs, labels = blocks(stream, 16)
    batch_at = make_batches(inputs, labels, knn, batch_size=4)
    loss_fn = decoder_loss(0.5, len(world["tokenizer"]))

    def fresh():
        return load_lm(world["folders"]["a"], torch.device("cpu")).float().requires_grad_(True)

    cfg = TrainConfig(steps=6, lr=1e-2, warmup=2, checkpoint_every=100)
    straight = train(fresh(), batch_at, loss_fn, cfg, tmp_path / "straight")
    partial = train(fresh(), batch_at, loss_fn, cfg, tmp_path / "resumed", stop_after=3)
    assert (tmp_path / "resumed" / "checkpoint" / "progress.json").read_text().count('"step": 3')
    resumed = train(fresh(), batch_at, loss_fn, cfg, tmp_path / "resumed")
    log = (tmp_path / "resumed" / "loss.csv").read_text().splitlines()
    assert len(log) == 1 + 6 and log[0].startswith("step,loss,kl,ce")
    for p, q, r in zip(straight.parameters(), resumed.parameters(), partial.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(p, r) for p, r in zip(straight.parameters(), partial.parameters()))


class Stopped(BaseException):
    """What distillation's SIGTERM handler raises: it can land on any line of the trainer."""


# the file operations of a checkpoint's save and of the log write after it: each is a place a stop can fall
CHECKPOINT_OPERATIONS = 8


@pytest.mark.parametrize("stop_at", range(CHECKPOINT_OPERATIONS))
def test_a_stop_anywhere_in_a_checkpoint_loses_and_repeats_no_logged_step(tmp_path, monkeypatch, stop_at):
    """A stop at each file operation of the second checkpoint in turn: the resumed run starts from a complete
    checkpoint no earlier than the last step already on disk in loss.csv, and the finished log holds each step once
    with the losses of an uninterrupted run."""
    cfg = TrainConfig(steps=6, lr=1e-2, warmup=1, checkpoint_every=2)
    data = torch.randn(cfg.steps, 8, 4, generator=torch.Generator().manual_seed(0))
    ran, operations = [], []

    def batch_at(step):
        ran.append(step)
        return {"x": data[step]}

    def loss_fn(model, batch):
        loss = model(batch["x"]).pow(2).mean()
        return loss, {"square": loss.item()}

    def fresh():
        torch.manual_seed(0)
        return torch.nn.Linear(4, 4)

    def columns(path):
        return pd.read_csv(path)[["step", "loss", "square"]].values.tolist()

    def counted(original, stop):
        def operation(*args, **kwargs):
            if len(ran) == 4:  # steps 1-4 done, step 5 not begun: the second checkpoint is being saved
                operations.append(original.__name__)
                if len(operations) > stop:
                    raise Stopped()
            return original(*args, **kwargs)
        return operation

    def instrument(stop):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(trainer.shutil, "rmtree", counted(shutil.rmtree, stop))
            patch.setattr(trainer, "_write_log", counted(trainer._write_log, stop))
            patch.setattr(Path, "rename", counted(Path.rename, stop))
            patch.setattr(Path, "write_text", counted(Path.write_text, stop))
            yield

    with contextlib.contextmanager(instrument)(math.inf):
        train(fresh(), batch_at, loss_fn, cfg, tmp_path / "straight")
    straight = columns(tmp_path / "straight" / "loss.csv")
    assert len(operations) == CHECKPOINT_OPERATIONS, operations

    work = tmp_path / "stopped"
    ran.clear(), operations.clear()
    with contextlib.contextmanager(instrument)(stop_at), pytest.raises(Stopped):
        train(fresh(), batch_at, loss_fn, cfg, work)
    logged = pd.read_csv(work / "loss.csv")["step"].tolist() if (work / "loss.csv").exists() else [0]

    ran.clear()
    train(fresh(), batch_at, loss_fn, cfg, work)
    resumed_from = ran[0]
    assert resumed_from in (2, 4) and resumed_from >= max(logged)  # no step already logged runs again
    assert columns(work / "loss.csv") == straight
    assert sorted(p.name for p in work.iterdir()) == ["checkpoint", "loss.csv"]


def test_evaluator_perplexity_equals_direct_computation(world):
    model = load_lm(world["folders"]["a"], torch.device("cpu"))
    stream = np.array(world["tokenizer"](" ".join(TEXT))["input_ids"], dtype=np.int32)
    windows = sliding_windows(stream, world["tokenizer"].eos_token_id, window=16, stride=8)
    p = label_probs(model, windows, len(world["tokenizer"]), batch_size=3)
    with torch.no_grad():
        logits = model(input_ids=windows.inputs).logits
        nll = torch.nn.functional.cross_entropy(logits[:, -8:].flatten(0, 1), windows.labels[:, -8:].flatten())
    assert perplexity(p) == pytest.approx(math.exp(nll.item()), rel=1e-5)
    # A mixture's perplexity equals the logaddexp form applied to full log-distributions.
    other = load_lm(world["folders"]["b"], torch.device("cpu"))
    q = label_probs(other, windows, len(world["tokenizer"]))
    with torch.no_grad():
        mixed = mix_log(torch.log_softmax(logits, -1),
                        torch.log_softmax(other(input_ids=windows.inputs).logits, -1), 0.3)
    direct_mix = math.exp(-mixed.gather(-1, windows.labels[..., None])[:, -8:].mean().item())
    assert mixture_perplexity(p, q, 0.3) == pytest.approx(direct_mix, rel=1e-5)


def test_knn_label_probs_match_full_distribution(world):
    store = build_store(world)
    model = load_lm(world["folders"]["a"], torch.device("cpu"))
    stream = np.array(world["tokenizer"](TEXT[1] + TEXT[2])["input_ids"], dtype=np.int32)
    windows = sliding_windows(stream, world["tokenizer"].eos_token_id, window=8, stride=4)
    probs = knn_label_probs(model, store, windows, k=5, temperatures=(1.0, 4.0))
    with KeyCapture(model) as capture:
        model(input_ids=windows.inputs)
    distances, _, values = store.neighbours(capture.keys[:, -4:].flatten(0, 1).numpy(), 5)
    full = knn_probs(distances, values, 4.0, len(world["tokenizer"]))
    labels = windows.scored(windows.labels)
    np.testing.assert_allclose(probs[4.0], full.gather(1, labels[:, None]).squeeze(1).numpy(), atol=1e-3)


def test_stale_datastore_is_refused_and_rebuilt(world):
    store = build_store(world, "a")
    folder = world["root"] / "store-a"
    model_b = load_lm(world["folders"]["b"], torch.device("cpu"))
    with pytest.raises(datastore.StaleDatastore):
        datastore.load(folder, datastore.wanted_recipe(world["folders"]["b"], world["tokenizer"], world["corpus"], 16))
    with pytest.raises(datastore.StaleDatastore):
        datastore.load(folder, datastore.wanted_recipe(world["folders"]["a"], world["tokenizer"], world["other"], 16))
    with pytest.raises(datastore.StaleDatastore):  # another block length
        datastore.load(folder, datastore.wanted_recipe(world["folders"]["a"], world["tokenizer"], world["corpus"], 8))
    rebuilt = datastore.load_or_build(model_b, world["tokenizer"], world["folders"]["b"], world["corpus"],
                                      folder, block=16)
    assert rebuilt.recipe["model"] != store.recipe["model"]
    assert not np.array_equal(np.asarray(rebuilt.keys), np.asarray(store.keys))
    stream = encode_file(world["tokenizer"], world["corpus"], tokenizer_fingerprint(world["tokenizer"]))
    with KeyCapture(model_b) as capture:
        model_b(input_ids=blocks(stream, 16)[0][:1])
    np.testing.assert_allclose(np.asarray(rebuilt.keys[:16], dtype=np.float32), capture.keys[0].numpy(), atol=1e-2)
    again = datastore.load(folder, datastore.wanted_recipe(world["folders"]["b"], world["tokenizer"],
                                                           world["corpus"], 16))
    assert again.recipe == rebuilt.recipe and again.meta == rebuilt.meta


def test_corpus_files_round_trip_and_are_byte_stable(tmp_path):
    """A rebuilt corpus must keep its fingerprint, or every model trained on it would look stale."""
    first, second = tmp_path / "a.txt.gz", tmp_path / "b.txt.gz"
    write_documents(first, TEXT[:4])
    write_documents(second, TEXT[:4])
    assert first.read_bytes() == second.read_bytes() and first.read_bytes()[4:8] == b"\0\0\0\0"
    assert read_documents(first) == TEXT[:4]


def test_large_stores_use_ivf_pq_that_finds_the_exact_neighbours(world, tmp_path, monkeypatch):
    """Above the threshold the store is IVF-PQ (saved with the store); its hits match exact search closely."""
    monkeypatch.setattr(datastore, "IVF_THRESHOLD", 1000)
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, (64, 8))  # small enough that PQ training takes a second
    keys = (centres[rng.integers(0, 64, 4000)] + rng.normal(0, 1, (4000, 8))).astype(np.float16)
    index = datastore.make_index(keys, datastore.index_spec(len(keys)))
    assert isinstance(index, datastore.faiss.IndexIVFPQ)
    store = datastore.Datastore(keys, rng.integers(0, 50, 4000).astype(np.int32), index, {}, {})
    exact = datastore.faiss.IndexFlatL2(8)
    exact.add(keys.astype(np.float32))
    queries = keys[:200].astype(np.float32) + rng.normal(0, 0.1, (200, 8)).astype(np.float32)
    _, approx_ids = store.search(queries, 10)
    _, exact_ids = exact.search(queries, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx_ids, exact_ids)])
    assert recall > 0.5
    # The real builder writes the IVF-PQ index next to the keys, and loading reads it back.
    folder = tmp_path / "ivf-store"
    model = load_lm(world["folders"]["a"], torch.device("cpu"))
    built = datastore.build(model, world["tokenizer"], world["folders"]["a"], world["corpus"], folder, block=16)
    assert len(built) > 1000 and (folder / "index.faiss").exists() and built.recipe["index"]["type"] == "IndexIVFPQ"
    wanted = datastore.wanted_recipe(world["folders"]["a"], world["tokenizer"], world["corpus"], 16)
    assert isinstance(datastore.load(folder, wanted).index, datastore.faiss.IndexIVFPQ)
    # a store made with another index is stale: the index is part of its identity
    monkeypatch.setattr(datastore, "IVF_THRESHOLD", 10**9)
    with pytest.raises(datastore.StaleDatastore):
        datastore.load(folder, datastore.wanted_recipe(world["folders"]["a"], world["tokenizer"], world["corpus"], 16))
