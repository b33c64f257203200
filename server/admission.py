"""A process-wide admission limit on expensive work, so that one server is shared fairly.

Streamlit runs every visitor's script in its own thread of one process. Without a limit, ten
visitors start ten forward passes (or flows) at once on a two-core machine: each gets a fifth of
a core, every page slows down together, and memory holds ten runs' activations at the same
time. With it, at most `slots` pieces of expensive work run at once (one per CPU core by
default) and the rest wait in line, each told its place::

    from server import admission

    with admission.slot("attention", on_queued=lambda place: note(f"{place.position} in line")):
        result = run_attention(model, text)

A fair share per visitor (issue 24): work whose declared cost (`core.costs`, × one forward
pass's multiply-adds) is heavy waits in a line of its own with `heavy_slots` slots, so an
ordinary page never waits behind another visitor's flow or agreement table, and each visitor
(session, and client address where the host passes one) has at most one heavy request in
flight, so four tabs of one visitor get no more than one tab's share.

`core` takes no slot itself (it is a library: a notebook has no line to wait in); the app wraps
each computation it does not have stored yet in one slot (`ui.cache.admitted`). Slots are
reentrant per thread, so a caller that wraps a larger piece of work in one slot is not counted
twice. Waiting is bounded: after `timeout` seconds the caller gets a `ServerBusyError` with a
message for people instead of hanging.

Ordinary work goes first (issue 24). Heavy work in its own line still runs in this one Python
process, beside everyone's pages, and shares the interpreter lock with them: one heavy page, flow
or download made ordinary pages 3× slower at the 95th percentile (bench/RESULTS.md, fair
share). So a heavy request gives way: while any ordinary work is running or waiting (a page run
marked by `ordinary_work`, an ordinary slot held or waited for), the thread holding a heavy slot
pauses at its next safe point until that work is done, for at most `GIVE_WAY_PAUSE` seconds at
a time (the limiter's `pause`), and then runs at least `GIVE_WAY_RUN` seconds before it pauses
again, so it is never starved. The safe points are every function call the thread makes
outside code that may hold a lock other visitors need (`_safe_to_pause`); a per-thread profile
function finds them while the heavy slot is held, and `give_way()` is one more, for callers at
a chunk boundary.

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
import sys
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from core.loading_lock import LOADING_LOCK
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


HEAVY_MULTIPLY_ADDS = 10e9
"""Work from this many multiply-adds up is heavy (`is_heavy`): about 0.7 s of one core here,
what a bert-base forward pass over 128 tokens measured (bench/RESULTS.md, Methods). An
ordinary page's pass (the embedded model, a few hundred tokens) stays below; a flow, value
zeroing, an agreement table or a long text on a large model is above."""
HEAVY_TIMEOUT_FACTOR = 4
"""Heavy work waits this many times longer than ordinary work before `ServerBusyError`: it runs
one (or a few) at a time, so its line moves slowly, and its visitor is told where they stand."""


HEAVY_ATTENTION_CELLS = 16_000_000
"""A page (or a download) whose attention has this many cells (layers × heads × n²; 64 MB in
float32) is heavy as a whole: drawing, pooling and exporting it grow with the cells, and run in
the server's one Python process beside everyone's pages. Four sessions of 512-token pages on
MiniLM (18.9 M cells each) raised ordinary visitors' p95 19.8× when only their computations
waited in the heavy line (bench/RESULTS.md, fair share). Below it: MiniLM up to ≈ 470 tokens
(an ordinary 300-word text is ≈ 7 M cells, ≈ 12 M as estimated before tokenizing), bert-base
at the public 256-token cap (9.4 M)."""


GIVE_WAY_PAUSE = 0.25
"""Longest single pause of heavy work while ordinary work runs: longer than most ordinary page
runs (p50 0.08 s, p95 0.3 s in bench/soak.py), short enough that a lock the paused thread holds
by chance (one the safe points do not know of) delays another visitor only this long."""
GIVE_WAY_RUN = 0.05
"""After a pause that timed out, heavy work runs this long before it may pause again: under a
constant stream of ordinary work it still gets one sixth of its time, never nothing."""
_PROJECT = str(Path(__file__).resolve().parents[1]) + os.sep
_STDLIB = os.path.dirname(threading.__file__) + os.sep
_HOLDS_SHARED_LOCKS = (
    threading.__file__,  # locks and conditions being taken or released
    _STDLIB + "queue.py",
    _STDLIB + "logging" + os.sep,
    _STDLIB + "concurrent" + os.sep,
    "<frozen importlib",  # module locks, held while a module runs its body
    _PROJECT + "core" + os.sep + "tokens.py",  # the tokenizer lock every request takes
    _PROJECT + "core" + os.sep + "corpus" + os.sep,  # the corpus store's file guards
    _PROJECT + "ui" + os.sep + "store.py",  # the result store's lock
    str(Path(__file__).resolve()),  # this limiter's own lock
)
"""Code a heavy thread must not pause in, because it may hold a lock another visitor's request
waits for. Streamlit's runtime (`_streamlit_file`: its media files, caches and session queues
are shared by every session and by the event loop serving them) and `core.loading_lock` (held
by its owner, `_safe_to_pause`) are checked too."""


def _safe_to_pause(frame: FrameType | None) -> bool:
    """Whether a thread whose innermost frame is `frame` may pause there: it does not hold
    `core.loading_lock`, and no frame from `frame` out to the innermost frame of this project's
    own code is one of `_HOLDS_SHARED_LOCKS` or Streamlit's (which calls this project's code
    from its script runner and download threads, holding none of its locks there)."""
    if LOADING_LOCK._is_owned():  # type: ignore[attr-defined]  # the C RLock's own check
        return False
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(_HOLDS_SHARED_LOCKS) or _streamlit_file(name):
            return False
        if name.startswith(_PROJECT):
            return True
        frame = frame.f_back
    return True


def _streamlit_file(name: str) -> bool:
    return f"{os.sep}streamlit{os.sep}" in name and f"{os.sep}site-packages{os.sep}" in name


def is_heavy_page(cells: float) -> bool:
    """Whether a page or download of an attention of `cells` cells is heavy as a whole."""
    return cells >= HEAVY_ATTENTION_CELLS


def is_heavy(multiply_adds: float) -> bool:
    """Whether work of `multiply_adds` (cost × one pass, `core.costs`) is heavy."""
    return multiply_adds >= HEAVY_MULTIPLY_ADDS


@dataclass(frozen=True)
class Place:
    """Where a waiting request stands, for the message its visitor sees."""

    position: int
    """1 is next in its line (heavy and ordinary work wait in separate lines)."""
    heavy: bool
    own_in_flight: bool = False
    """Heavy only: the same visitor's other heavy request is still running, and this one waits
    for it whatever its position."""


@dataclass(eq=False)
class _Ticket:
    heavy: bool
    visitor: tuple[Hashable, ...]


class AdmissionLimiter:
    """A fair share of the server: ordinary work never waits behind heavy work.

    Two lines. Ordinary work takes one of `slots` slots (one per core by default), first come
    first served among ordinary work. Heavy work (`heavy=True`: its declared cost is over
    `HEAVY_MULTIPLY_ADDS`) takes one of `heavy_slots` slots of its own (default half the
    slots, at least one), so it never holds an ordinary slot; and a visitor (each key of
    `visitor`: the session, and the client address where the host passes one) has at most one
    heavy request in flight: a second waits until the first is done, and others' heavy work
    goes ahead of it.

    Ordinary work goes first: while any is running or waiting, a thread holding a heavy slot
    pauses at its safe points (the module docstring; `give_way`). `ordinary_work()` marks a
    page run (which holds no slot while it only draws) as ordinary work.

    Thread-safe. `slot()` is reentrant per thread: a thread that holds a slot and asks again
    (e.g. a page computation that runs several forward passes) passes straight through.
    """

    def __init__(
        self,
        slots: int,
        timeout: float | None = DEFAULT_TIMEOUT,
        heavy_slots: int | None = None,
        pause: float = GIVE_WAY_PAUSE,
    ) -> None:
        if slots < 1:
            raise ValueError(f"slots must be at least 1, not {slots}")
        if heavy_slots is not None and heavy_slots < 1:
            raise ValueError(f"heavy_slots must be at least 1, not {heavy_slots}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        if pause <= 0:
            raise ValueError(f"pause must be positive, not {pause}")
        self.slots = slots
        self.heavy_slots = heavy_slots or max(1, slots // 2)
        self.timeout = timeout
        self.pause = pause
        """Longest single pause of heavy work for ordinary work (`GIVE_WAY_PAUSE`)."""
        self._condition = threading.Condition(threading.Lock())
        self._running = {False: 0, True: 0}
        self._owners: collections.Counter[Hashable] = collections.Counter()
        self._line: list[_Ticket] = []
        self._held = threading.local()
        self._ordinary_pages = 0
        self._paused_now = 0
        self._ordinary = 0
        """Ordinary work in flight (pages marked, slots held, tickets in line): read without
        the lock by heavy threads at every safe point, so kept as one number."""

    @property
    def running(self) -> int:
        """Holders right now, ordinary and heavy."""
        with self._condition:
            return self._running[False] + self._running[True]

    @property
    def running_heavy(self) -> int:
        with self._condition:
            return self._running[True]

    @property
    def waiting(self) -> int:
        """Callers in line right now, ordinary and heavy."""
        with self._condition:
            return len(self._line)

    @property
    def paused_now(self) -> int:
        """Heavy threads pausing for ordinary work right now."""
        with self._condition:
            return self._paused_now

    @property
    def ordinary_in_flight(self) -> int:
        """Ordinary work running or waiting: marked page runs, ordinary slots and tickets."""
        return self._ordinary

    def _recount(self) -> None:
        """Under the lock, after any change to ordinary work; wakes paused heavy threads."""
        waiting = sum(1 for ticket in self._line if not ticket.heavy)
        self._ordinary = self._ordinary_pages + self._running[False] + waiting
        self._condition.notify_all()

    @contextlib.contextmanager
    def ordinary_work(self) -> Iterator[None]:
        """Mark the body (an ordinary page run) as ordinary work: heavy work gives way to it.

        Holds no slot: a page that only draws stored results never waits. A thread that takes
        a heavy slot inside (an ordinary page starting a flow) stops counting as ordinary work
        meanwhile, so that it never waits for itself.
        """
        with self._condition:
            self._ordinary_pages += 1
            self._recount()
        self._held.ordinary = getattr(self._held, "ordinary", 0) + 1
        try:
            yield
        finally:
            self._held.ordinary -= 1
            with self._condition:
                self._ordinary_pages -= 1
                self._recount()

    def paused_seconds(self) -> float:
        """Seconds this thread has paused for ordinary work so far, in all its heavy slots (a
        running total: callers take differences)."""
        return getattr(self._held, "paused", 0.0)

    def give_way(self) -> None:
        """A safe point of heavy work (a chunk boundary): pause while ordinary work is in
        flight, as the profile function does at every safe call (`GIVE_WAY_PAUSE`,
        `GIVE_WAY_RUN`). Nothing happens on a thread that holds no heavy slot."""
        if self._ordinary and getattr(self._held, "heavy", False):
            self._pause()

    def _profile(self, frame: FrameType, event: str, arg: Any) -> None:
        # Called on every call and return of a thread holding a heavy slot: one attribute read
        # while no ordinary work is in flight.
        if self._ordinary:
            self._pause(frame)

    def _pause(self, frame: FrameType | None = None) -> None:
        held = self._held
        started = time.monotonic()
        if started < getattr(held, "run_until", 0.0):
            return
        if frame is not None and not _safe_to_pause(frame):
            return
        with self._condition:
            self._paused_now += 1
            drained = self._condition.wait_for(lambda: not self._ordinary, self.pause)
            self._paused_now -= 1
        ended = time.monotonic()
        held.paused = getattr(held, "paused", 0.0) + ended - started
        if not drained:
            held.run_until = ended + GIVE_WAY_RUN

    @contextlib.contextmanager
    def slot(
        self,
        what: str = "request",
        on_queued: Callable[[Place], object] | None = None,
        timeout: float | None = None,
        *,
        heavy: bool = False,
        visitor: tuple[Hashable, ...] = (),
    ) -> Iterator[None]:
        """Hold one slot for the body of the `with` block; released however the block ends.

        Args:
            what: what the work is, for the busy message ("attention flow", "forward").
            on_queued: called as `on_queued(place)` when the caller has to wait, and again
                whenever its `Place` changes. Called in the waiting thread, outside the
                limiter's lock; if it raises (e.g. the visitor left), the caller leaves the
                line and the exception propagates.
            timeout: seconds to wait (default: the limiter's, `HEAVY_TIMEOUT_FACTOR` times
                longer for heavy work); None on both waits for ever.
            heavy: the work is heavy (`is_heavy`): it waits in the heavy line.
            visitor: who asks (session id, client address; None entries are ignored). Used for
                heavy work only: one heavy request in flight per key.

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
        if timeout is None and self.timeout is not None:
            timeout = self.timeout * (HEAVY_TIMEOUT_FACTOR if heavy else 1)
        ticket = _Ticket(heavy, tuple(key for key in visitor if key is not None) if heavy else ())
        self._acquire(ticket, what, on_queued, timeout)
        self._held.depth = 1
        with self._heavy_thread() if heavy else contextlib.nullcontext():
            try:
                yield
            finally:
                self._held.depth = 0
                with self._condition:
                    self._running[ticket.heavy] -= 1
                    self._owners.subtract(ticket.visitor)
                    for key in ticket.visitor:
                        if self._owners[key] <= 0:
                            del self._owners[key]
                    self._recount()

    @contextlib.contextmanager
    def _heavy_thread(self) -> Iterator[None]:
        """This thread gives way to ordinary work while it holds a heavy slot: its profile
        function pauses it at safe points (unless a profiler or debugger has the hook), and it
        stops counting as ordinary work meanwhile."""
        held = self._held
        ordinary = getattr(held, "ordinary", 0)
        if ordinary:
            with self._condition:
                self._ordinary_pages -= 1
                self._recount()
        previous = sys.getprofile()
        held.heavy = True
        if previous is None:
            sys.setprofile(self._profile)
        try:
            yield
        finally:
            if previous is None:
                sys.setprofile(None)
            held.heavy = False
            held.run_until = 0.0
            if ordinary:
                with self._condition:
                    self._ordinary_pages += 1
                    self._recount()

    def _place(self, ticket: _Ticket) -> Place | None:
        """None when `ticket` may start now, else where it stands. Under the lock."""
        same_line = [other for other in self._line if other.heavy == ticket.heavy]
        if not ticket.heavy:
            position = same_line.index(ticket) + 1
            if position == 1 and self._running[False] < self.slots:
                return None
            return Place(position, heavy=False)
        # Heavy: the first whose visitor has nothing heavy running goes next; a visitor's
        # second request lets the others' go ahead.
        own = any(self._owners[key] for key in ticket.visitor)
        ahead = [other for other in same_line[: same_line.index(ticket)] if self._free(other)]
        if not own and not ahead and self._running[True] < self.heavy_slots:
            return None
        return Place(len(ahead) + 1, heavy=True, own_in_flight=own)

    def _free(self, ticket: _Ticket) -> bool:
        return not any(self._owners[key] for key in ticket.visitor)

    def _acquire(
        self,
        ticket: _Ticket,
        what: str,
        on_queued: Callable[[Place], object] | None,
        timeout: float | None,
    ) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        reported: Place | None = None
        with self._condition:
            self._line.append(ticket)
            self._recount()
        try:
            while True:
                with self._condition:
                    place = self._place(ticket)
                    if place is None:
                        self._line.remove(ticket)
                        self._running[ticket.heavy] += 1
                        self._owners.update(ticket.visitor)
                        self._recount()  # everyone behind moved up
                        return
                    if place == reported or on_queued is None:
                        remaining = None if deadline is None else deadline - time.monotonic()
                        if remaining is not None and remaining <= 0:
                            raise ServerBusyError(self._busy_message(what, timeout, ticket))
                        self._condition.wait(remaining)
                        continue
                reported = place
                on_queued(place)  # outside the lock: it may be slow, or raise
        except BaseException:
            with self._condition:
                with contextlib.suppress(ValueError):
                    self._line.remove(ticket)
                self._recount()
            raise

    def _busy_message(self, what: str, timeout: float | None, ticket: _Ticket) -> str:
        waited = f"{timeout:g} s" if timeout is not None else "a long time"
        line = "heavy requests (they run a few at a time)" if ticket.heavy else "requests"
        others = sum(1 for other in self._line if other.heavy == ticket.heavy) - 1
        return (
            f"The server is busy: your {what} waited {waited} behind "
            f"{self._running[ticket.heavy]} running and {others} other waiting {line} from "
            "other visitors. Nothing was lost; try again in a moment."
        )


_limiter = AdmissionLimiter(available_cores())
_setup_lock = threading.Lock()


def limiter() -> AdmissionLimiter:
    """The process-wide limiter that `slot` uses."""
    return _limiter


def configure(
    slots: int | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    heavy_slots: int | None = None,
) -> None:
    """Replace the process-wide limiter: `slots` (default: `available_cores()`), `timeout` and
    `heavy_slots` (default: half the slots, at least one).

    Meant for start-up and tests. Work already holding a slot of the old limiter finishes and
    releases it there; new work lines up at the new one.
    """
    global _limiter
    with _setup_lock:
        _limiter = AdmissionLimiter(slots or available_cores(), timeout, heavy_slots)


@contextlib.contextmanager
def ordinary_work() -> Iterator[None]:
    """`AdmissionLimiter.ordinary_work` of the process-wide limiter."""
    with _limiter.ordinary_work():
        yield


def give_way() -> None:
    """`AdmissionLimiter.give_way` of the process-wide limiter."""
    _limiter.give_way()


def paused_seconds() -> float:
    """`AdmissionLimiter.paused_seconds` of the process-wide limiter."""
    return _limiter.paused_seconds()


def threads_per_slot(slots: int | None = None) -> int:
    """Cores // slots, at least 1: the threads one admitted request may use."""
    return max(1, available_cores() // (slots or _limiter.slots))


def limit_torch_threads(slots: int | None = None) -> int:
    """Set PyTorch's intra-op threads to cores // slots (at least 1); returns the number.

    See the module docstring for why. For the server process only, at start-up: a notebook
    keeps PyTorch's own choice.
    """
    import torch

    threads = threads_per_slot(slots)
    torch.set_num_threads(threads)
    return threads


@contextlib.contextmanager
def slot(
    what: str = "request",
    on_queued: Callable[[Place], object] | None = None,
    timeout: float | None = None,
    *,
    heavy: bool = False,
    visitor: tuple[Hashable, ...] = (),
) -> Iterator[None]:
    """`AdmissionLimiter.slot` of the process-wide limiter (see `configure`)."""
    with _limiter.slot(what, on_queued, timeout, heavy=heavy, visitor=visitor):
        yield
