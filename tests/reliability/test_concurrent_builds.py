"""Builders racing for one cache: threads of one process and separate processes, started together on the same
datastore (and so the same token stream), or on the same kNN targets. None may crash; the cache is built exactly
once and every builder gets the same good copy, also when they race to heal a damaged one."""
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from app.core import datastore, paths, tokens
from app.core.models import load_lm
from app.make import targets

BLOCK = 16
HANG_S = 600  # the processes start, load and build in some 20 s on two busy cores; this only stops a hung test
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(tiny_models):
    base = tiny_models["bases"]["tiny-a"]
    return {"base": base, "tokenizer": tiny_models["tokenizer"], "model": load_lm(base, torch.device("cpu")),
            "corpus": tiny_models["memories"]["bio"].corpus}


def counting(monkeypatch, module, name: str, calls: list):
    """Wraps module.name so that each call is recorded in calls."""
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(name)
        return original(*args, **kwargs)
    monkeypatch.setattr(module, name, counted)


def leftovers(folder: Path) -> list[str]:
    """Anything next to the store but the store and its lock: temporary, building or damaged copies."""
    return sorted(p.name for p in folder.parent.iterdir()
                  if p.name.startswith(folder.name + ".") and p.suffix != ".lock")


def test_threads_building_one_store_build_it_once(world, tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CACHE", tmp_path / "cache")  # an empty token cache: the streams race too
    calls, folder, start = [], tmp_path / "store", threading.Barrier(6)
    counting(monkeypatch, datastore, "write_keys", calls)
    counting(monkeypatch, tokens, "write_stream", calls)

    def builder(_):
        start.wait()
        return datastore.load_or_build(world["model"], world["tokenizer"], world["base"], world["corpus"],
                                       folder, BLOCK)

    with ThreadPoolExecutor(6) as pool:
        stores = list(pool.map(builder, range(6)))
    assert sorted(calls) == ["write_keys", "write_stream"]
    for store in stores:
        np.testing.assert_array_equal(np.asarray(store.keys), np.asarray(stores[0].keys))
        np.testing.assert_array_equal(store.values, stores[0].values)
    assert leftovers(folder) == []


def test_threads_building_the_same_targets_build_them_once(world, tmp_path, monkeypatch):
    store = datastore.load_or_build(world["model"], world["tokenizer"], world["base"], world["corpus"],
                                    tmp_path / "store", BLOCK)
    calls, start = [], threading.Barrier(4)
    counting(monkeypatch, targets, "build_targets", calls)

    def builder(_):
        start.wait()
        return targets.load_or_build(store, 6, 3.0, tmp_path / "targets")

    with ThreadPoolExecutor(4) as pool:
        built = list(pool.map(builder, range(4)))
    assert calls == ["build_targets"] and all(np.array_equal(t.probs, built[0].probs) for t in built)
    assert leftovers(tmp_path / "targets") == []


# Each process loads the model, says it is ready, waits for the gate, builds; then waits for a second gate (the test
# damages the store meanwhile) and loads again. It prints what it built and a digest of what it got.
BUILDER = """
import hashlib, json, sys, time
from pathlib import Path
import numpy as np, torch
from app.core import datastore, tokens
from app.core.models import load_lm, load_tokenizer

base, corpus, folder, gates = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
built = []
for module, name in ((datastore, "write_keys"), (tokens, "write_stream")):
    def counted(*args, _original=getattr(module, name), _name=name, **kwargs):
        built.append(_name)
        return _original(*args, **kwargs)
    setattr(module, name, counted)
model, tokenizer = load_lm(base, torch.device("cpu")), load_tokenizer(base)
for phase in ("build", "heal"):
    (gates / f"ready-{phase}-{sys.argv[5]}").touch()
    while not (gates / phase).exists():
        time.sleep(0.01)
    store = datastore.load_or_build(model, tokenizer, base, corpus, folder, 16)
    digest = hashlib.sha256(np.asarray(store.keys).tobytes() + store.values.tobytes()).hexdigest()
    print(json.dumps({"phase": phase, "built": built, "digest": digest}), flush=True)
    built = []
"""


def all_ready(gates: Path, phase: str, processes: list):
    """Waits until every process waits at the phase's gate (HANG_S only stops a hung test)."""
    deadline = time.monotonic() + HANG_S
    while len(list(gates.glob(f"ready-{phase}-*"))) < len(processes):
        dead = [p for p in processes if p.poll() is not None]
        assert not dead, f"a builder died: {dead[0].stderr.read()[-3000:]}"
        assert time.monotonic() < deadline, f"builders not ready for {phase} after {HANG_S} s"
        time.sleep(0.05)


def test_processes_building_and_healing_one_store_never_crash(world, tmp_path):
    folder, gates, count = tmp_path / "store", tmp_path / "gates", 3
    gates.mkdir()
    env = dict(os.environ, MEMDEC_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    processes = [subprocess.Popen([sys.executable, "-c", BUILDER, str(world["base"]), str(world["corpus"]), str(folder),
                                   str(gates), str(i)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for i in range(count)]
    try:
        all_ready(gates, "build", processes)
        (gates / "build").touch()  # all start building at once
        all_ready(gates, "heal", processes)  # all have built and loaded
        keys = folder / "keys.npy"
        np.save(keys, np.random.default_rng(0).normal(size=np.load(keys).shape).astype(np.float16))
        (gates / "heal").touch()  # all find it damaged at once
        results = [p.communicate(timeout=HANG_S) for p in processes]
    finally:
        for p in processes:
            p.kill() if p.poll() is None else None
    for process, (out, err) in zip(processes, results):
        assert process.returncode == 0, err[-3000:]
    reports = [json.loads(line) for out, _ in results for line in out.splitlines()]
    built = {phase: sorted(n for r in reports if r["phase"] == phase for n in r["built"])
             for phase in ("build", "heal")}
    assert built == {"build": ["write_keys", "write_stream"], "heal": ["write_keys"]}  # once each, by one of them
    assert len({r["digest"] for r in reports}) == 1  # the store healed is the store first built
    (aside,) = leftovers(folder)  # the damaged copy, moved aside once
    assert aside.startswith("store.damaged-")
