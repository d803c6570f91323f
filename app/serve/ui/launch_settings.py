"""How the page is launched, chosen in one place for a public Space: upload size, cache clean-up, the queue and
its concurrency. README "Running as a public Space" gives the reasons."""
from dataclasses import dataclass

from .. import memories


@dataclass(frozen=True)
class LaunchSettings:
    # uploads over this are refused by Gradio before they are written to disk (a memory's text: its .gz is checked
    # again once unpacked)
    max_file_size: int = memories.MAX_BYTES
    # every 10 minutes, Gradio's cached files (uploads, exports) older than an hour are deleted; all of them at exit
    delete_cache: tuple[int, int] = (600, 3600)
    # requests waiting beyond this are told the queue is full: 64 is about half a minute of /compare on 2 CPU cores
    queue_size: int = 64
    # one request at a time per slot. Events that run models share one slot (concurrency_id="models"): the engine
    # runs one model call at a time (its key hooks are shared state), so more would only wait inside it. The others
    # (export, a memory's distil, cancel and delete) have a slot each; re-mixing and menus skip the queue.
    default_concurrency: int = 1

    def blocks(self) -> dict:
        return {"delete_cache": self.delete_cache}

    def queue(self) -> dict:
        return {"default_concurrency_limit": self.default_concurrency, "max_size": self.queue_size}

    def launch(self) -> dict:
        return {"max_file_size": self.max_file_size, "show_error": False}  # tracebacks stay in the server's log


SETTINGS = LaunchSettings()
