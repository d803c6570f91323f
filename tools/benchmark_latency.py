"""Per-token generation latency of base, base + MemDec and base + kNN-LM, as ratios to the base, measured in one run.

    python tools/benchmark_latency.py [--tokens 32] [--repeats 3]

The paper reports +MemDec 1.28x and kNN-LM 2.17x over the base (Qwen2.5-1.5B, GPU, large stores); here the
models are tiny and the stores small, so read the ratios, not the milliseconds.
"""
import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.serve.engine import Engine  # noqa: E402
from app.serve.generate import generate  # noqa: E402

PROMPTS = {"biomed": "The enzyme catalyses the", "finance": "The Treasury reported that the public debt",
           "law": "Permission is hereby granted, free of charge, to any"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    engine = Engine.embedded()
    print(f"{'domain':8} {'base':7} {'store':>8} {'base ms':>8} {'+MemDec':>14} {'+kNN-LM':>14}")
    for domain in engine.memories:
        for base in engine.bases:
            store = engine.datastore(base, domain)
            generate(engine, PROMPTS.get(domain, "The"), base, domain, max_new_tokens=4)  # warm-up
            runs = [generate(engine, PROMPTS.get(domain, "The"), base, domain, max_new_tokens=args.tokens)["continuations"]
                    for _ in range(args.repeats)]
            ms = {name: statistics.median(r[name]["ms_per_token"] for r in runs) for name in runs[0]}
            print(f"{domain:8} {base:7} {len(store):>8} {ms['base']:>8.2f} "
                  f"{ms['mix_memdec']:>7.2f} ({ms['mix_memdec'] / ms['base']:.2f}x) {ms['mix_knn']:>7.2f} ({ms['mix_knn'] / ms['base']:.2f}x)")


if __name__ == "__main__":
    main()
