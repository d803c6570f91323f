"""Fair sharing of the models among concurrent requests: one worker thread runs every model call, in rounds. A round
takes the calls waiting when it starts, an equal share from each client address (app.serve.clients: as many as the
address with the fewest waiting has), so that an address with many requests cannot crowd out one with few; calls that
share a batch key (the same model over prompts, the same datastore at the same k) run as one batched call, the others
one by one, in the order they came. A request submits its next call only when the last one is answered, so it waits
at most for the round under way: a long generation (one call per token) holds a comparison for one step at most, and
concurrent comparisons share one forward pass. Each call's time is charged to the addresses it served."""
import itertools
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .clients import CURRENT


@dataclass
class Done:
    """What a call returned, the wall-clock ms of the (batched) call that computed it and how many requests it
    served."""
    value: object
    ms: float
    batch: int


class Call(NamedTuple):
    key: object
    run: object
    item: object
    repeats: int
    future: Future
    client: object  # app.serve.clients.Client, or None


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
            self._waiting.append(Call(key, run, item, repeats, future, CURRENT.get()))
            self._ready.notify()
        return future

    def call(self, fn, *args, repeats: int = 1) -> Done:
        """fn(*args) alone, in turn."""
        return self.submit(lambda items: [fn(*items[0])], args, repeats=repeats).result()

    def _serve(self):
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._waiting)
                round_ = self._round()
            groups = {}
            for call in round_:
                groups.setdefault(call.key, (call.run, call.repeats, []))[2].append(call)
            for run, repeats, entries in groups.values():
                self._run(run, repeats, entries)

    def _round(self) -> list:
        """The calls of this round, taken out of the waiting list: an equal share per address, oldest first (calls
        without an address, from the command line or a background build, count as one address)."""
        def address(call):
            return call.client and call.client.address

        share, taken = min(Counter(map(address, self._waiting)).values()), Counter()
        round_, later = [], []
        for call in self._waiting:
            taken[address(call)] += 1
            (round_ if taken[address(call)] <= share else later).append(call)
        self._waiting = later
        return round_

    @staticmethod
    def _run(run, repeats, calls: list[Call]):
        first = time.perf_counter()
        try:
            times = []
            with torch.no_grad():
                for _ in range(repeats):
                    start = time.perf_counter()
                    values = run([call.item for call in calls])
                    times.append((time.perf_counter() - start) * 1000)
            ms = round(statistics.median(times), 3)
            for call, value in zip(calls, values):
                call.future.set_result(Done(value, ms, len(calls)))
        except BaseException as error:  # the requests in this call get the error; the worker goes on
            for call in calls:
                call.future.set_exception(error)
        finally:
            spent = (time.perf_counter() - first) / len(calls)
            for call in calls:
                if call.client is not None:
                    call.client.spend(spent)
