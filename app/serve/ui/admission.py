"""Who may send the page's API a request, decided before Gradio reads it: an ASGI middleware in front of the app that
refuses, per client address (app.serve.clients), a POST over the address's rate, and a request that would join the
queue while the address has its most waiting or running there. Gradio makes a session for every new session id (a
copy of the whole page's config) before its queue can refuse anything, so a flood of raw HTTP calls, each a new
session, would take the server's time even when every one of them is refused; here a refusal costs next to nothing.
It is answered with HTTP 429, Retry-After and {"detail": the sentence}, which gradio_client and the page show, after
REFUSAL_DELAY_S: a client that sends again as soon as it is refused then sends a request a second per connection, not
hundreds, and a held connection costs the server nothing but a timer."""
import asyncio
import json
from collections import Counter

from starlette.requests import Request

from .common import CLIENTS

API = "/gradio_api/"
JOINS = ("/gradio_api/queue/join", "/gradio_api/call/")  # the routes where a request joins the queue
REFUSAL_DELAY_S = 1.0


class Admission:
    def __init__(self, app):
        self.app, self.joining = app, Counter()  # joining: requests under way on a JOINS route, per address

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "POST" or API not in path:
            return await self.app(scope, receive, send)
        address = CLIENTS.address(Request(scope))
        joins = any(route in path for route in JOINS)
        refusal = CLIENTS.request_refusal(address)
        if refusal is None and joins:
            refusal = CLIENTS.queue_refusal(self.joining[address] + queued(scope["app"], address))
        if refusal:
            return await refuse(send, refusal)
        if not joins:
            return await self.app(scope, receive, send)
        self.joining[address] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.joining[address] -= 1
            if not self.joining[address]:
                del self.joining[address]


def queued(app, address: str) -> int:
    """The address's requests waiting or running in Gradio's queue."""
    queue = app.get_blocks()._queue
    events = [event for line in queue.event_queue_per_concurrency_id.values() for event in line.queue]
    events += [event for job in queue.active_jobs if job for event in job]
    return sum(CLIENTS.address(event.request) == address for event in events)


async def refuse(send, sentence: str):
    await asyncio.sleep(REFUSAL_DELAY_S)
    body = json.dumps({"detail": sentence}).encode()
    await send({"type": "http.response.start", "status": 429,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"retry-after", b"2")]})
    await send({"type": "http.response.body", "body": body})
