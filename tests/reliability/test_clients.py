"""The limits per client address (app.serve.clients) and the scheduler's fair rounds, without a server: which address a
request is, refusals with a sentence that says when to try again, a budget of model time charged by the scheduler and
earned back, and rounds that take an equal share from each address. Time is the module's clock, moved by hand."""
import threading
from types import SimpleNamespace

import pytest

from app.serve import clients as clients_module
from app.serve.clients import CURRENT, Client, Clients, Policy
from app.serve.contract import InputError
from app.serve.scheduler import Scheduler

LIMIT_S = 60  # only stops a hung test


def request(peer: str, forwarded: str | None = None):
    return SimpleNamespace(client=SimpleNamespace(host=peer),
                           headers={"x-forwarded-for": forwarded} if forwarded is not None else {})


def test_the_address_is_the_peer_unless_a_proxy_is_trusted():
    direct, behind = Clients(Policy()), Clients(Policy(trusted_proxies=1))
    assert direct.address(request("127.0.0.2", "10.9.9.9")) == "127.0.0.2"  # a header anyone can send is not believed
    assert behind.address(request("10.0.0.1", "203.0.113.7")) == "203.0.113.7"
    # entries before the proxy's own are the client's word: a client cannot pick its address by sending them
    assert behind.address(request("10.0.0.1", "1.2.3.4, 203.0.113.7")) == "203.0.113.7"
    assert behind.address(request("10.0.0.1", "not an address")) == "unknown"
    assert behind.address(request("10.0.0.1")) == "10.0.0.1"  # no header: straight to the server


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(clients_module.time, "monotonic", lambda: now[0])
    return now


def test_requests_running_per_address_are_bounded(clock):
    limits = Clients(Policy(running=2))
    with limits.admitted("10.0.0.2"), limits.admitted("10.0.0.2"):
        with pytest.raises(InputError, match=r"your address already has 2 requests running .* try again in a few"):
            with limits.admitted("10.0.0.2"):
                pass
        with limits.admitted("10.0.0.3"):  # another address is not held back
            assert CURRENT.get().address == "10.0.0.3"
    with limits.admitted("10.0.0.2"):  # the slots come back when requests end, refused ones included
        pass


def test_model_time_is_a_budget_that_refills(clock):
    limits = Clients(Policy(budget_s=10, refill=0.5))
    with limits.admitted("10.0.0.2"):
        CURRENT.get().spend(14)  # one long request may overdraw: it was let in with budget left
    with pytest.raises(InputError, match=r"used its share of the models.* try again in 9 s"):
        with limits.admitted("10.0.0.2"):
            pass
    with limits.admitted("10.0.0.3"):  # each address has its own
        pass
    clock[0] += 8.1  # 4 s earned back: the balance is above zero again
    with limits.admitted("10.0.0.2"):
        pass
    clock[0] += 3600  # never more than the budget, however long it waited
    limits.spend("10.0.0.2", 10.5)
    with pytest.raises(InputError, match="try again in 2 s"):
        with limits.admitted("10.0.0.2"):
            pass


def test_the_queue_admits_an_address_up_to_its_share():
    limits = Clients(Policy(queued=3))
    assert limits.queue_refusal(2) is None
    assert "your address already has 3 requests waiting or running" in limits.queue_refusal(3)


def test_a_round_takes_an_equal_share_from_each_address():
    scheduler, ran, spent = Scheduler(), [], {}
    release, started = threading.Event(), threading.Event()
    scheduler.submit(lambda items: [started.set(), release.wait(LIMIT_S)][:1], None)  # holds the worker
    assert started.wait(LIMIT_S)

    class Spender:
        def spend(self, address, seconds):
            spent[address] = spent.get(address, 0) + seconds

    def submit(address, name):
        token = CURRENT.set(Client(address, Spender()))
        try:
            return scheduler.submit(lambda items: [ran.append(item) or item for item in items], name, key="same")
        finally:
            CURRENT.reset(token)

    futures = [submit("10.0.0.2", f"a{i}") for i in range(6)] + [submit("10.0.0.3", "b0"), submit("10.0.0.3", "b1")]
    release.set()
    for future in futures:
        future.result(LIMIT_S)
    # rounds of two from each while both wait (as many as the address with fewer has), then the rest of a's at once;
    # calls of one key in a round are one batched call, in the order they came
    assert ran == ["a0", "a1", "b0", "b1", "a2", "a3", "a4", "a5"]
    assert set(spent) == {"10.0.0.2", "10.0.0.3"} and all(seconds >= 0 for seconds in spent.values())


def test_requests_per_address_are_a_rate(clock):
    limits = Clients(Policy(requests_per_s=2, request_burst=3))
    assert [limits.request_refusal("10.0.0.2") for _ in range(3)] == [None] * 3
    assert "more than 2 requests a second" in limits.request_refusal("10.0.0.2")
    assert limits.request_refusal("10.0.0.3") is None  # another address has its own
    clock[0] += 0.5  # one request earned back
    assert limits.request_refusal("10.0.0.2") is None and limits.request_refusal("10.0.0.2") is not None
