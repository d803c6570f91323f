"""Admission before Gradio reads a request (app.serve.ui.admission), on the real server: a flood of raw HTTP calls from
one address, each a new session, is refused with HTTP 429, a Retry-After and a sentence, before Gradio makes a session
for any of them, while another address is answered as usual."""
import asyncio
import uuid

import httpx
import pytest

from app.serve.ui import admission, common
from tests.support.serving import serve_in_background
from tests.support.visitors import behind_a_proxy

DATA = ["The protein binds to", "tiny-a", "bio", None, None, None, 3, None, False, False]


@pytest.fixture
def served(engine, monkeypatch):
    monkeypatch.setattr(admission, "REFUSAL_DELAY_S", 0.0)  # the delay is for a flood, not for this test
    with behind_a_proxy():
        url, demo = serve_in_background(engine)
        yield url, demo
        demo.close()


async def flood(url: str, address: str, sessions: list[str]) -> list[httpx.Response]:
    async with httpx.AsyncClient(headers={"X-Forwarded-For": address}, timeout=120) as client:
        return await asyncio.gather(*[client.post(f"{url}gradio_api/call/compare",
                                                  json={"data": DATA, "session_hash": session})
                                      for session in sessions])


def test_a_flood_is_refused_before_gradio_makes_a_session(served):
    url, demo = served
    sessions = [uuid.uuid4().hex for _ in range(common.CLIENTS.policy.request_burst + 30)]
    answers = asyncio.run(flood(url, "10.9.0.1", sessions))
    refused = [session for session, a in zip(sessions, answers) if a.status_code == 429]
    admitted = [a for a in answers if a.status_code == 200]
    # no more got in than the address's share of the queue
    assert 0 < len(admitted) <= common.CLIENTS.policy.queued and len(refused) >= 30
    for session, answer in zip(sessions, answers):
        if answer.status_code == 429:
            assert answer.headers["retry-after"]
            assert "requests a second" in answer.json()["detail"] or "waiting or running" in answer.json()["detail"]
    assert not set(refused) & set(demo.state_holder.session_data)  # Gradio never saw them
    other = asyncio.run(flood(url, "10.9.0.2", [uuid.uuid4().hex]))[0]  # another address is let in
    assert other.status_code == 200 and "event_id" in other.json()
