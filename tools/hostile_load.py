"""Hostile load test, loopback only: one address (127.0.0.2) runs STREAMS parallel loops of expensive /generate
requests (a ~3,980-character prompt, 64 new tokens, each request a new session, sent again as soon as the previous
one ends or is refused) while 5 normal clients on 127.0.0.3-127.0.0.7 send short /compare requests back to back,
each in a session of its own. Raw HTTP, as the observed attack: POST /gradio_api/call/<api> {"data": [...],
"session_hash": ...} then GET /gradio_api/call/<api>/<event_id> (SSE). A normal request not answered within 60 s is a
failure; an attacker's request still running 300 s on, or when the test ends (the after phase and a drain_s wait for
its requests under way), is dropped (counted as still running).

Phases: quiet (the normal clients alone), attack (the attacker too), after (the normal clients alone again). A
normal request belongs to the phase it started in; any answer of a normal client other than `complete` is a failure.

Recovery: the number of seconds after the attack ends (its stop; requests of the attacker still running are left to
finish) until the first sliding 10 s window [t, t + 10 s), t on a 0.25 s grid, whose normal requests (those running
at some moment of it: started before its end and finished after its start) have a p95 latency at most the quiet p95.
The window must lie within the after phase and hold at least one request; none such: not recovered (None). The p95,
not every request: even in the quiet phase one request in twenty is slower than the quiet p95 by definition. For the
criteria (this p95, the quiet p95 and the attack's p95) a request that was not answered counts as never answered
(an infinite latency), so fast refusals cannot make a p95 look good; the table's p50/p95/max are of the answered.

The criteria of the issue are printed with pass or fail: normal p95 during the attack <= 3 s, recovery <= 10 s, no
"Queue is full" seen by anyone, the attacker is refused and every refusal carries a sentence (a message, neither
"Queue is full" nor the blank "Something went wrong"). The exit status is 1 when a normal client failed, anyone saw
"Queue is full" or a refusal carried no sentence (what does not depend on the machine's speed), else 0.

    python tools/hostile_load.py                            # starts python app.py --preset embedded on a free port
    python tools/hostile_load.py --streams 96 --attack-s 30 --json /tmp/hostile.json
    python tools/hostile_load.py --url http://127.0.0.1:7860/ # a server already running (on a loopback address)
"""
import argparse
import contextlib
import ipaddress
import json
import math
import os
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ATTACKER = "127.0.0.2"
NORMAL = [f"127.0.0.{i}" for i in range(3, 8)]
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
PROMPT_CHARS, MAX_NEW_TOKENS = 3980, 64
STEMS = ["The patient was", "Shares of the bank", "The licence grants", "The protein binds to", "Revenue rose by"]
FILLER = ("The committee reviewed the quarterly report on protein folding, licence terms and market revenue, and "
          "asked for a longer summary of every section before the next meeting. ")
GOAL_ATTACK_P95_S, GOAL_RECOVERY_S, WINDOW_S, GRID_S = 3.0, 10.0, 10.0, 0.25
QUEUE_FULL = "queue is full"
BLANK = "Something went wrong"


def loopback(host: str) -> str:
    """host as an address in 127.0.0.0/8; anything else is refused."""
    address = ipaddress.ip_address(socket.gethostbyname(host))
    if address not in LOOPBACK:
        raise ValueError(f"{host} is {address}, not a loopback address (127.0.0.0/8): this test attacks nothing else")
    return str(address)


def client(source: str, read_s: float) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=loopback(source)),
                        timeout=httpx.Timeout(read_s, connect=10))


def message_of(text: str) -> str:
    """The sentence in a JSON error body ({"detail": ...} or {"error": ...}), else the text."""
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("error") or "").strip()
    return text.strip()


def call(http: httpx.Client, url: str, api: str, data: list, session: str, limit_s: float = 600) -> dict:
    """One request: {"outcome": "complete" | "error" (the answer's message) | "http" (status, message of the body) |
    "exception" (what the client raised) | "no_result" (the stream ended without an answer, or none came within
    limit_s, checked at each line: the server sends a heartbeat every 15 s)}. session: its Gradio session hash."""
    began = time.monotonic()
    try:
        posted = http.post(f"{url}gradio_api/call/{api}", json={"data": data, "session_hash": session})
        if posted.status_code != 200:
            return {"outcome": "http", "status": posted.status_code, "message": message_of(posted.text)}
        with http.stream("GET", f"{url}gradio_api/call/{api}/{posted.json()['event_id']}") as stream:
            if stream.status_code != 200:
                return {"outcome": "http", "status": stream.status_code, "message": message_of(stream.read().decode())}
            event = None
            for line in stream.iter_lines():
                if time.monotonic() - began > limit_s:
                    return {"outcome": "no_result", "message": f"no answer within {limit_s:.0f} s"}
                if line.startswith("event: "):
                    event = line[7:].strip()
                elif line.startswith("data: ") and event in ("complete", "error"):
                    if event == "complete":
                        return {"outcome": "complete"}
                    payload = json.loads(line[6:])
                    error = payload.get("error") if isinstance(payload, dict) else payload
                    return {"outcome": "error", "message": str(error or "").strip()}
        return {"outcome": "no_result", "message": "the stream ended without complete or error"}
    except Exception as error:  # counted: a normal client's is a failure
        return {"outcome": "exception", "message": f"{type(error).__name__}: {error}".strip()}


def arguments(info: dict, api: str, **given) -> list:
    """The request's values in the order GET /gradio_api/info lists them, defaults for those not given."""
    parameters = info["named_endpoints"][f"/{api}"]["parameters"]
    unknown = set(given) - {p["parameter_name"] for p in parameters}
    assert not unknown, f"/{api} has no parameter {unknown}"
    return [given.get(p["parameter_name"], p.get("parameter_default")) for p in parameters]


def long_prompt(n: int) -> str:
    text = f"Request {n}. " + FILLER * (PROMPT_CHARS // len(FILLER) + 1)
    return text[:PROMPT_CHARS]


def wait_until_ready(url: str, info: dict, limit_s: float = 900):
    """Until every live kNN-LM store of the default base is built (in the background after a start): a quiet phase
    measured during a build would measure the build."""
    began = time.monotonic()
    with client(NORMAL[0], 120) as http:
        base = arguments(info, "compare")[1]
        posted = http.post(f"{url}gradio_api/call/memories", json={"data": [base]})
        answer = http.get(f"{url}gradio_api/call/memories/{posted.json()['event_id']}").text
        memories = json.loads([line[6:] for line in answer.splitlines() if line.startswith("data: ")][-1])[0]
        for domain in [m["name"] for m in memories if m.get("live_knn")]:
            while True:
                posted = http.post(f"{url}gradio_api/call/compare",
                                   json={"data": arguments(info, "compare", text="The", domain=domain)})
                lines = http.get(f"{url}gradio_api/call/compare/{posted.json()['event_id']}").text.splitlines()
                out = json.loads([line[6:] for line in lines if line.startswith("data: ")][-1])
                if isinstance(out, list) and not out[0].get("knn_building"):
                    break
                if time.monotonic() - began > limit_s:
                    raise RuntimeError(f"the server is not ready after {limit_s:.0f} s: {out}")
                time.sleep(2)
        call(http, url, "generate", arguments(info, "generate", text=long_prompt(0), max_new_tokens=MAX_NEW_TOKENS),
             uuid.uuid4().hex)


def percentile(values: list, q: float) -> float | None:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else None


def recovery(normal: list, attack_end: float, run_end: float, quiet_p95: float) -> float | None:
    """Seconds after attack_end until the first window as the module's docstring defines it, or None."""
    t = 0.0
    while attack_end + t + WINDOW_S <= run_end + 1e-9:
        start, end = attack_end + t, attack_end + t + WINDOW_S
        inside = [waited(r) for r in normal if r["start"] < end and r["start"] + r["latency"] > start]
        if inside and percentile(inside, 0.95) <= quiet_p95:
            return t
        t += GRID_S
    return None


def waited(record: dict) -> float:
    """How long a normal client waited for its answer: a request not answered (refused, failed) never got one."""
    return record["latency"] if record["outcome"] == "complete" else math.inf


def refusal_has_sentence(record: dict) -> bool:
    """An answer of the server (an error event or an HTTP status) with a message that says why; a dropped connection
    or a stream without an answer says nothing."""
    text = record.get("message", "")
    return (record["outcome"] in ("error", "http") and bool(text) and QUEUE_FULL not in text.lower()
            and not text.startswith(BLANK))


def label(record: dict) -> str:
    if record["outcome"] == "complete":
        return "complete"
    if record["outcome"] == "http":
        return f"HTTP {record['status']}: {record['message'][:200]}"
    return f"{record['outcome']}: {record['message'][:200]}"


def hostile_load(url: str, streams: int = 96, attack_s: float = 60, quiet_s: float = 20, after_s: float = 30,
                 pause_s: float = 0.1, pid: int | None = None, drain_s: float = 60, log=print) -> dict:
    """The whole test against a running server at url (loopback); pid: its process, for its resident memory."""
    host = urlsplit(url).hostname
    loopback(host)
    url = url if url.endswith("/") else url + "/"
    info = httpx.get(f"{url}gradio_api/info", timeout=60).json()
    log(f"waiting for {url} to be ready (its datastores built)")
    wait_until_ready(url, info)
    server = psutil.Process(pid) if pid else None
    rss = {"before_mb": round(server.memory_info().rss / 2**20, 1)} if server else {}
    records, lock, stop_attack, stop_all = [], threading.Lock(), threading.Event(), threading.Event()
    began = time.monotonic()

    def now() -> float:
        return time.monotonic() - began

    def loop(who: str, source: str, api: str, make, stop: threading.Event, pause: float, limit_s: float,
             new_sessions: bool):
        with client(source, 60) as http:
            n, session = 0, uuid.uuid4().hex
            while not stop.is_set():
                start = now()
                out = call(http, url, api, make(n), uuid.uuid4().hex if new_sessions else session, limit_s)
                out.update(client=who, address=source, start=round(start, 3), latency=round(now() - start, 3))
                with lock:
                    records.append(out)
                n += 1
                if pause:
                    stop.wait(pause)

    def normal_request(c):
        return lambda n: arguments(info, "compare", text=f"{STEMS[(c + n) % len(STEMS)]} ({c}.{n})")

    def attack_request(s):
        return lambda n: arguments(info, "generate", text=long_prompt(s * 100000 + n + 1),
                                   max_new_tokens=MAX_NEW_TOKENS)

    normal_threads = [threading.Thread(target=loop, daemon=True,
                                       args=(f"normal-{c}", source, "compare", normal_request(c), stop_all, pause_s,
                                             60, False))
                      for c, source in enumerate(NORMAL)]
    attack_threads = [threading.Thread(target=loop, daemon=True,
                                       args=(f"attacker-{s}", ATTACKER, "generate", attack_request(s), stop_attack, 0,
                                             300, True))
                      for s in range(streams)]
    peak = [0.0]

    def sample_memory():
        while server and not stop_all.wait(1):
            with contextlib.suppress(psutil.Error):
                peak[0] = max(peak[0], server.memory_info().rss / 2**20)

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    for t in normal_threads:
        t.start()
    log(f"quiet: {len(NORMAL)} normal clients for {quiet_s:.0f} s")
    time.sleep(quiet_s)
    attack_start = now()
    log(f"attack: {streams} streams from {ATTACKER} for {attack_s:.0f} s")
    for t in attack_threads:
        t.start()
    time.sleep(max(0.0, attack_start + attack_s - now()))
    stop_attack.set()
    attack_end = now()
    log(f"after: the normal clients alone for {after_s:.0f} s (the attacker's requests under way may finish)")
    time.sleep(max(0.0, attack_end + after_s - now()))
    stop_all.set()
    run_end = now()
    for t in normal_threads:
        t.join()
    deadline = time.monotonic() + drain_s
    for t in attack_threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    unfinished = sum(t.is_alive() for t in attack_threads)
    with lock:
        records = list(records)
    if server:
        with contextlib.suppress(psutil.Error):
            rss.update(after_mb=round(server.memory_info().rss / 2**20, 1), peak_mb=round(peak[0], 1))
    return report(records, attack_start, attack_end, run_end, streams, unfinished, rss)


def report(records: list, attack_start: float, attack_end: float, run_end: float, streams: int, unfinished: int,
           rss: dict) -> dict:
    def phase(start):
        return "quiet" if start < attack_start else "attack" if start < attack_end else "after"

    normal = [r for r in records if r["client"].startswith("normal")]
    attacker = [r for r in records if r["client"].startswith("attacker")]
    for r in normal:
        r["phase"] = phase(r["start"])
    for r in attacker:
        r["phase"] = "attack"
    phases = {}
    for name in ("quiet", "attack", "after"):
        mine = [r for r in normal if r["phase"] == name]
        latencies = [r["latency"] for r in mine if r["outcome"] == "complete"]
        failed = [r for r in mine if r["outcome"] != "complete"]
        phases[name] = {"count": len(mine), "p50_s": percentile(latencies, 0.5), "p95_s": percentile(latencies, 0.95),
                        "max_s": max(latencies, default=None), "failures": len(failed),
                        "p95_s_failures_unanswered": percentile([waited(r) for r in mine], 0.95),
                        "failure_messages": dict(Counter(label(r) for r in failed).most_common())}
    quiet_p95 = phases["quiet"]["p95_s_failures_unanswered"]
    recovered = recovery(normal, attack_end, run_end, quiet_p95) if quiet_p95 is not None else None
    refusals = [r for r in attacker if r["outcome"] != "complete"]
    queue_full = [r for r in records if QUEUE_FULL in r.get("message", "").lower()]
    criteria = {
        f"normal p95 during the attack <= {GOAL_ATTACK_P95_S:.0f} s": phases["attack"]["count"] > 0
        and phases["attack"]["p95_s_failures_unanswered"] <= GOAL_ATTACK_P95_S,
        f"back to the quiet p95 within {GOAL_RECOVERY_S:.0f} s after the attack": recovered is not None
        and recovered <= GOAL_RECOVERY_S,
        "no 'Queue is full' seen by anyone": not queue_full,
        "the attacker is refused, every refusal with a sentence": bool(refusals)
        and all(refusal_has_sentence(r) for r in refusals),
        "every normal request answered": not any(p["failures"] for p in phases.values()),
    }
    return {
        "attack": {"start_s": round(attack_start, 2), "end_s": round(attack_end, 2), "after_end_s": round(run_end, 2),
                   "streams": streams, "address": ATTACKER},
        "normal": phases, "quiet_p95_s": quiet_p95, "recovery_s": recovered,
        "attacker": {"requests": len(attacker), "unfinished_at_the_end": unfinished,
                     "outcomes": dict(Counter(label(r) for r in attacker).most_common())},
        "queue_full": {"count": len(queue_full), "by_client_kind": dict(Counter(r["client"].split("-")[0]
                                                                                 for r in queue_full))},
        "server_rss": rss, "criteria": criteria,
        "failed": not criteria["every normal request answered"] or bool(queue_full)
        or not all(refusal_has_sentence(r) for r in refusals),
        "records": sorted(records, key=lambda r: r["start"]),
    }


def table(out: dict) -> str:
    def s(x):
        return "-" if x is None else f"{x:.2f}"

    lines = [f"{'phase':<7} {'normal n':>8} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'failures':>8} {'p95* s':>7}"]
    for name, p in out["normal"].items():
        lines.append(f"{name:<7} {p['count']:>8} {s(p['p50_s']):>7} {s(p['p95_s']):>7} {s(p['max_s']):>7} "
                     f"{p['failures']:>8} {s(p['p95_s_failures_unanswered']):>7}")
        lines += [f"        {n} x {text}" for text, n in p["failure_messages"].items()]
    lines.append("(p50, p95, max: of the answered requests; p95*: a failure counted as never answered)")
    recovered = out["recovery_s"]
    lines.append(f"recovery: {'not within the after phase' if recovered is None else f'{recovered:.2f} s'} after the "
                 f"attack (first 10 s window whose normal p95 <= the quiet p95, {s(out['quiet_p95_s'])} s)")
    a = out["attacker"]
    lines.append(f"attacker ({out['attack']['streams']} streams from {out['attack']['address']}): {a['requests']} "
                 f"requests ended (done or refused), {a['unfinished_at_the_end']} still running at the end")
    lines += [f"  {n:>6} x {text}" for text, n in a["outcomes"].items()]
    lines.append(f"'Queue is full' seen: {out['queue_full']['count']} {out['queue_full']['by_client_kind'] or ''}")
    if out["server_rss"]:
        lines.append("server RSS: " + ", ".join(f"{k[:-3]} {v:.0f} MB" for k, v in out["server_rss"].items()))
    lines += [f"{'PASS' if ok else 'FAIL'}  {name}" for name, ok in out["criteria"].items()]
    return "\n".join(lines)


@contextlib.contextmanager
def started_app(preset: str = "embedded", env: dict | None = None):
    """(url, pid) of `python app.py --preset PRESET` on a free port of 127.0.0.1, stopped on exit."""
    from tests.support.serving import app_process

    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"} if env is None else env
    with tempfile.TemporaryDirectory(prefix="hostile-load-") as folder:
        with app_process(["--preset", preset], ROOT, env, Path(folder) / "app.log") as url:
            port = urlsplit(url).port
            pid = next(p.pid for p in psutil.Process().children()
                       if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port
                              for c in p.net_connections(kind="tcp")))
            yield url, pid


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a server already running on a loopback address (default: start one)")
    parser.add_argument("--preset", default="embedded", help="the preset of the server started (default embedded)")
    parser.add_argument("--streams", type=int, default=96, help="the attacker's parallel loops (default 96)")
    parser.add_argument("--attack-s", type=float, default=60)
    parser.add_argument("--quiet-s", type=float, default=20)
    parser.add_argument("--after-s", type=float, default=30)
    parser.add_argument("--pause-s", type=float, default=0.1, help="between a normal client's requests")
    parser.add_argument("--json", help="also write the report, every request included, to this file")
    args = parser.parse_args()
    if not 1 <= args.streams <= 256:
        parser.error("the test is bounded: 1-256 streams")
    if args.after_s < WINDOW_S:
        parser.error(f"--after-s must be at least the {WINDOW_S:.0f} s window of the recovery")
    try:
        if args.url:
            loopback(urlsplit(args.url).hostname or "")
    except (ValueError, OSError) as error:
        parser.error(str(error))
    options = dict(streams=args.streams, attack_s=args.attack_s, quiet_s=args.quiet_s, after_s=args.after_s,
                   pause_s=args.pause_s, log=lambda text: print(text, file=sys.stderr))
    if args.url:
        out = hostile_load(args.url, **options)
    else:
        with started_app(args.preset) as (url, pid):
            out = hostile_load(url, pid=pid, **options)
    print(table(out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    sys.exit(1 if out["failed"] else 0)


if __name__ == "__main__":
    main()
