"""A process-wide admission limit on expensive work, so that one server is shared fairly.

Streamlit runs every visitor's script in its own thread of one process. Without a limit, ten
visitors start ten forward passes (or flows) at once on a two-core machine: each gets a fifth of
a core, every page slows down together, and memory holds ten runs' activations at the same
time. With it, at most `slots` pieces of expensive work run at once (one per CPU core by
default) and the rest wait in line, each told its place::

    from server import admission

    with admission.slot("attention", on_queued=lambda position: note(f"{position} in line")):
        result = run_attention(model, text)

`core` takes no slot itself (it is a library: a notebook has no line to wait in); the app wraps
each computation it does not have stored yet in one slot (`ui.cache.admitted`). Slots are
reentrant per thread, so a caller that wraps a larger piece of work in one slot is not counted
twice. Waiting is bounded: after `timeout` seconds the caller gets a `ServerBusyError` with a
message for people instead of hanging.

Lock order: take the slot first, then any other lock (the neuron view does), so that a thread
holding a lock never waits for a slot held by a thread waiting for that lock.

Torch threads. PyTorch runs one forward pass on as many threads as the machine has cores. With
one pass per core admitted at once that would be cores² busy threads fighting over the cores:
every pass slows down and the operating system's scheduling, not the queue, decides who goes
first. So the app sets PyTorch's intra-op threads to cores // slots at start-up
(`limit_torch_threads`, called by `ui.runtime.tune_process`): a lone visitor's pass may take
longer than it could, but a second visitor's page no longer waits behind a pass that holds every
core. Nothing here runs on import.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from server.errors import ServerBusyError

DEFAULT_TIMEOUT = 45.0
"""Seconds a request waits in line before giving up: long enough to wait out a few forward
passes and a budgeted flow (30 s in public mode), short of a visitor's patience and of the
60 s after which the soak benchmark counts a page as failed."""
CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cores(cpu_max: Path = CPU_MAX) -> int:
    """CPU cores this process may use: its affinity mask (or `os.cpu_count()`), lowered to a
    container's CPU quota (cgroup v2 `cpu.max`, e.g. "200000 100000" is two cores)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


class AdmissionLimiter:
    """At most `slots` holders at once; the others wait first come, first served.

    Thread-safe. `slot()` is reentrant per thread: a thread that holds a slot and asks again
    (e.g. a page computation that runs several forward passes) passes straight through.
    """

    def __init__(self, slots: int, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        if slots < 1:
            raise ValueError(f"slots must be at least 1, not {slots}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        self.slots = slots
        self.timeout = timeout
        self._condition = threading.Condition(threading.Lock())
        self._running = 0
        self._line: collections.deque[object] = collections.deque()
        self._held = threading.local()

    @property
    def running(self) -> int:
        """Holders right now."""
        with self._condition:
            return self._running

    @property
    def waiting(self) -> int:
        """Callers in line right now."""
        with self._condition:
            return len(self._line)

    @contextlib.contextmanager
    def slot(
        self,
        what: str = "request",
        on_queued: Callable[[int], object] | None = None,
        timeout: float | None = None,
    ) -> Iterator[None]:
        """Hold one slot for the body of the `with` block; released however the block ends.

        Args:
            what: what the work is, for the busy message ("attention flow", "forward").
            on_queued: called as `on_queued(position)` when the caller has to wait, and again
                whenever its place changes: `position` 1 is next in line (it starts as soon as
                one of the `slots` running requests finishes). Called in the waiting thread,
                outside the limiter's lock; if it raises (e.g. the visitor left), the caller
                leaves the line and the exception propagates.
            timeout: seconds to wait (default: the limiter's); None on both waits for ever.

        Raises:
            ServerBusyError: still in line after `timeout` seconds.
        """
        if getattr(self._held, "depth", 0):
            self._held.depth += 1
            try:
                yield
            finally:
                self._held.depth -= 1
            return
        self._acquire(what, on_queued, self.timeout if timeout is None else timeout)
        self._held.depth = 1
        try:
            yield
        finally:
            self._held.depth = 0
            with self._condition:
                self._running -= 1
                self._condition.notify_all()

    def _acquire(
        self, what: str, on_queued: Callable[[int], object] | None, timeout: float | None
    ) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        ticket = object()
        with self._condition:
            if self._running < self.slots and not self._line:
                self._running += 1
                return
            self._line.append(ticket)
        reported = 0
        try:
            while True:
                with self._condition:
                    position = self._line.index(ticket) + 1
                    if position == 1 and self._running < self.slots:
                        self._line.popleft()
                        self._running += 1
                        self._condition.notify_all()  # everyone behind moved up
                        return
                    if position == reported or on_queued is None:
                        remaining = None if deadline is None else deadline - time.monotonic()
                        if remaining is not None and remaining <= 0:
                            raise ServerBusyError(self._busy_message(what, timeout))
                        self._condition.wait(remaining)
                        continue
                reported = position
                on_queued(position)  # outside the lock: it may be slow, or raise
        except BaseException:
            with self._condition:
                with contextlib.suppress(ValueError):
                    self._line.remove(ticket)
                self._condition.notify_all()
            raise

    def _busy_message(self, what: str, timeout: float | None) -> str:
        waited = f"{timeout:g} s" if timeout is not None else "a long time"
        return (
            f"The server is busy: your {what} waited {waited} behind {self._running} running and "
            f"{len(self._line) - 1} other waiting requests from other visitors. Nothing was "
            "lost; try again in a moment."
        )


_limiter = AdmissionLimiter(available_cores())
_setup_lock = threading.Lock()


def limiter() -> AdmissionLimiter:
    """The process-wide limiter that `slot` uses."""
    return _limiter


def configure(slots: int | None = None, timeout: float | None = DEFAULT_TIMEOUT) -> None:
    """Replace the process-wide limiter: `slots` (default: `available_cores()`) and `timeout`.

    Meant for start-up and tests. Work already holding a slot of the old limiter finishes and
    releases it there; new work lines up at the new one.
    """
    global _limiter
    with _setup_lock:
        _limiter = AdmissionLimiter(slots or available_cores(), timeout)


def limit_torch_threads(slots: int | None = None) -> int:
    """Set PyTorch's intra-op threads to cores // slots (at least 1); returns the number.

    See the module docstring for why. For the server process only, at start-up: a notebook
    keeps PyTorch's own choice.
    """
    import torch

    threads = max(1, available_cores() // (slots or _limiter.slots))
    torch.set_num_threads(threads)
    return threads


@contextlib.contextmanager
def slot(
    what: str = "request",
    on_queued: Callable[[int], object] | None = None,
    timeout: float | None = None,
) -> Iterator[None]:
    """`AdmissionLimiter.slot` of the process-wide limiter (see `configure`)."""
    with _limiter.slot(what, on_queued, timeout):
        yield
