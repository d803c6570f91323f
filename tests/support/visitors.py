"""Visitors at addresses of their own, as a Space's proxy shows them: the server under test trusts one proxy, and each
client sends its X-Forwarded-For, so that the limits per address (app.serve.clients) see one visitor per client, as
they would on a Space, while every test runs on 127.0.0.1."""
import contextlib
import dataclasses
import itertools

from gradio_client import Client

from app.serve.ui import common

_numbers = itertools.count(1)


@contextlib.contextmanager
def behind_a_proxy():
    kept = common.CLIENTS.policy
    common.CLIENTS.policy = dataclasses.replace(kept, trusted_proxies=1)
    try:
        yield
    finally:
        common.CLIENTS.policy = kept


def new_address() -> str:
    number = next(_numbers)
    return f"10.1.{number // 250}.{number % 250 + 1}"


def visitor(url: str, address: str | None = None, **options) -> Client:
    """A gradio_client at this address (a new one when None); options go to Client (headers merged)."""
    headers = {"X-Forwarded-For": address or new_address(), **options.pop("headers", {})}
    return Client(url, verbose=False, headers=headers, **options)
