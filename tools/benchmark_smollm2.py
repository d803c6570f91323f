"""What `python app.py` costs on SmolLM2 on this machine, measured in one run as a newcomer meets it:

1. a first start, on an empty cache: the base fetched from the package registry and dequantized, the app started,
   then the seconds until /compare answers with base + Memory Decoder, and until it has the live kNN-LM too;
2. a later start (base cached, stores built): the seconds until /compare answers in full;
3. warm /compare latency (median and 90th percentile of 20 calls) and per-token generation of base, base + MemDec and
   base + kNN-LM, with the ratios to the base measured in the same run.

    python tools/benchmark_smollm2.py [--out assets/results/smollm2/startup.json]

Every time is counted from the launch of the process, so the 60-second and 15-second targets (README) read off
directly. The server runs as `python app.py` with no preset named: what it serves by default is what is measured.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradio_client import Client  # noqa: E402

from app.core import paths  # noqa: E402
from tests.support.serving import free_port  # noqa: E402

PROMPT = "Permission is hereby granted, free of charge, to any"
DOMAIN = "smollm2/law"  # app.py serves smollm2 and embedded together, so names carry their family


def start(cache: Path, log: Path) -> tuple[subprocess.Popen, str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("MEMDEC_PRESET", "MEMDEC_PRESETS")}
    port = free_port()
    env.update(MEMDEC_CACHE=str(cache), GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1")
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=paths.ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}/", time.perf_counter()


def timeline(proc, url: str, began: float, log: Path, limit_s: float = 600) -> dict:
    """Seconds from launch to: the page answering, the first /compare (base + MemDec), the first with the kNN-LM."""
    out = {}
    while "page" not in out:
        assert proc.poll() is None and time.perf_counter() - began < limit_s, log.read_text(errors="replace")[-3000:]
        try:
            client = Client(url, verbose=False)
            out["page"] = round(time.perf_counter() - began, 1)
        except Exception:
            time.sleep(0.5)
    while True:
        answer = client.predict(PROMPT, domain=DOMAIN, api_name="/compare")
        out.setdefault("base_and_memdec", round(time.perf_counter() - began, 1))
        out["base"] = answer["base"]
        if not answer["knn_building"]:
            out["knn"] = round(time.perf_counter() - began, 1)
            return out
        assert time.perf_counter() - began < limit_s, answer["knn_unavailable"]
        time.sleep(1)


def warm(url: str, tokens: int) -> dict:
    client = Client(url, verbose=False)
    times = []
    for _ in range(20):
        t = time.perf_counter()
        client.predict(PROMPT, domain=DOMAIN, api_name="/compare")
        times.append((time.perf_counter() - t) * 1000)
    client.predict(PROMPT, domain=DOMAIN, max_new_tokens=4, api_name="/generate")  # warm-up
    runs = [client.predict(PROMPT, domain=DOMAIN, max_new_tokens=tokens, api_name="/generate")["continuations"]
            for _ in range(3)]
    ms = {name: statistics.median(run[name]["ms_per_token"] for run in runs) for name in runs[0]}
    return {"compare_ms_median": round(statistics.median(times)), "compare_ms_p90": round(sorted(times)[17]),
            "ms_per_token": {k: round(v, 1) for k, v in ms.items()},
            "ratio_to_base": {k: round(v / ms["base"], 3) for k, v in ms.items()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=24, help="tokens generated per timed run")
    parser.add_argument("--out", type=Path, default=paths.results_folder("smollm2") / "startup.json")
    args = parser.parse_args()
    result = {"cpus": os.cpu_count(), "load_average_at_start": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="memdec-fresh-") as cache:
        cache, log = Path(cache), Path(cache).parent / "benchmark_smollm2.log"
        for run in ("first_start", "later_start"):
            proc, url, began = start(cache, log)
            try:
                result[run] = timeline(proc, url, began, log)
                print(run, result[run], flush=True)
                if run == "later_start":
                    result["warm"] = warm(url, args.tokens)
                    print("warm", result["warm"], flush=True)
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    result["load_average_at_end"] = round(os.getloadavg()[0], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
