"""Per-phase timers that models call around each op; free unless a profile switches them on."""

import time
from collections import defaultdict
from contextlib import nullcontext


class NullClock:
    """Does nothing: `with clock("forward/linear1"):` costs one reused nullcontext."""

    _ctx = nullcontext()

    def __call__(self, name):
        return self._ctx


class PhaseClock:
    """Accumulates seconds per phase name.

    sync: called before each clock read (torch.cuda.synchronize on a GPU) so that
    asynchronous work is charged to the phase that launched it.
    """

    def __init__(self, sync=None, now=time.perf_counter):
        self.sync = sync or (lambda: None)
        self.now = now
        self.seconds = defaultdict(float)
        self.order: list[str] = []

    def __call__(self, name):
        return _Span(self, name)

    def add(self, name: str, seconds: float) -> None:
        """Charge `seconds` measured elsewhere (e.g. inside a worker process) to `name`."""
        if name not in self.seconds:
            self.order.append(name)
        self.seconds[name] += seconds


class _Span:
    __slots__ = ("clock", "name", "t0")

    def __init__(self, clock, name):
        self.clock, self.name = clock, name

    def __enter__(self):
        self.clock.sync()
        self.t0 = self.clock.now()

    def __exit__(self, *exc):
        self.clock.sync()
        c = self.clock
        if self.name not in c.seconds:
            c.order.append(self.name)
        c.seconds[self.name] += c.now() - self.t0
        return False


NULL_CLOCK = NullClock()  # the shared do-nothing clock every model starts with
