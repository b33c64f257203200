"""Cyclic garbage collected once the server is idle (no page running for a while).

Why. Altair raises and catches errors while it builds some charts; those errors form reference
cycles with their tracebacks, whose frames can keep the page's locals, an attention result among
them, until Python's full collection runs. The chart builders known to do it were changed
(tests/core/charts/test_selection.py checks no builder keeps its caller's frame), but every
other chart still leaves hundreds of cyclic objects a build, and a new builder may again. With
≈250 k tracked objects that collection is rare on its own and costs 130–240 ms on this 2-core VM
under load, which is why Streamlit's collection after every run is off (`runner.postScriptGC` in
.streamlit/config.toml). Measured after the CI soak (bench/soak.py --probe, bench/RESULTS.md "CI
soak margin"): in two runs of six a 22.6 MB attention result the store had already let go was
still held this way, 60 s after the visitors left. Here one collection runs when no page has run
for `IDLE_SECONDS`, so no visitor's page waits for it, and glibc then hands its free heap blocks
back (`malloc_trim`, 4–6 MB).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import threading
import time
from collections.abc import Callable, Iterator

IDLE_SECONDS = 10.0
"""A pause this long between page runs counts as idle: visitors think for a second or two
between actions, so a busy server never collects here."""


def _trim_heap() -> None:
    """glibc's `malloc_trim(0)`: free blocks at the top and inside its arenas go back to the
    system. Elsewhere (macOS, musl) nothing to do."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class IdleCollector:
    """Counts the pages running; `collect_if_idle` collects once after each busy spell."""

    def __init__(
        self,
        idle_seconds: float = IDLE_SECONDS,
        collect: Callable[[], object] = gc.collect,
        trim: Callable[[], None] = _trim_heap,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_seconds = idle_seconds
        self._collect, self._trim, self._clock = collect, trim, clock
        self._running = 0
        self._last_end = clock()
        self._ran_since_collection = False
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def page_running(self) -> Iterator[None]:
        """Around a page run (also one ended by a rerun or a page switch)."""
        with self._lock:
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                self._last_end = self._clock()
                self._ran_since_collection = True

    def collect_if_idle(self) -> bool:
        """Collect and trim if pages ran since the last collection, none runs now and the last
        ended `idle_seconds` ago; returns whether it did."""
        with self._lock:
            quiet = self._clock() - self._last_end >= self.idle_seconds
            if self._running or not self._ran_since_collection or not quiet:
                return False
            self._ran_since_collection = False
        self._collect()
        self._trim()
        return True


COLLECTOR = IdleCollector()
"""The server process's collector: `streamlit_app.py` wraps every run in `page_running`."""


@functools.cache
def start_collecting() -> None:
    """Check for idleness every `IDLE_SECONDS / 2` in a daemon thread; once per process."""

    def watch() -> None:
        while True:
            time.sleep(COLLECTOR.idle_seconds / 2)
            COLLECTOR.collect_if_idle()

    threading.Thread(target=watch, name="idle-collector", daemon=True).start()
