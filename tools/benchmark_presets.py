"""What a published family costs on this machine, measured in one run: load time, resident memory, the first
comparison (datastore included), and per-token generation latency of base, base + MemDec and base + kNN-LM with
their ratios to the base. Each preset runs in a fresh process, so load time and memory are its own.

    python tests/support/standins.py --size full --ids openai-community/gpt2,Clover-Hill/MemoryDecoder-gpt2-small,\
Qwen/Qwen2.5-0.5B,Clover-Hill/MemoryDecoder-Qwen-law --wikitext --hub-cache /tmp/hub
    HF_HUB_CACHE=/tmp/hub HF_HUB_OFFLINE=1 python tools/benchmark_presets.py gpt2-wikitext qwen2.5-law \
gpt2-wikitext:gpt2-xl

A memory whose paper corpus is not public searches the WikiText sample instead, so every family has a kNN-LM to time.
"""
import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def measure(preset: str, base: str | None, tokens: int, repeats: int, corpus_tokens: int, dtype: str | None) -> dict:
    import psutil

    from app.serve import compare, generate, presets
    from app.serve.engine import Engine

    rss = lambda: round(psutil.Process().memory_info().rss / 2**30, 2)  # noqa: E731
    start = time.perf_counter()
    engine = Engine.from_presets([preset], corpus_tokens=corpus_tokens, dtype=dtype)
    domain = engine.default_domain
    if engine.memories[domain].corpus is None:
        engine.memories[domain] = dataclasses.replace(engine.memories[domain], corpus=presets.WIKITEXT)
    resolved = engine.resolve(base=base)
    pair = resolved.pair
    loaded = time.perf_counter() - start
    memory_loaded = rss()
    start = time.perf_counter()
    store = engine.datastore(pair.base, domain)
    first = compare.next_token(engine, resolved, "The history of the")
    first_s = time.perf_counter() - start
    prompt = "The history of the city begins in the"
    generate.generate(engine, resolved, prompt, max_new_tokens=4)  # warm
    runs = [generate.generate(engine, resolved, prompt, max_new_tokens=tokens)["continuations"] for _ in range(repeats)]
    ms = {name: statistics.median(run[name]["ms_per_token"] for run in runs) for name in runs[0]}
    return {"preset": preset, "base": pair.base, "device": str(engine.device), "dtype": str(pair.lm.dtype),
            "parameters_m": [round(sum(p.numel() for p in m.parameters()) / 1e6) for m in (pair.lm, pair.decoder)],
            "load_s": round(loaded, 1), "rss_gib_loaded": memory_loaded, "datastore_entries": len(store),
            "first_comparison_s": round(first_s, 1), "forward_ms": first.latency_ms,
            "ms_per_token": {k: round(v, 1) for k, v in ms.items()},
            "ratio_to_base": {k: round(v / ms["base"], 2) for k, v in ms.items()}, "rss_gib_end": rss()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("presets", nargs="+", help="NAME, or NAME:BASE for another base than the preset's first")
    parser.add_argument("--tokens", type=int, default=16, help="tokens generated per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--corpus-tokens", type=int, default=20_000)
    parser.add_argument("--dtype", choices=["bf16", "fp16", "fp32"])
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.one:
        preset, _, base = args.presets[0].partition(":")
        print(json.dumps(measure(preset, base or None, args.tokens, args.repeats, args.corpus_tokens, args.dtype)))
        return
    rows = []
    for preset in args.presets:
        child = ([sys.executable, __file__, preset, "--one", "--tokens", str(args.tokens), "--repeats",
                  str(args.repeats), "--corpus-tokens", str(args.corpus_tokens)]
                 + (["--dtype", args.dtype] if args.dtype else []))
        out = subprocess.run(child, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print("\n| preset (base + decoder) | load | memory | first comparison (datastore) | base ms/token | + MemDec "
          "| + kNN-LM |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ms, ratio = r["ms_per_token"], r["ratio_to_base"]
        print(f"| {r['preset']}: {r['base']} ({r['parameters_m'][0]}M + {r['parameters_m'][1]}M, {r['dtype']}) | "
              f"{r['load_s']} s | {r['rss_gib_loaded']} GiB | {r['first_comparison_s']} s "
              f"({r['datastore_entries']:,} entries) | {ms['base']} | "
              f"{ms['mix_memdec']} ({ratio['mix_memdec']}x) | {ms['mix_knn']} ({ratio['mix_knn']}x) |")


if __name__ == "__main__":
    main()
