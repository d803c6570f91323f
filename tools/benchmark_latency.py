"""Per-token generation latency of base, base + MemDec and base + kNN-LM, as ratios to the base, measured in one run.

    python tools/benchmark_latency.py [--tokens 32] [--repeats 3] [--threads 1]
    python tools/benchmark_latency.py --render     # latency.md again from latency.json, measuring nothing

Writes assets/results/latency.json (each row, and per base the range over the domains) and latency.md (the README's
Latency table, rendered from the JSON; `python tools/readme_results.py` copies it into the README). The paper reports
+MemDec 1.28x and kNN-LM 2.17x over the base (Qwen2.5-1.5B, GPU, large stores); here the models are tiny and the
stores small, so read the ratios, not the milliseconds. torch and FAISS run on --threads threads, so that other jobs
on a shared machine disturb the ratios less.
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
from app.serve.memories import parameter_count  # noqa: E402
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


def ranges(rows: list) -> dict:
    """Per base, in the rows' order: [least, most] over the domains of its ms per token and of each ratio."""
    bases = dict.fromkeys(row["base"] for row in rows)
    return {base: {field: [min(r[field] for r in rows if r["base"] == base),
                           max(r[field] for r in rows if r["base"] == base)]
                   for field in ("base_ms", "ratio_memdec", "ratio_knn")} for base in bases}


def table(results: dict) -> str:
    """The README's table: per base, the ratios' range over the domains; the stores' sizes in the header."""
    entries = ", ".join(f"{row['domain']} {row['entries']:,}" for row in results["rows"]
                        if row["base"] == results["rows"][0]["base"])
    lines = [f"| base | + MemDec | + kNN-LM (exact search; {entries} entries) |", "|---|---:|---:|"]
    for base, spread in results["ranges"].items():
        memdec, knn = spread["ratio_memdec"], spread["ratio_knn"]
        lines.append(f"| {base} ({results['parameters'][base] / 1e6:.1f}M) | {memdec[0]:.2f}–{memdec[1]:.2f}x | "
                     f"{knn[0]:.2f}–{knn[1]:.2f}x |")
    return "\n".join(lines) + "\n"


def write(results: dict, out: Path):
    """latency.json and, beside it, latency.md; the ranges and the bases' sizes are derived, so --render adds them."""
    results["ranges"] = ranges(results["rows"])
    results["parameters"] = {base: parameter_count(str(paths.model_folder("base", base))) for base in results["ranges"]}
    out.write_text(json.dumps(results, indent=1) + "\n")
    out.with_suffix(".md").write_text(table(results))
    print(f"wrote {out} and {out.with_suffix('.md')}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="for torch and FAISS")
    parser.add_argument("--out", type=Path, default=paths.RESULTS / "latency.json")
    parser.add_argument("--render", action="store_true", help="only write latency.md (and the ranges) from --out")
    args = parser.parse_args()
    if args.render:
        return write(json.loads(args.out.read_text()), args.out)
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
    write(results, args.out)


if __name__ == "__main__":
    main()
