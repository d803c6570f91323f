"""Fair sharing of the models among concurrent requests: one worker thread runs every model call, in rounds. A round
takes every call waiting when it starts; calls that share a batch key (the same model over prompts, the same
datastore at the same k) run as one batched call, the others one by one, in the order they came. A request submits
its next call only when the last one is answered, so it waits at most for the round under way: a long generation
(one call per token) holds a comparison for one step at most, and concurrent comparisons share one forward pass."""
import itertools
import statistics
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

import torch


@dataclass
class Done:
    """What a call returned, the wall-clock ms of the (batched) call that computed it and how many requests it
    served."""
    value: object
    ms: float
    batch: int


class Scheduler:
    def __init__(self):
        self._waiting, self._ready = [], threading.Condition()
        self._alone = itertools.count()  # keys that batch with nothing
        self._worker = None

    def submit(self, run, item, key=None, repeats: int = 1) -> Future:
        """A Future of Done for item: run(list of items) -> list of values, called with every item of this key in the
        round (key None: alone). repeats > 1 runs it alone that many times and keeps the median time."""
        if repeats > 1 or key is None:
            key = ("alone", next(self._alone))
        future = Future()
        with self._ready:
            if self._worker is None:
                self._worker = threading.Thread(target=self._serve, name="model-calls", daemon=True)
                self._worker.start()
            self._waiting.append((key, run, item, repeats, future))
            self._ready.notify()
        return future

    def call(self, fn, *args, repeats: int = 1) -> Done:
        """fn(*args) alone, in turn."""
        return self.submit(lambda items: [fn(*items[0])], args, repeats=repeats).result()

    def _serve(self):
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._waiting)
                round_, self._waiting = self._waiting, []
            groups = {}
            for key, run, item, repeats, future in round_:
                groups.setdefault(key, (run, repeats, []))[2].append((item, future))
            for run, repeats, entries in groups.values():
                self._run(run, repeats, entries)

    @staticmethod
    def _run(run, repeats, entries):
        try:
            times = []
            with torch.no_grad():
                for _ in range(repeats):
                    start = time.perf_counter()
                    values = run([item for item, _ in entries])
                    times.append((time.perf_counter() - start) * 1000)
            ms = round(statistics.median(times), 3)
            for (_, future), value in zip(entries, values):
                future.set_result(Done(value, ms, len(entries)))
        except BaseException as error:  # the requests in this call get the error; the worker goes on
            for _, future in entries:
                future.set_exception(error)
