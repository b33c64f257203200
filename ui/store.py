"""A process-wide, memory-bounded store for per-text results, shared by every session.

`st.cache_data` pickles what it returns and unpickles a fresh copy on every hit: for one
512-token result of a 12 × 12 model (151 MB of attention) that is 0.13 s on every rerun
(bench/bench_server.py) and a second 151 MB in memory while the run lasts. Results are
read-only, so sessions can share one object instead: the store hands out the same object and bounds
what it holds by bytes, not entries, because one entry weighs anything from 100 kB to 300 MB.
Arrays are made read-only when stored, so a page that tried to modify a shared result would fail
loudly in the tests instead of corrupting another visitor's view.

The second store the app keeps is the corpus store on disk (`core.corpus.CorpusStore`): core
takes owner, lifetime and size cap as parameters, and `corpus_store` below is the app's policy
for them.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import numpy as np

from core.corpus import CorpusStore

T = TypeVar("T")


def _arrays(value: Any, depth: int = 0) -> list[np.ndarray]:
    """The numpy arrays inside `value`: itself, dataclass fields, dict values, list items."""
    if depth > 3:
        return []
    if isinstance(value, np.ndarray):
        return [value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        children: Any = [getattr(value, f.name) for f in dataclasses.fields(value)]
    elif isinstance(value, dict):
        children = value.values()
    elif isinstance(value, list | tuple):
        children = value
    else:
        return []
    return [array for child in children for array in _arrays(child, depth + 1)]


def freeze(value: T) -> T:
    """Make every array inside `value` read-only; returns `value`."""
    for array in _arrays(value):
        array.flags.writeable = False
    return value


def size_of(value: Any) -> int:
    """Bytes held by the arrays or the DataFrame inside `value`; the rest is small beside them."""
    if hasattr(value, "memory_usage") and hasattr(value, "columns"):  # a DataFrame
        return int(value.memory_usage(deep=True).sum())
    if isinstance(getattr(value, "nbytes", None), int):
        # An attention result knows what it holds (captured queries and keys, or the whole
        # tensor once built); its arrays alone would miss the captured tensors.
        return value.nbytes + 1024
    return sum(array.nbytes for array in _arrays(value)) + 1024


class ResultStore:
    """A thread-safe LRU of computed results bounded by total bytes and by age.

    `get(key, compute)` returns the stored value or computes it once: visitors asking for the
    same key at the same time wait for the first computation instead of repeating it.
    Exceptions are not stored, so a failed computation is retried next time.
    """

    def __init__(self, max_bytes: int, ttl_seconds: float = 3600.0) -> None:
        self.max_bytes = max_bytes
        self.ttl_seconds = ttl_seconds
        self._entries: OrderedDict[Hashable, tuple[Any, int, float]] = OrderedDict()
        self._pending: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    @property
    def bytes_held(self) -> int:
        with self._lock:
            return sum(size for _, size, _ in self._entries.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return self._lookup(key) is not None

    def _lookup(self, key: Hashable) -> tuple[Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            value, _, stored_at = entry
            if time.monotonic() - stored_at > self.ttl_seconds:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return (value,)

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        found = self._lookup(key)
        if found is not None:
            return found[0]
        with self._lock:
            pending = self._pending.setdefault(key, threading.Lock())
        with pending:
            found = self._lookup(key)  # another thread may have finished it meanwhile
            if found is not None:
                return found[0]
            try:
                value = freeze(compute())
                self._put(key, value)
            finally:
                with self._lock:
                    self._pending.pop(key, None)
        return value

    def _put(self, key: Hashable, value: Any) -> None:
        size = size_of(value)
        with self._lock:
            self._entries[key] = (value, size, time.monotonic())
            self._entries.move_to_end(key)
            held = sum(entry_size for _, entry_size, _ in self._entries.values())
            # The newest entry always stays, even alone over the budget: the page needs it.
            while held > self.max_bytes and len(self._entries) > 1:
                _, (_, evicted, _) = self._entries.popitem(last=False)
                held -= evicted

    def values(self) -> list[Any]:
        """The values held now, oldest first (for tests and diagnostics)."""
        with self._lock:
            return [value for value, _, _ in self._entries.values()]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


# ---------------------------------------------------------------- the corpus store on disk
PUBLIC_CORPUS_RUN_SECONDS = 12 * 3600
"""In public mode a visitor's own corpus (pasted or uploaded) and its statistics are deleted
this long after the run was made. Only that visitor's session can reopen it meanwhile."""
PRUNE_EVERY_SECONDS = 600.0
"""Expired runs are also removed when the Corpus page is shown, at most this often."""

_last_pruned: dict[str, float] = {}
_last_pruned_guard = threading.Lock()


def corpus_store(
    *, public: bool, shared: bool, owner: str, max_bytes: int | None, path: str | None = None
) -> CorpusStore:
    """The corpus store handle for one Corpus page run.

    In public mode a visitor's own corpus (`shared=False`: pasted or uploaded) is stored under
    the session's `owner` token, so no other visitor reopens it (even with the same text),
    and expires after `PUBLIC_CORPUS_RUN_SECONDS`; the bundled corpora's runs are shared. A
    private install shares every run, as `python -m core.corpus` does. `max_bytes` caps the
    file in both.
    """
    if public and not shared:
        store = CorpusStore(
            path, owner=owner, lifetime_seconds=PUBLIC_CORPUS_RUN_SECONDS, max_bytes=max_bytes
        )
    else:
        store = CorpusStore(path, max_bytes=max_bytes)
    prune_now_and_then(store)
    return store


def prune_now_and_then(store: CorpusStore, clock: Callable[[], float] = time.monotonic) -> bool:
    """`store.prune()` if this process has not pruned its file for `PRUNE_EVERY_SECONDS`, so
    that expired runs go even when nobody starts a new one. Returns whether it pruned."""
    now = clock()
    key = str(store.path)
    with _last_pruned_guard:
        last = _last_pruned.get(key)
        if last is not None and now - last < PRUNE_EVERY_SECONDS:
            return False
        _last_pruned[key] = now
    store.prune()
    return True
