"""Per-token cost of base, base + Memory Decoder and base + kNN-LM as the datastore grows, for each FAISS index type,
measured in one run on the embedded family; writes assets/results/cost.json and prints a table.

    python tools/benchmark_cost.py [--sizes 1e4,1e5,1e6,1e7] [--kinds exact,ivfpq,hnsw] [--budget-minutes 30]

Steps: the base, base + MemDec and base + kNN-LM steps are timed with the app's own predictors (app.serve.cost,
over the real store of the default domain); base + kNN-LM at each point = the rest of its step (base pass with the
query key, kNN distribution, mixing) + that point's search, timed one query at a time at the memory's k.

Keys: the key model's real keys from every domain's store (~135k each), in random order; beyond them, synthetic
keys: a real key drawn at random plus Gaussian noise, per dimension proportional to the real keys' spread and scaled
so that the noise's norm is the median distance from a real key to its nearest real neighbour (a new context as far
from an old one as real contexts are from each other), with the value of the key it came from. They are written as
fp16 to a memmap under the cache (reused while their recipe holds), never held in RAM as float32. Queries: real keys
held out of every store. Recall@k: the share of returned entries within the exact k-th nearest distance (so equal
keys count whichever is returned), the exact distances computed by brute force over the memmap.

Bounded: a point is skipped, with its reason, when its build at the rate measured for the same index at the previous
size (entries per second) would overrun what is left of the budget, or when its index, scaled by size likewise, would
take more than half the free memory (the app's rule for a store). Nothing is extrapolated into the results.

The CPU may be shared: the model steps are timed again with each point (the fastest of several runs' medians, see
app.serve.cost.step_times), each row keeps them and the load average, and every ratio is taken within its row.
Everything runs on one thread (--threads; torch and FAISS share one OpenMP runtime): with two, each op waits at a
barrier for a core that another process may hold, which slowed the base's step up to 6x at random here (2 ms -> 13 ms).
On an idle CPU one thread costs the models nothing (base ~2.1 ms either way) and makes a single-query search faster
(flat, 1M entries: 38 ms against 58 ms on two threads); builds take their single-core time.
"""
import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import torch  # noqa: E402

# isort: split
import faiss  # noqa: E402  (after torch: faiss issue 2126)

from app.core import datastore, paths, recipe  # noqa: E402
from app.core.files import write_json  # noqa: E402
from app.serve import cost  # noqa: E402
from app.serve.engine import FREE_MEMORY_SHARE, Engine  # noqa: E402

SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
CHUNK = 1 << 18  # rows of keys converted to float32 at a time
MIN_QUERIES = 3
STEPS = ("base_ms", "memdec_ms", "knn_rest_ms")  # the model steps, timed with each point, kept in its row
SYNTHETIC = "real key + Gaussian noise at the median nearest-neighbour distance, per-dimension spread (v1)"


def real_entries(engine: Engine, base: str):
    """Every (key, value) of the base's stores, one per domain, and the recipes they were made from."""
    stores = [s for s in (engine.datastore(base, domain) for domain in engine.memories) if s is not None]
    return (np.concatenate([s.keys for s in stores]), np.concatenate([s.values for s in stores]),
            [s.recipe for s in stores])


def nearest_distances(keys, n: int, queries: np.ndarray, k: int) -> np.ndarray:
    """The k smallest exact squared L2 distances from each query to keys[:n], sorted, by chunks in float32."""
    best = np.empty((len(queries), 0), np.float32)
    for start in range(0, n, CHUNK):
        chunk = np.asarray(keys[start: min(n, start + CHUNK)], dtype=np.float32)
        distances, _ = faiss.knn(queries, chunk, min(k, len(chunk)))
        best = np.sort(np.concatenate([best, distances], 1), 1)[:, :k]
    return best


def noise_scale(real: np.ndarray, rng) -> np.ndarray:
    """Per-dimension std of the synthetic noise: the real keys' spread, scaled so that the noise's expected norm is
    the median distance from a real key to its nearest other (non-identical) real key."""
    sample = np.asarray(real[rng.choice(len(real), min(len(real), 50_000), replace=False)], dtype=np.float32)
    spread = sample.std(0)
    nearest = np.sqrt(nearest_distances(real, len(real), sample[:1000], 2)[:, 1])
    return spread * np.median(nearest[nearest > 0]) / np.linalg.norm(spread)


def write_entries(folder: Path, keys, values, total: int, n_queries: int, seed: int):
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(keys))
    np.save(folder / "queries.npy", np.asarray(keys[order[:n_queries]], dtype=np.float32))
    real_keys, real_values = keys[order[n_queries:]], values[order[n_queries:]]
    out_keys = np.lib.format.open_memmap(folder / "keys.npy", "w+", np.float16, (total, keys.shape[1]))
    out_values = np.lib.format.open_memmap(folder / "values.npy", "w+", np.int32, (total,))
    real = min(total, len(real_keys))
    out_keys[:real], out_values[:real] = real_keys[:real], real_values[:real]
    scale = noise_scale(real_keys, rng) if total > real else None
    for start in range(real, total, CHUNK):
        rows = min(total, start + CHUNK) - start
        parents = rng.integers(len(real_keys), size=rows)
        noise = rng.standard_normal((rows, keys.shape[1]), dtype=np.float32) * scale
        out_keys[start: start + rows] = real_keys[parents].astype(np.float32) + noise
        out_values[start: start + rows] = real_values[parents]
    out_keys.flush()
    out_values.flush()


def grown_entries(keys, values, made_from: list, total: int, n_queries: int, seed: int):
    """(keys memmap, values memmap, queries, real entries in the store): made once per recipe, under the cache."""
    folder = paths.CACHE / "cost"
    wanted = {"real": made_from, "total": total, "queries": n_queries, "seed": seed, "synthetic": SYNTHETIC}
    if not recipe.is_current(folder, wanted):
        recipe.forget(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_entries(folder, keys, values, total, n_queries, seed)
        recipe.record(folder, wanted)
    return (np.load(folder / "keys.npy", mmap_mode="r"), np.load(folder / "values.npy", mmap_mode="r"),
            np.load(folder / "queries.npy"), len(keys) - n_queries)


def index_bytes(index) -> int:
    """What a FAISS index holds in memory: its vectors or codes, with the graph or the lists and centroids."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexHNSW):
        graph = index.hnsw
        return (index_bytes(index.storage) + 4 * graph.neighbors.size() + 8 * graph.offsets.size()
                + 4 * graph.levels.size())
    if isinstance(index, faiss.IndexIVF):
        centroids = 4 * index.pq.centroids.size() if isinstance(index, faiss.IndexIVFPQ) else 0
        return index_bytes(index.quantizer) + index.ntotal * (index.code_size + 8) + centroids
    return index.ntotal * index.code_size


def skip_reason(kind: str, entries: int, last: dict | None, left_s: float) -> str | None:
    """Why this point is not measured, predicted from the same kind at the previous size; None to measure it."""
    if last is None:
        return None
    if "skipped" in last:
        return f"the {kind} store of {last['entries']:,} entries was skipped"
    memory = last["index_bytes"] * entries / last["entries"]
    free = psutil.virtual_memory().available
    if memory > FREE_MEMORY_SHARE * free:
        return (f"its index would take ~{memory / 1e9:.1f} GB ({last['index_bytes'] / 1e9:.2f} GB measured at "
                f"{last['entries']:,} entries, scaled by size), more than half of the {free / 1e9:.1f} GB free")
    build = last["build_s"] * entries / last["entries"]
    if build > left_s:
        return (f"its build would take ~{build / 60:.0f} min ({last['build_s']:.1f} s measured at "
                f"{last['entries']:,} entries, scaled by size), more than the {left_s / 60:.1f} min left of the budget")
    return None


def timed_searches(store: datastore.Datastore, queries: np.ndarray, k: int, seconds: float):
    """ms per query, one query at a time as the app searches (Datastore.neighbours): each query's fastest of the
    passes over the queries that fit in `seconds` (at least MIN_QUERIES queries), since a busy moment of the shared
    CPU slows a search, never speeds one up; and the ids found."""
    store.neighbours(queries[:1], k)  # warm-up
    best, found = [], []
    deadline, enough = time.perf_counter() + seconds, min(MIN_QUERIES, len(queries))
    while True:
        for i, query in enumerate(queries):
            start = time.perf_counter()
            _, ids, _ = store.neighbours(query[None], k)
            ms = (time.perf_counter() - start) * 1000
            if i < len(best):
                best[i] = min(best[i], ms)
            else:
                best.append(ms)
                found.append(ids[0].numpy())
            if len(best) >= enough and time.perf_counter() > deadline:
                return best, np.stack(found)


def recall(keys, queries: np.ndarray, found: np.ndarray, kth: np.ndarray) -> float:
    """Share of the returned entries that are among the exact k nearest: within the k-th nearest's distance (with a
    float32 rounding margin), so that equal keys (a repeated context) count whichever of them is returned."""
    hits = 0
    for query, ids, limit in zip(queries, found, kth):
        ids = np.sort(ids[ids >= 0])
        exact = ((np.asarray(keys[ids], dtype=np.float32) - query) ** 2).sum(1)
        hits += int((exact <= limit * (1 + 1e-3)).sum())
    return round(hits / found.size, 4)


def measure_point(keys, values, entries: int, kind: str, spec: dict, queries, k: int, kth, seconds: float) -> dict:
    start = time.perf_counter()
    index = datastore.make_index(keys[:entries], spec)
    build_s = time.perf_counter() - start
    store = datastore.Datastore(keys[:entries], values[:entries], index, {"index": spec}, {})
    ms, found = timed_searches(store, queries, k, seconds)
    memory, keys_bytes = int(index_bytes(index)), entries * (keys.shape[1] * 2 + 4)  # fp16 keys, int32 values
    return {"kind": kind, "index": spec["type"], "spec": spec, "entries": entries, "build_s": round(build_s, 2),
            "search_ms": round(statistics.median(ms), 3), "queries_timed": len(ms),
            "recall_at_k": recall(keys, queries[: len(found)], found, kth[: len(found)]), "index_bytes": memory,
            "keys_bytes": keys_bytes, "memory_bytes": memory + keys_bytes}


def measure_points(keys, values, queries, real: int, sizes: list, kinds: list, k: int, time_steps,
                   search_seconds: float, deadline: float) -> list[dict]:
    """One row per (size, kind), smallest sizes first: measured, or skipped with the reason. The model steps are
    timed right after each point's searches, so that its ratios compare timings from the same moments of a CPU that
    others may share (a busy CPU slows both alike)."""
    rows, last = [], {}
    for entries in sizes:
        kth = None
        for kind in kinds:
            spec = datastore.index_spec(entries, kind)
            reason = skip_reason(kind, entries, last.get(kind), deadline - time.perf_counter())
            if reason:
                row = {"kind": kind, "index": spec["type"], "entries": entries, "skipped": reason}
            else:
                if kth is None:  # the exact k-th nearest distance per query, once per size
                    kth = nearest_distances(keys, entries, queries, min(k, entries))[:, min(k, entries) - 1]
                row = measure_point(keys, values, entries, kind, spec, queries, min(k, entries), kth, search_seconds)
                steps = time_steps()
                row |= {name: steps[name] for name in STEPS}
                row["knn_ms"] = round(steps["knn_rest_ms"] + row["search_ms"], 3)
                row["ratio_knn"] = round(row["knn_ms"] / steps["base_ms"], 3)
                row["load_average"] = round(os.getloadavg()[0], 2)  # how busy the shared CPU was
            rows.append(row | {"real_entries": min(entries, real)})
            last[kind] = row
            print(f"{entries:,} {kind}: " + (f"skipped ({reason})" if reason else f"built in {row['build_s']:.1f} s, "
                  f"{row['search_ms']:.2f} ms per search, recall {row['recall_at_k']:.3f}, {row['knn_ms']:.1f} ms "
                  f"per token against the base's {row['base_ms']:.1f} ms"), flush=True)
    return rows


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
             if line.startswith("model name")]
    return {"cpu": names[0] if names else platform.processor(), "cores": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 1e9, 1), "gpu": None,
            "python": platform.python_version(), "torch": torch.__version__, "faiss": faiss.__version__,
            "torch_threads": torch.get_num_threads(), "faiss_threads": faiss.omp_get_max_threads(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def print_table(results: dict):
    steps = results["steps"]
    print(f"medians over the points: base {steps['base_ms']:.2f} ms/token; base + MemDec {steps['memdec_ms']:.2f} ms "
          f"({results['ratio_memdec']:.2f}x); kNN-LM step without its search {steps['knn_rest_ms']:.2f} ms")
    print(f"{'entries':>11} {'index':6} {'build s':>8} {'search ms':>10} {'recall@k':>8} {'memory GB':>9} "
          f"{'base ms':>8} {'kNN ms/tok':>10} {'x base':>7} {'x MemDec':>8}")
    for row in results["rows"]:
        if "skipped" in row:
            print(f"{row['entries']:>11,} {row['kind']:6} skipped: {row['skipped']}")
            continue
        print(f"{row['entries']:>11,} {row['kind']:6} {row['build_s']:>8.1f} {row['search_ms']:>10.2f} "
              f"{row['recall_at_k']:>8.3f} {row['memory_bytes'] / 1e9:>9.3f} {row['base_ms']:>8.2f} "
              f"{row['knn_ms']:>10.2f} {row['ratio_knn']:>7.2f} {row['knn_ms'] / row['memdec_ms']:>8.2f}")
    for kind, by_factor in results["crossovers"].items():
        for factor, crossing in by_factor.items():
            print(f"{kind}: base + kNN-LM at {factor}x base + MemDec: {crossing['text']}")
    print(f"wall time {results['wall_s'] / 60:.1f} min")


def numbers(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",")]


@contextlib.contextmanager
def threads(count: int):
    """torch and FAISS on `count` threads for a while."""
    before = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(count)
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        faiss.omp_set_num_threads(before[1])


def run(args, engine: Engine) -> dict:
    started = time.perf_counter()
    base, domain = engine.default_base, engine.default_domain
    described = machine()
    keys, values, made_from = real_entries(engine, base)
    store, resolved = engine.datastore(base, domain), engine.resolve(base=base, domain=domain)
    sizes = sorted(args.sizes)
    all_keys, all_values, queries, real = grown_entries(keys, values, made_from, sizes[-1], args.queries, args.seed)
    rows = measure_points(all_keys, all_values, queries, real, sizes, args.kinds, resolved.k,
                          lambda: cost.step_times(resolved, store, args.tokens, args.repeats),
                          args.search_seconds, started + 60 * args.budget_minutes)
    steps = {name: round(statistics.median(row[name] for row in rows if "knn_ms" in row), 3) for name in STEPS}
    results = {
        "what": "per-token latency of base, base + Memory Decoder and base + kNN-LM as the datastore grows, per index",
        "machine": described | {"load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "settings": {"base": base, "base_model": engine.bases[base], "domain": domain,
                     "decoder": resolved.pair.memory.decoder, "k": resolved.k, "tokens": args.tokens,
                     "repeats": args.repeats, "key_width": int(keys.shape[1]), "sizes": sizes, "kinds": args.kinds,
                     "real_entries": real, "synthetic_keys": SYNTHETIC, "queries": args.queries,
                     "search_seconds": args.search_seconds, "budget_minutes": args.budget_minutes, "seed": args.seed,
                     "per_token_knn": "knn_rest_ms (the kNN-LM step less its search, on the real store) + search_ms; "
                                      "the steps are timed with each point, the top-level ones are their medians",
                     "prompt": cost.PROMPT},
        "steps": steps,
        "ratio_memdec": round(steps["memdec_ms"] / steps["base_ms"], 3),
        "rows": rows,
    }
    results["crossovers"] = cost.crossovers(results)
    results["wall_s"] = round(time.perf_counter() - started, 1)
    return results


def main(argv=None, engine: Engine | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=numbers, default=list(SIZES), help="store sizes, e.g. 1e5,1e6")
    parser.add_argument("--kinds", type=lambda s: s.split(","), default=list(datastore.KINDS))
    parser.add_argument("--budget-minutes", type=float, default=30.0, help="for the whole run")
    parser.add_argument("--queries", type=int, default=64, help="real keys held out as queries")
    parser.add_argument("--search-seconds", type=float, default=10.0, help="per point, at least 3 queries")
    parser.add_argument("--tokens", type=int, default=cost.TOKENS)
    parser.add_argument("--repeats", type=int, default=cost.REPEATS)
    parser.add_argument("--threads", type=int, default=1, help="for torch and FAISS (see above)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="default: assets/results/cost.json")
    args = parser.parse_args(argv)
    with threads(args.threads):
        results = run(args, engine or Engine.embedded())
    write_json(args.out or cost.results_path(), results)
    print_table(results)
    return results


if __name__ == "__main__":
    main()
