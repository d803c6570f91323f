"""A short hostile load (tools/hostile_load.py, in-process, a short attack) against `python app.py --preset embedded`:
96 parallel /generate streams from 127.0.0.2, as in the attack observed (more than the
32 model slots and 64 places in the queue hold together; 24 would fit and test nothing), while 5 normal clients on
other loopback addresses send /compare. Only what no busy machine can make flaky is asserted, never a latency: nobody
is told "Queue is full", every normal request is answered, and every refusal of the attacker says why. (Before the
limits per address, the attacker's new sessions filled the queue and everyone was told "Queue is full".)"""
import os

from tools.hostile_load import QUEUE_FULL, hostile_load, refusal_has_sentence, started_app


def test_one_address_cannot_crowd_out_the_others():
    # the real cache (ROOT/.cache), as `python app.py` uses it: its datastores are built once, not per test session
    env = {k: v for k, v in os.environ.items() if k != "MEMDEC_CACHE"}
    with started_app("embedded", env) as (url, pid):
        out = hostile_load(url, streams=96, attack_s=15, quiet_s=10, after_s=10, pid=pid, drain_s=10,
                           log=lambda text: None)
    records = out["records"]
    normal = [r for r in records if r["client"].startswith("normal")]
    refusals = [r for r in records if r["client"].startswith("attacker") and r["outcome"] != "complete"]
    queue_full = [r for r in records if QUEUE_FULL in r.get("message", "").lower()]
    failed = [r for r in normal if r["outcome"] != "complete"]
    blank = [r for r in refusals if not refusal_has_sentence(r) and r not in queue_full]
    problems = [f"{len(found)} {what}: {found[:2]}" for found, what in [
        (queue_full, "requests were told the queue is full"),
        (failed, "requests of the normal clients were not answered"),
        (blank, "refusals of the attacker say nothing of why (blank, 'Something went wrong' or no answer)")] if found]
    assert normal, "the normal clients sent nothing"
    assert not problems, "\n".join(problems)
