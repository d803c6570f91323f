"""Fair sharing under load: concurrent comparisons batched into one pass with the answers they get alone, a long
generation interleaved token by token, a limit per client address, datastores built in the background, and the load
test at a reduced size against the real server. No test here compares times or sleeps for another thread: each holds the
engine's scheduler (or a background build) until what it needs has happened, waits for that, and checks counts and
orders of events; clocks only bound the waits, far above what they take."""
import itertools
import os
import re
import threading
import time

import pytest

from app.core import datastore, paths
from app.serve import compare, generate
from app.serve.engine import Engine, StillBuilding
from tests.support.visitors import behind_a_proxy, visitor
from tools import load_test

LIMIT_S = 120  # only stops a hung test: everything waited for here takes well under a second on an idle machine


def hold(engine, started_now: bool = True):
    """Blocks the engine's model calls until the returned event is set (the calls submitted meanwhile wait); with
    started_now False it only queues the block, behind the calls already waiting."""
    release, started = threading.Event(), threading.Event()
    engine.scheduler.submit(lambda items: [started.set(), release.wait(LIMIT_S)][:1], None)
    assert not started_now or started.wait(LIMIT_S)
    return release


def in_threads(fn, items, name: str) -> list:
    """fn(item) for each item, each in a thread of its own named name-i (Calls tells them apart by it)."""
    out = [None] * len(items)
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, fn(items[i])), name=f"{name}-{i}")
               for i in range(len(items))]
    for t in threads:
        t.start()
    return out, threads


def until(condition, what: str):
    """Waits until condition() holds, failing with what did not happen after LIMIT_S."""
    deadline = time.monotonic() + LIMIT_S
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not after {LIMIT_S} s"
        time.sleep(0.05)


class Calls:
    """The engine's scheduler, watched: in order, each call submitted to it (logged once queued, so never before a
    call it waits behind) and each call as its run begins (logged by the scheduler's thread, so in the order they
    really ran; for a batch, its first call only), with the thread that submitted it and its batch key's kind
    ("forward", "search", or "alone" for a call that batches with nothing)."""

    def __init__(self, engine, monkeypatch):
        self.log, self.changed, self.numbers = [], threading.Condition(), itertools.count()
        submit = engine.scheduler.submit

        def watched(run, item, key=None, repeats=1):
            who, kind, number = threading.current_thread().name, key[0] if key else "alone", next(self.numbers)

            def logged(items):
                self._add("ran", who, kind, number)
                return run(items)

            future = submit(logged, item, key, repeats)
            self._add("submitted", who, kind, number)
            return future

        monkeypatch.setattr(engine.scheduler, "submit", watched)

    def _add(self, event: str, who: str, kind: str, number: int):
        with self.changed:
            self.log.append((event, who, kind, number))
            self.changed.notify_all()

    def count(self, event: str, kind: str | None = None, who: str | None = None) -> int:
        with self.changed:
            return sum(e == event and kind in (None, k) and who in (None, w) for e, w, k, _ in self.log)

    def wait(self, event: str, count: int, kind: str | None = None, who: str | None = None):
        with self.changed:
            assert self.changed.wait_for(lambda: self.count(event, kind, who) >= count, LIMIT_S), (
                f"{count} calls {event} ({kind or 'any'} kind, from {who or 'anyone'}) not after {LIMIT_S} s: "
                f"{self.log[-8:]}")


def test_concurrent_comparisons_share_one_pass_and_get_their_own_answers(engine, monkeypatch):
    prompts = [f"cell protein {' gene' * i} membrane" for i in range(8)]
    alone = [compare.next_token(engine, engine.resolve(), p) for p in prompts]
    calls = Calls(engine, monkeypatch)
    release, searches = hold(engine), None
    try:
        together, threads = in_threads(lambda p: compare.next_token(engine, engine.resolve(), p), prompts, "comparison")
        calls.wait("submitted", 2 * len(prompts), "forward")  # every comparison's base and decoder passes wait
        searches = hold(engine, started_now=False)  # after the forwards, so the searches they lead to wait together
        release.set()
        calls.wait("submitted", len(prompts), "search")
    finally:
        release.set()  # also when a wait failed, so that the engine serves the next tests
        if searches:
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
    nt = compare.next_token(engine, engine.resolve(), "cell protein", precise=True)
    assert nt.repeats == 3 and set(nt.batch.values()) == {1}
    assert set(nt.latency_ms) == {"base forward", "decoder forward", "kNN search", "mixing"}


def test_a_long_generation_holds_a_comparison_one_step_at_most(engine, monkeypatch):
    """A comparison asked for while a generation runs waits at most for the generation's step under way (one call
    per predictor) before each of its model calls, and is answered while the generation goes on."""
    prompt, steps_before = "licence software copyright", 4
    law = engine.resolve(base="tiny-b", domain="law")
    alone = generate.generate(engine, law, prompt, max_new_tokens=64)
    predictors = len(alone["continuations"])
    if min(len(c["tokens"]) for c in alone["continuations"].values()) < 32:
        pytest.skip("the random tiny model ended its text early")
    # the generation's first call of step steps_before waits, running, until the comparison has asked for its passes:
    # so the comparison comes in the middle of the generation, however the threads are scheduled
    asked, running = threading.Event(), threading.Event()
    submit, generation_calls = engine.scheduler.submit, []

    def held_mid_generation(run, item, key=None, repeats=1):
        if threading.current_thread().name.startswith("generation"):
            generation_calls.append(item)
            if len(generation_calls) == predictors * steps_before + 1:
                def held(items, run=run):
                    running.set()
                    asked.wait(LIMIT_S)
                    return run(items)
                return submit(held, item, key, repeats)
        return submit(run, item, key, repeats)

    monkeypatch.setattr(engine.scheduler, "submit", held_mid_generation)
    calls = Calls(engine, monkeypatch)
    try:
        out, generating = in_threads(lambda _: generate.generate(engine, law, prompt, max_new_tokens=64),
                                     [0], "generation")
        assert running.wait(LIMIT_S), "the generation did not reach its step"
        answer, comparing = in_threads(lambda _: compare.next_token(engine, engine.resolve(), "cell protein gene"), [0],
                                       "comparison")
        calls.wait("submitted", 2, "forward", "comparison-0")
    finally:
        asked.set()
    comparing[0].join()
    generating[0].join()
    assert answer[0] is not None and answer[0].p_knn is not None
    assert out[0]["continuations"] == {n: {**c, "ms_per_token": out[0]["continuations"][n]["ms_per_token"]}
                                       for n, c in alone["continuations"].items()}
    ran = [(at, who, number) for at, (event, who, _, number) in enumerate(calls.log) if event == "ran"]
    generation_ran = [at for at, who, _ in ran if who == "generation-0"]
    comparison_ran = {number: at for at, who, number in ran if who == "comparison-0"}
    mine = [(at, comparison_ran[number]) for at, (event, who, _, number) in enumerate(calls.log)
            if event == "submitted" and who == "comparison-0"]
    assert len(mine) == 3  # the base's and the decoder's passes, then the search
    for submitted, began in mine:  # each waited for one step of the generation at most
        assert sum(submitted < at < began for at in generation_ran) <= predictors, calls.log[submitted: began + 1]
    # the comparison's first calls ran before the generation's next step: every step of all predictors from there to
    # the 32nd token (each predictor makes at least 32) ran after it
    first = min(began for _, began in mine)
    assert sum(at > first for at in generation_ran) >= predictors * (32 - steps_before - 1), (
        "the comparison should not wait for the generation to end")


def test_a_store_still_building_says_how_far_it_is_and_nothing_waits(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CACHE", tmp_path)  # nothing built yet
    # the background build waits before it writes a store until the two requests below have been answered: they
    # are asked while it builds, however fast it would be; and were a request to wait for it, it would wait here
    answered, build = threading.Event(), datastore.load_or_build

    def held(*args, **kwargs):
        answered.wait(LIMIT_S)
        return build(*args, **kwargs)

    monkeypatch.setattr(datastore, "load_or_build", held)
    engine = Engine(tiny_models["bases"], tiny_models["memories"])
    engine.prepare_in_background()
    try:
        # base and Memory Decoder answer at once; the kNN-LM's part says how far its store is
        nt = compare.next_token(engine, engine.resolve(domain="law"), "cell protein")
        assert nt.p_knn is None and nt.p_mem.sum().item() == pytest.approx(1, abs=1e-4)
        assert re.search(r"being built in the background .* and (is starting|is at \d+%|waits for \d other build)",
                         nt.knn_missing), nt.knn_missing
        out = compare.to_dict(nt, 0.5)
        assert out["knn_building"] and set(out["top"]) == {"base", "memdec", "mix_memdec"}
        with pytest.raises(StillBuilding):  # a store not asked for at start-up is queued behind the others
            engine.datastore("tiny-b", "bio")
    finally:
        answered.set()
    deadline = time.monotonic() + LIMIT_S
    while (nt := compare.next_token(engine, engine.resolve(base="tiny-b", domain="bio"), "cell protein")).p_knn is None:
        assert time.monotonic() < deadline and "being built" in nt.knn_missing
        time.sleep(0.2)
    assert not compare.to_dict(nt, 0.5)["knn_building"]
    assert (tmp_path / "datastores").is_dir()


@pytest.fixture
def proxied():
    with behind_a_proxy():
        yield


def test_one_address_cannot_take_every_slot(server, engine, monkeypatch, proxied):
    mine, other = visitor(server), visitor(server)
    calls = Calls(engine, monkeypatch)
    release = hold(engine)
    try:
        jobs = [mine.submit(f"cell protein {i}", api_name="/compare") for i in range(6)]
        # the ones over the limit are answered at once, while the others wait for the models (each with its base's
        # and its decoder's pass asked for)
        until(lambda: sum(job.done() for job in jobs) >= 2, "two of the six requests refused")
        calls.wait("submitted", 2 * 4, "forward")
        refused = [str(job.exception()) for job in jobs if job.done()]
        theirs = other.submit("licence software", api_name="/compare")
        calls.wait("submitted", 2 * 5, "forward")  # another visitor still gets a place: its passes wait for the models
        assert not theirs.done() and calls.count("submitted", "forward") == 2 * 5
    finally:
        release.set()
    assert len(refused) == 2 and all(re.search(r"your address already has 4 requests running on the models.*try "
                                               r"again in a few seconds", r) for r in refused), refused
    assert theirs.result(timeout=LIMIT_S)["prompt"] == "licence software"
    answered = [job.result(timeout=LIMIT_S)["prompt"] for job in jobs if not job.exception(timeout=LIMIT_S)]
    assert len(answered) == 4 and len(set(answered)) == 4


def test_load_at_a_reduced_size(server, proxied):
    report = load_test.load_test(server, os.getpid(), clients=5, requests=4, domains=["bio", "law"], runs=1,
                                 max_new_tokens=8)
    counts = report["runs"][0]["counts"]
    assert counts == {"answers": 20, "correct": 20, "wrong": 0, "queue_full": 0, "address_limit": 0,
                      "other_errors": 0}, report["runs"][0]["errors"]
    assert report["runs"][0]["latency_s"]["compare"]["n"] == 10
