"""What each predictor costs per generated token as the kNN-LM's datastore grows: the step timings that
tools/benchmark_cost.py and the Cost tab share, the crossover points, and the results file the benchmark writes.

A kNN-LM step is split into its search and the rest (the base pass that yields the query key, the kNN distribution,
the mixing), so that a store of another size or index costs "the rest + its search" without rerunning the models."""
import math
import statistics
import threading
import time

import torch

from ..core import paths
from ..core.files import read_json
from .clients import charged
from .engine import Engine, InputError, Resolved
from .generate import predictors

PROMPT = "The results of the study show that the"
TOKENS, REPEATS = 32, 5  # greedy steps per run, timed runs per predictor (after one warm-up run)
FACTORS = (2, 10)  # the crossovers: where base + kNN-LM costs this many times base + MemDec per token
MEASURING = threading.Lock()  # held by the one measurement the server runs at a time (measure_current)


def results_path():
    return paths.RESULTS / "cost.json"


def read_results() -> dict | None:
    return read_json(results_path())


class TimedSearch:
    """A datastore whose every search is timed, so that a kNN-LM step splits into its search and the rest."""

    def __init__(self, store):
        self.store, self.ms = store, []

    def neighbours(self, queries, k: int):
        start = time.perf_counter()
        out = self.store.neighbours(queries, k)
        self.ms.append((time.perf_counter() - start) * 1000)
        return out


def greedy_step_ms(step, ids: torch.Tensor, tokens: int) -> list[float]:
    """Wall-clock ms of each of `tokens` greedy steps of one predictor (generate.predictors), from the prompt ids."""
    times, chunk = [], ids
    for _ in range(tokens):
        start = time.perf_counter()
        p = step(chunk)
        times.append((time.perf_counter() - start) * 1000)
        chunk = p.argmax().view(1, 1)
    return times


def step_times(resolved: Resolved, store, tokens: int = TOKENS, repeats: int = REPEATS) -> dict:
    """ms per token of base, base + MemDec and base + kNN-LM over `store` (anything with neighbours()), each run on its
    own as the app generates (generate.predictors at the request's weights, k and T); the kNN-LM's step as its search
    and the rest. Each is the median step of a run, the fastest of `repeats` runs: a busy moment of the shared CPU
    slows a run, never speeds one up."""
    ids, _ = resolved.encode(PROMPT, truncate=True, reserve=tokens)
    timed = TimedSearch(store)
    makers = predictors(resolved, timed)
    runs = {"base_ms": [], "memdec_ms": [], "knn_rest_ms": [], "search_ms": []}
    with torch.no_grad():
        for run in range(repeats + 1):  # run 0 warms up
            base_ms = greedy_step_ms(makers["base"](), ids, tokens)
            memdec_ms = greedy_step_ms(makers["mix_memdec"](), ids, tokens)
            timed.ms.clear()
            knn_ms = greedy_step_ms(makers["mix_knn"](), ids, tokens)
            if run:
                for name, ms in (("base_ms", base_ms), ("memdec_ms", memdec_ms), ("search_ms", timed.ms),
                                 ("knn_rest_ms", [step - search for step, search in zip(knn_ms, timed.ms)])):
                    runs[name].append(statistics.median(ms))
    return {name: round(min(medians), 3) for name, medians in runs.items()} | {"k": resolved.k, "tokens": tokens,
                                                                               "repeats": repeats}


def measure_current(engine: Engine, resolved: Resolved, progress=None, tokens: int = TOKENS,
                    repeats: int = REPEATS) -> dict:
    """The store this page serves for the request's base and memory as one more point of the curves, measured now: its
    size, index, search ms per query at the memory's k, and the per-token steps (the kNN-LM's = the rest + the
    search)."""
    store = engine.datastore(resolved.base, resolved.domain, progress)
    if store is None:
        raise InputError(f"the {resolved.domain} memory has no corpus here, so there is no datastore to measure")
    # one at a time: a measurement runs the models outside the scheduler for seconds, on the cores everyone shares
    if not MEASURING.acquire(blocking=False):
        raise InputError("another measurement is running on this server (one runs at a time, since each takes the "
                         "CPU for several seconds): try again in about 20 s")
    try:
        with charged():
            steps = step_times(resolved, store, tokens, repeats)
    finally:
        MEASURING.release()
    knn_ms = round(steps["knn_rest_ms"] + steps["search_ms"], 3)
    return {"base": resolved.base, "domain": resolved.domain, "entries": len(store),
            "index": store.recipe["index"]["type"], "key_width": int(store.keys.shape[1]), **steps, "knn_ms": knn_ms,
            "ratio_memdec": round(steps["memdec_ms"] / steps["base_ms"], 3),
            "ratio_knn": round(knn_ms / steps["base_ms"], 3)}


def crossing(points: list[tuple[float, float]], level: float) -> dict:
    """Where a curve of measured (entries, y) points first reaches `level`: interpolated linearly on log-log axes
    between the two measured points around it; never extrapolated beyond them."""
    points = sorted(points)
    if not points:
        return {"entries": None, "text": "no measured point"}
    if points[0][1] >= level:
        return {"entries": None, "text": f"already at the smallest measured store ({points[0][0]:,.0f} entries)"}
    for (n0, y0), (n1, y1) in zip(points, points[1:]):
        if y1 >= level:
            share = (math.log(level) - math.log(y0)) / (math.log(y1) - math.log(y0))
            entries = math.exp(math.log(n0) + share * (math.log(n1) - math.log(n0)))
            return {"entries": round(entries), "between": [n0, n1],
                    "text": f"~{entries:,.0f} entries (interpolated on log axes between {n0:,.0f} and {n1:,.0f})"}
    return {"entries": None, "text": f"not reached up to {points[-1][0]:,.0f} entries"}


def crossovers(results: dict) -> dict:
    """Per index kind, per factor f: the store size at which base + kNN-LM costs f times base + MemDec per token,
    each point compared with the decoder's step timed in the same minutes (its row's memdec_ms)."""
    out = {}
    for kind in dict.fromkeys(row["kind"] for row in results["rows"]):
        points = [(row["entries"], row["knn_ms"] / row["memdec_ms"]) for row in results["rows"]
                  if row["kind"] == kind and "knn_ms" in row]
        out[kind] = {str(f): crossing(points, f) for f in FACTORS}
    return out
