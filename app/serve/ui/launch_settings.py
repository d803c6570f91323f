"""How the page is launched, chosen in one place for a public Space: upload size, cache clean-up, the queue and
its concurrency (model slots and the per-visitor limit included). README "Running as a public Space" gives the
reasons."""
import os
from dataclasses import dataclass, field

from .. import memories
from ..clients import Policy


@dataclass(frozen=True)
class LaunchSettings:
    # uploads over this are refused by Gradio before they are written to disk: the largest is a memory's .zip to
    # restore (a memory's text is checked against uploads.MAX_BYTES as it is read, its .gz once unpacked)
    max_file_size: int = memories.BUNDLE_BYTES
    # every 10 minutes, Gradio's cached files (uploads, exports) older than an hour are deleted; all of them at exit
    delete_cache: tuple[int, int] = (600, 3600)
    # requests waiting beyond this are told the queue is full; one address may hold at most policy.queued of them
    # (app.serve.clients), so it takes 32 addresses at their most to fill it
    queue_size: int = 256
    # events that run models (compare, generate, score, cost, on the page and the API) share these slots
    # (concurrency_id="models"): inside the engine one scheduler runs their model calls in rounds, batching and
    # interleaving them (app.serve.scheduler), so a request in a slot waits at most for the round under way
    model_slots: int = 32
    # what one client address may have waiting, running and spend (app.serve.clients); a Space sets
    # MEMDEC_TRUSTED_PROXIES=1, so that the address its proxy forwards is the client's
    policy: Policy = field(default_factory=lambda: Policy(trusted_proxies=int(os.environ.get(
        "MEMDEC_TRUSTED_PROXIES") or 0)))
    # sessions whose page state (a comparison, a generation) is kept in memory; the oldest are dropped beyond it, so
    # that many short sessions (every raw HTTP call is one) cannot grow the server's memory (Gradio's default: 10,000)
    state_sessions: int = 64
    # builds of visitors' memories (an upload, a restore) running at once; one address has at most one of them
    # (app.serve.memories), so another address's build never waits behind a second of its
    build_slots: int = 2
    # every other queued event (export, a memory's distil, cancel and delete) has one slot of its own;
    # re-mixing and menus skip the queue
    default_concurrency: int = 1

    def blocks(self) -> dict:
        return {"delete_cache": self.delete_cache}

    def queue(self) -> dict:
        return {"default_concurrency_limit": self.default_concurrency, "max_size": self.queue_size}

    def launch(self) -> dict:
        # show_error off: tracebacks stay in the server's log
        return {"max_file_size": self.max_file_size, "show_error": False, "state_session_capacity": self.state_sessions}


SETTINGS = LaunchSettings()
