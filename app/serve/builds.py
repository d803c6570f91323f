"""Datastores built in a background thread while the app serves, one at a time in the order asked (the default base's
at start-up), so that no request waits on a build: a request for a store not ready yet is told how far it has got,
and every other request goes on."""
import logging
import threading

from .contract import InputError


class StillBuilding(InputError):
    """The datastore asked for is being built in the background; the message says how far it has got."""

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
        A build that failed is reported once, and tried again at the next request."""
        if key in self.failed:
            return self.failed.pop(key)
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
        return StillBuilding(f"{what} is being built in the background (once; it is cached on disk) and {where}. Ask "
                             "again in a minute; other models and memories keep working meanwhile.")

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
                self.failed[key] = error
            except Exception as error:  # the server goes on; the next request for this store tries again
                log.exception("building the datastore of %s failed", key)
                self.failed[key] = InputError(f"building the kNN-LM datastore of base {key[0]} with memory {key[1]} "
                                              f"failed ({type(error).__name__}: {error}); ask again to retry")
            with self._more:
                self.order.remove(key)
                self.progress.pop(key, None)
