"""Who is asking, by address, and what each address may use, so that one client cannot take the server from everyone
else: a raw HTTP call gets a new Gradio session every time, so the limits are kept per address (the socket's peer, or
behind trusted proxies the address they forwarded), never per session.

Four limits, each refused at once with a sentence that says when to try again:
- requests sent to the page's API, a rate (checked before Gradio reads a request, app.serve.ui.admission: a new
  session costs Gradio a copy of the page's config, so a flood of refused requests must cost next to nothing);
- requests waiting or running in the queue (checked there too, before a request joins);
- requests running on the models at once;
- a budget of model time: every call the scheduler runs is charged to the addresses it served (a batched call split
  among them), and an address whose budget is spent waits until it refills. A 64-token generation over a long prompt
  costs what it takes, many times a comparison, without anyone having to estimate it.
The scheduler also takes each round's calls round robin by address (app.serve.scheduler).
"""
import contextvars
import ipaddress
import math
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

from .contract import InputError


@dataclass(frozen=True)
class Policy:
    queued: int = 8  # requests of one address waiting or running in the queue
    running: int = 4  # of those, running on the models at once
    budget_s: float = 60.0  # seconds of model time an address may use in a burst
    refill: float = 0.5  # seconds of model time per second it earns back: half the models' time, sustained
    trusted_proxies: int = 0  # proxies in front of the server whose X-Forwarded-For is believed (a Space: 1)
    requests_per_s: float = 10.0  # POSTs to the API an address may send, sustained (a page sends a few per click)
    request_burst: int = 40  # ... and at once (a page sends about ten as it opens)


@dataclass
class Account:
    running: int = 0
    balance: float = 0.0  # seconds of model time left
    requests: float = 0.0  # requests left of the burst
    at: float = 0.0  # when both were last brought up to date (time.monotonic)


@dataclass(frozen=True)
class Client:
    """An address, as the scheduler knows it: it takes calls round robin by address and charges their time here."""
    address: str
    clients: "Clients"

    def spend(self, seconds: float):
        self.clients.spend(self.address, seconds)


CURRENT: contextvars.ContextVar[Client | None] = contextvars.ContextVar("client", default=None)


@contextmanager
def charged():
    """Charges the time of a block that runs models outside the scheduler (a cost measurement) to the client asking."""
    start, client = time.monotonic(), CURRENT.get()
    try:
        yield
    finally:
        if client is not None:
            client.spend(time.monotonic() - start)


class Clients:
    def __init__(self, policy: Policy = Policy()):
        self.policy, self._accounts, self._lock = policy, {}, threading.Lock()

    def address(self, request) -> str:
        """The client's address of a Starlette or Gradio request: the peer, or with trusted_proxies the address the
        nearest of them saw (X-Forwarded-For is appended to by each proxy, so the entries before theirs are the
        client's own word and never believed)."""
        peer = request.client.host if request.client else "unknown"
        hops = self.policy.trusted_proxies
        if hops:
            forwarded = [part.strip() for part in request.headers.get("x-forwarded-for", "").split(",") if part.strip()]
            if len(forwarded) >= hops:
                peer = forwarded[-hops]
        try:
            return str(ipaddress.ip_address(peer))
        except ValueError:
            return "unknown"

    def _account(self, address: str, now: float) -> Account:
        policy, account = self.policy, self._accounts.get(address)
        if account is None:
            account = self._accounts[address] = Account(0, policy.budget_s, policy.request_burst, now)
        account.balance = min(policy.budget_s, account.balance + (now - account.at) * policy.refill)
        account.requests = min(policy.request_burst, account.requests + (now - account.at) * policy.requests_per_s)
        account.at = now
        return account

    def request_refusal(self, address: str) -> str | None:
        """Counts a request of this address against its rate; the sentence when it has sent too many, else None."""
        with self._lock:
            account = self._account(address, time.monotonic())
            if account.requests < 1:
                return (f"your address has sent more than {self.policy.requests_per_s:g} requests a second: try again "
                        "in a second")
            account.requests -= 1
            self._forget_idle()
            return None

    @contextmanager
    def admitted(self, address: str):
        """Runs a request of this address on the models, or refuses it (InputError) when the address has its most
        requests running or has spent its budget; the scheduler charges its calls while it runs."""
        with self._lock:
            account = self._account(address, time.monotonic())
            if account.balance <= 0:
                wait = math.ceil(-account.balance / self.policy.refill) + 1
                raise InputError(f"your address has used its share of the models for now (each address may use "
                                 f"{self.policy.budget_s:.0f} s of model time at once, earning it back at "
                                 f"{self.policy.refill:g} s a second, so that everyone gets a turn): try again in "
                                 f"{wait} s")
            if account.running >= self.policy.running:
                raise InputError(f"your address already has {account.running} requests running on the models, the "
                                 "most one address may: try again in a few seconds, when one of them has finished")
            account.running += 1
        token = CURRENT.set(Client(address, self))
        try:
            yield
        finally:
            CURRENT.reset(token)
            with self._lock:
                self._accounts[address].running -= 1
                self._forget_idle()

    def spend(self, address: str, seconds: float):
        with self._lock:
            self._account(address, time.monotonic()).balance -= seconds

    def queue_refusal(self, waiting: int) -> str | None:
        """The sentence for a request that would be its address's waiting+1-th in the queue, or None: let it in."""
        if waiting < self.policy.queued:
            return None
        return (f"your address already has {waiting} requests waiting or running, the most one address may: try "
                "again in a few seconds, when one of them has finished (each address gets its share, so that "
                "everyone gets a turn)")

    def _forget_idle(self):
        """Accounts with nothing running and a full budget hold nothing worth keeping: memory stays bounded however
        many addresses have called."""
        if len(self._accounts) < 1024:
            return
        now = time.monotonic()
        for address in [a for a, acc in self._accounts.items() if not acc.running
                        and acc.balance + (now - acc.at) * self.policy.refill >= self.policy.budget_s
                        and acc.requests + (now - acc.at) * self.policy.requests_per_s >= self.policy.request_burst]:
            del self._accounts[address]
