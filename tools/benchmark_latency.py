"""Per-token generation latency of base, base + MemDec and base + kNN-LM, as ratios to the base, measured in one run.

    python tools/benchmark_latency.py [--tokens 32] [--repeats 3] [--threads 1]

Writes assets/results/latency.json (the README's Latency table). The paper reports +MemDec 1.28x and kNN-LM 2.17x
over the base (Qwen2.5-1.5B, GPU, large stores); here the models are tiny and the stores small, so read the ratios,
not the milliseconds. torch and FAISS run on --threads threads, so that other jobs on a shared machine disturb the
ratios less.
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core import paths  # noqa: E402
from app.serve.engine import Engine  # noqa: E402
from app.serve.generate import generate  # noqa: E402
from tools.benchmark_cost import machine, threads  # noqa: E402

PROMPTS = {"biomed": "The enzyme catalyses the", "finance": "The Treasury reported that the public debt",
           "law": "Permission is hereby granted, free of charge, to any"}


def measure(engine: Engine, domain: str, base: str, tokens: int, repeats: int) -> dict:
    store, resolved = engine.datastore(base, domain), engine.resolve(base=base, domain=domain)
    prompt = PROMPTS.get(domain, "The")
    generate(engine, resolved, prompt, max_new_tokens=4)  # warm-up
    runs = [generate(engine, resolved, prompt, max_new_tokens=tokens)["continuations"] for _ in range(repeats)]
    ms = {name: statistics.median(r[name]["ms_per_token"] for r in runs) for name in runs[0]}
    return {"domain": domain, "base": base, "entries": len(store), "base_ms": round(ms["base"], 3),
            "memdec_ms": round(ms["mix_memdec"], 3), "knn_ms": round(ms["mix_knn"], 3),
            "ratio_memdec": round(ms["mix_memdec"] / ms["base"], 3), "ratio_knn": round(ms["mix_knn"] / ms["base"], 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="for torch and FAISS")
    parser.add_argument("--out", type=Path, default=paths.RESULTS / "latency.json")
    args = parser.parse_args()
    started = time.perf_counter()
    engine = Engine.embedded()
    for domain in engine.memories:  # every store first: building one is not part of the timings
        for base in engine.bases:
            engine.datastore(base, domain)
    with threads(args.threads):
        described = machine()
        print(f"{'domain':8} {'base':7} {'store':>8} {'base ms':>8} {'+MemDec':>14} {'+kNN-LM':>14}", flush=True)
        rows = []
        for domain in engine.memories:
            for base in engine.bases:
                row = measure(engine, domain, base, args.tokens, args.repeats)
                rows.append(row)
                print(f"{domain:8} {base:7} {row['entries']:>8} {row['base_ms']:>8.2f} {row['memdec_ms']:>7.2f} "
                      f"({row['ratio_memdec']:.2f}x) {row['knn_ms']:>7.2f} ({row['ratio_knn']:.2f}x)", flush=True)
    results = {"what": "per-token greedy generation latency, each predictor with its own KV cache, warm, median of "
                       "the repeats; ratios to the base measured in the same run",
               "machine": described | {"load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
               "settings": {"tokens": args.tokens, "repeats": args.repeats, "threads": args.threads,
                            "index": "exact search (flat L2)", "prompts": PROMPTS},
               "rows": rows, "wall_s": round(time.perf_counter() - started, 1)}
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
