"""How the server's resident memory grows with requests from new sessions (every raw HTTP call is one): starts
`python app.py` (local, on 127.0.0.1), warms it up, then sends REQUESTS requests, each from a session of its own, half
to /compare (the API) and half to /compare_view (the page's own event, which keeps its answer in the session's state),
from CLIENTS threads at loopback addresses of their own (127.0.0.2, 127.0.0.3, ...; nothing else is ever contacted).
Prints the server's RSS every STEP requests and the growth over the run; exits non-zero above --most-mb.

    python tools/session_memory.py                          # 10,000 requests on the embedded family
    python tools/session_memory.py --requests 2000 --json assets/results/session_memory.json
"""
import argparse
import ipaddress
import json
import sys
import threading
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.hostile_load import started_app, wait_until_ready  # noqa: E402

COMPARE = ["The protein binds to the receptor and", "large", "biomed", None, None, None, 5, None, False, False]
VIEW = ["The protein binds to the receptor and", "large", "biomed", 0.5, 0.5, False, 8, 1.0, 5, False]


def ask(client: httpx.Client, url: str, endpoint: str, data: list) -> str:
    """One request as a new session: "complete", or what went wrong."""
    posted = client.post(f"{url}gradio_api/call/{endpoint}", json={"data": data})
    if posted.status_code != 200:
        return f"HTTP {posted.status_code}: {posted.text[:200]}"
    lines = client.get(f"{url}gradio_api/call/{endpoint}/{posted.json()['event_id']}").text.splitlines()
    events = [line[7:] for line in lines if line.startswith("event: ")]
    return "complete" if events and events[-1] == "complete" else "\n".join(lines)[-300:]


def run(url: str, pid: int, requests: int, clients: int, step: int) -> dict:
    server, done, failures, lock = psutil.Process(pid), [0], [], threading.Lock()
    samples = [(0, server.memory_info().rss)]

    def client_loop(number: int):
        address = str(ipaddress.ip_address("127.0.0.2") + number)
        with httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=120) as client:
            while True:
                with lock:
                    if done[0] >= requests:
                        return
                    done[0] += 1
                    n = done[0]
                endpoint, data = ("compare", COMPARE) if n % 2 else ("compare_view", VIEW)
                outcome = ask(client, url, endpoint, data)
                with lock:
                    if outcome != "complete":
                        failures.append(outcome)
                    if n % step == 0:
                        samples.append((n, server.memory_info().rss))
                        print(f"{n:>6} requests: RSS {samples[-1][1] / 2**20:,.1f} MB", flush=True)

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    samples.append((requests, server.memory_info().rss))
    grown = (samples[-1][1] - samples[0][1]) / 2**20
    return {"requests": requests, "clients": clients, "failures": len(failures), "first_failures": failures[:3],
            "rss_mb": [[n, round(rss / 2**20, 1)] for n, rss in samples], "growth_mb": round(grown, 1),
            "growth_kb_per_request": round(grown * 1024 / requests, 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=4, help="threads, each at a loopback address of its own")
    parser.add_argument("--warm-up", type=int, default=200, help="requests before the first measurement")
    parser.add_argument("--step", type=int, default=1000)
    parser.add_argument("--most-mb", type=float, default=100, help="the growth allowed over the run")
    parser.add_argument("--json", help="write the report here too")
    args = parser.parse_args()
    with started_app("embedded") as (url, pid):
        wait_until_ready(url, httpx.get(f"{url}gradio_api/info", timeout=60).json())  # partial answers are cheaper
        run(url, pid, args.warm_up, args.clients, args.warm_up)
        report = run(url, pid, args.requests, args.clients, args.step)
    print(json.dumps({k: v for k, v in report.items() if k != "rss_mb"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    sys.exit(0 if report["growth_mb"] < args.most_mb and not report["failures"] else 1)


if __name__ == "__main__":
    main()
