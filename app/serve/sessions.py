"""How many requests each visitor may have running at once, so that one client cannot take every place in the
queue or every slot on the models; the others are refused at once with a sentence saying why."""
import threading
from collections import Counter
from contextlib import contextmanager

from .engine import InputError


class SessionLimit:
    def __init__(self, most: int):
        self.most, self.running, self._lock = most, Counter(), threading.Lock()

    @contextmanager
    def slot(self, session: str):
        with self._lock:
            if self.running[session] >= self.most:
                raise InputError(f"you already have {self.most} requests running: wait for one of them to finish (each "
                                 f"visitor may run {self.most} at a time, so that everyone gets a turn)")
            self.running[session] += 1
        try:
            yield
        finally:
            with self._lock:
                self.running[session] -= 1
                if not self.running[session]:
                    del self.running[session]
