"""Datastores built in a background thread while the app serves, one at a time in the order asked (the default base's
at start-up), so that no request waits on a build: a request for a store not ready yet is told how far it has got,
and every other request goes on."""
import logging
import threading
import time
from dataclasses import dataclass

from .contract import InputError
from .shown_paths import scrub

NO_CORPUS = ("this memory has no corpus here (the paper's is not public), so there is no live kNN-LM to show: "
             "the Memory Decoder carries what it learnt from it without one.")


@dataclass(frozen=True)
class Unavailable:
    """Why an answer has no kNN-LM: the memory has no corpus, its store cannot be built here (the reason), or it is
    being built (building: how far, so the answer can say what is pending and be asked again)."""
    reason: str
    building: bool = False
    fraction: float | None = None  # of the current step, None before it starts
    step: str | None = None
    ahead: int = 0  # builds queued before it

    def __post_init__(self):  # the reason may quote an error: no server path in it
        object.__setattr__(self, "reason", scrub(self.reason))

    def fields(self) -> dict:
        """What an answer says of its missing kNN-LM; pending is None unless it will come by itself."""
        pending = ({"knn": {"reason": self.reason, "fraction": self.fraction, "step": self.step,
                            "builds_ahead": self.ahead}} if self.building else None)
        return {"knn_unavailable": self.reason, "knn_building": self.building, "pending": pending}


RETRY_AFTER_S = 60  # a failed build is reported to every request this long, then tried again (a page polls meanwhile)
ANSWERED = {"knn_unavailable": None, "knn_building": False, "pending": None}  # what a complete answer says


class StillBuilding(InputError):
    """The datastore asked for is being built in the background; the message says how far it has got."""

    def __init__(self, unavailable: Unavailable):
        super().__init__(unavailable.reason)
        self.unavailable = unavailable

log = logging.getLogger(__name__)


class Builds:
    def __init__(self, engine: "Engine"):  # noqa: F821 (app.serve.engine.Engine, which imports this module)
        self.engine, self.order, self.progress, self.failed = engine, [], {}, {}
        self._more = threading.Condition()
        self._thread = threading.Thread(target=self._build_all, name="datastore-builds", daemon=True)
        self._thread.start()

    def add(self, key: tuple[str, str]):
        with self._more:
            if key not in self.order:
                self.order.append(key)
                self._more.notify()

    def wait(self, key: tuple[str, str]) -> InputError:
        """The error that tells a request where the build of its store stands; the store is queued if it was not.
        A build that failed is reported for RETRY_AFTER_S, then tried again at the next request."""
        error, at = self.failed.get(key, (None, 0.0))
        if error is not None and time.monotonic() < at + RETRY_AFTER_S:
            return error
        self.failed.pop(key, None)
        self.add(key)
        base, domain = key
        what = f"the kNN-LM datastore of base {base} with memory {domain}"
        with self._more:
            ahead = self.order.index(key) if key in self.order else 0
        fraction, step = self.progress.get(key, (None, None))
        if fraction is None:
            where = f"waits for {ahead} other build{'s' * (ahead != 1)} to finish" if ahead else "is starting"
        else:
            where = f"is at {fraction:.0%} ({step})"
        return StillBuilding(Unavailable(f"{what} is being built in the background (once; it is cached on disk) and "
                                         f"{where}; base and Memory Decoder answer meanwhile.",
                                         True, fraction, step, ahead))

    def _build_all(self):
        while True:
            with self._more:
                self._more.wait_for(lambda: self.order)
                key = self.order[0]
            try:
                self.engine.pair(*key)  # its models are loaded (and checked) by the same thread
                self.engine.datastore(*key, lambda fraction, step: self.progress.__setitem__(key, (fraction, step)),
                                      here=True)
            except InputError as error:
                self.failed[key] = error, time.monotonic()
            except Exception as error:  # the server goes on; the next request for this store tries again
                log.exception("building the datastore of %s failed", key)
                self.failed[key] = InputError(f"building the kNN-LM datastore of base {key[0]} with memory {key[1]} "
                                              f"failed ({type(error).__name__}: {error}); it is tried again at a "
                                              f"request after {RETRY_AFTER_S} s"), time.monotonic()
            with self._more:
                self.order.remove(key)
                self.progress.pop(key, None)
