"""Fair sharing under load: concurrent comparisons batched into one pass with the answers they get alone, a long
generation interleaved token by token, a per-session limit, datastores built in the background, and the load test
at a reduced size against the real server."""
import os
import re
import threading
import time

import pytest
from gradio_client import Client

from app.core import paths
from app.serve import compare, generate
from app.serve.engine import Engine, StillBuilding
from tools import load_test


def hold(engine, started_now: bool = True):
    """Blocks the engine's model calls until the returned event is set (the calls submitted meanwhile wait); with
    started_now False it only queues the block, behind the calls already waiting."""
    release, started = threading.Event(), threading.Event()
    engine.scheduler.submit(lambda items: [started.set(), release.wait(30)][:1], None)
    assert not started_now or started.wait(10)
    return release


def in_threads(fn, items) -> list:
    out = [None] * len(items)
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, fn(items[i]))) for i in range(len(items))]
    for t in threads:
        t.start()
    return out, threads


def test_concurrent_comparisons_share_one_pass_and_get_their_own_answers(engine):
    prompts = [f"cell protein {' gene' * i} membrane" for i in range(8)]
    alone = [compare.next_token(engine, p) for p in prompts]
    release = hold(engine)
    together, threads = in_threads(lambda p: compare.next_token(engine, p), prompts)
    time.sleep(0.5)  # every comparison has submitted its forward passes
    searches = hold(engine, started_now=False)  # runs after the forwards, so the searches they lead to wait together
    release.set()
    time.sleep(0.5)
    searches.set()
    for t in threads:
        t.join()
    for name in ("base forward", "decoder forward", "kNN search"):
        assert together[0].batch[name] == len(prompts), name
    for a, b in zip(alone, together):
        assert b.prompt == a.prompt
        for name in ("p_base", "p_mem", "p_knn"):
            assert (getattr(b, name) - getattr(a, name)).abs().max() < 1e-5, name
        assert b.ids.tolist() == a.ids.tolist()
        assert b.latency_ms["base forward"] > 0 and b.repeats == 1


def test_precise_latency_runs_each_component_alone(engine):
    nt = compare.next_token(engine, "cell protein", precise=True)
    assert nt.repeats == 3 and set(nt.batch.values()) == {1}
    assert set(nt.latency_ms) == {"base forward", "decoder forward", "kNN search", "mixing"}


def test_a_long_generation_holds_a_comparison_one_step_at_most(engine):
    prompt = "licence software copyright"
    began = time.perf_counter()
    alone = generate.generate(engine, prompt, "tiny-b", "law", max_new_tokens=64)
    lasted = time.perf_counter() - began
    steps = min(len(c["tokens"]) for c in alone["continuations"].values())
    if steps < 32:
        pytest.skip("the random tiny model ended its text early")
    out, threads = in_threads(lambda _: generate.generate(engine, prompt, "tiny-b", "law", max_new_tokens=64), [0])
    time.sleep(lasted / 4)
    began = time.perf_counter()
    compare.next_token(engine, "cell protein gene")
    waited = time.perf_counter() - began
    assert threads[0].is_alive(), "the comparison should not wait for the generation to end"
    threads[0].join()
    assert out[0]["continuations"] == {n: {**c, "ms_per_token": out[0]["continuations"][n]["ms_per_token"]}
                                       for n, c in alone["continuations"].items()}
    assert waited < lasted / 2


def test_a_store_still_building_says_how_far_it_is_and_nothing_waits(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CACHE", tmp_path)  # nothing built yet
    engine = Engine(tiny_models["bases"], tiny_models["memories"])
    engine.prepare_in_background()
    with pytest.raises(StillBuilding, match=r"being built in the background .* and (is starting|is at \d+%|waits for \d other build)"):
        compare.next_token(engine, "cell protein", engine.default_base, "law")
    with pytest.raises(StillBuilding):  # a store not asked for at start-up is queued behind the others
        compare.next_token(engine, "cell protein", "tiny-b", "bio")
    deadline = time.perf_counter() + 120
    while True:
        try:
            nt = compare.next_token(engine, "cell protein", "tiny-b", "bio")
            break
        except StillBuilding:
            assert time.perf_counter() < deadline
            time.sleep(0.2)
    assert nt.p_knn is not None
    assert (tmp_path / "datastores").is_dir()


def test_one_visitor_cannot_take_every_slot(server, engine):
    mine, other = Client(server, verbose=False), Client(server, verbose=False)
    release = hold(engine)
    jobs = [mine.submit(f"cell protein {i}", api_name="/compare") for i in range(6)]
    deadline = time.perf_counter() + 30
    while sum(job.done() for job in jobs) < 2 and time.perf_counter() < deadline:
        time.sleep(0.1)  # the ones over the limit are answered at once, while the others wait for the models
    refused = [str(job.exception()) for job in jobs if job.done()]
    theirs = other.submit("licence software", api_name="/compare")
    time.sleep(0.5)
    assert not theirs.done(), "another visitor still gets a place"
    release.set()
    assert len(refused) == 2 and all(re.search(r"you already have 4 requests running.*at a time", r) for r in refused)
    assert theirs.result(timeout=60)["prompt"] == "licence software"
    answered = [job.result(timeout=60)["prompt"] for job in jobs if not job.exception(timeout=60)]
    assert len(answered) == 4 and len(set(answered)) == 4


def test_load_at_a_reduced_size(server):
    report = load_test.load_test(server, os.getpid(), clients=5, requests=4, domains=["bio", "law"], runs=1,
                                 max_new_tokens=8)
    counts = report["runs"][0]["counts"]
    assert counts == {"answers": 20, "correct": 20, "wrong": 0, "queue_full": 0, "per_session_limit": 0,
                      "other_errors": 0}, report["runs"][0]["errors"]
    assert report["runs"][0]["latency_s"]["compare"]["n"] == 10
