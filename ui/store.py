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
import sys
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


Blocks = dict[int, int]
"""Memory blocks a value holds: `{address (or id) of the block: bytes}`."""
_NUMBERS = (int, float, bool, type(None))
_SMALL_TEXT = 1024
"""Strings and bytes shorter than this (token texts, labels) are not counted: small beside
the arrays, and skipping them keeps weighing a result of thousands of tokens quick."""
_MAX_DEPTH = 6
"""An attention result's captured tensors sit 5 levels down (result → stacks → stack → layers
→ layer → tensor)."""


def blocks_of(value: Any, depth: int = 0) -> Blocks:
    """The memory blocks `value` holds, each once: `{address: bytes}`.

    An array counts the block of its base (views of one array are one block), a torch tensor
    its storage, a DataFrame its `memory_usage` and a string or bytes of 1 kB or more its size
    (keyed by their ids). They are found through
    dataclass fields, dict values, list and tuple items, and the attributes of `core`'s own
    objects: an attention result's captured tensors, and the whole array it builds when a page
    first asks for it, which a method result may share (then counted once in the store).
    """
    if isinstance(value, str | bytes | bytearray):  # an encoded image, a file's text
        return {id(value): sys.getsizeof(value)} if len(value) >= _SMALL_TEXT else {}
    if depth > _MAX_DEPTH or isinstance(value, _NUMBERS):
        return {}
    if isinstance(value, np.ndarray):
        root = value
        while isinstance(root.base, np.ndarray):
            root = root.base
        return {root.__array_interface__["data"][0]: int(root.nbytes)}
    if hasattr(value, "memory_usage") and hasattr(value, "columns"):  # a DataFrame
        return {id(value): int(value.memory_usage(deep=True).sum())}
    storage = getattr(value, "untyped_storage", None)  # a torch tensor
    if callable(storage):
        block = storage()
        return {block.data_ptr(): int(block.nbytes())}
    if isinstance(value, dict):
        children: Any = value.values()
    elif isinstance(value, list | tuple):
        children = value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        children = [getattr(value, f.name) for f in dataclasses.fields(value)]
    elif type(value).__module__.startswith("core.") and hasattr(value, "__dict__"):
        children = vars(value).values()
    else:
        return {}
    blocks: Blocks = {}
    for child in children:
        if not isinstance(child, _NUMBERS):
            blocks.update(blocks_of(child, depth + 1))
    return blocks


@dataclasses.dataclass
class _Entry:
    value: Any
    blocks: Blocks
    stored_at: float
    grown_from: int | None
    """`value.nbytes` when it was weighed (None: a value without one, which never grows). An
    attention result builds its whole array after it was stored; a changed `nbytes` says the
    entry must be weighed again."""


def _nbytes(value: Any) -> int | None:
    size = getattr(value, "nbytes", None)
    return size if isinstance(size, int) and not isinstance(value, np.ndarray) else None


class ResultStore:
    """A thread-safe LRU of computed results bounded by total bytes and by age.

    `get(key, compute)` returns the stored value or computes it once: visitors asking for the
    same key at the same time wait for the first computation instead of repeating it.
    Exceptions are not stored, so a failed computation is retried next time.

    The bytes are those of the memory blocks the entries hold (`blocks_of`), a block shared by
    two entries counted once. A result that has grown since it was stored (an attention result
    builds its whole `[layers, heads, n, n]` array when a page first asks for it) is weighed
    again at the next store, before anything is evicted: the page that built the array stores
    what it made of it next (the raw method's scores share it). Counted once at storing time,
    results of 256 tokens held 138 MB under a 120 MB count (bench/RESULTS.md, "CI soak
    margin"). Lookups stay a dictionary read.
    """

    def __init__(self, max_bytes: int, ttl_seconds: float = 3600.0) -> None:
        self.max_bytes = max_bytes
        self.ttl_seconds = ttl_seconds
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._users: dict[int, int] = {}
        """Per block address: how many entries hold it."""
        self._sizes: dict[int, int] = {}
        self._held = 0
        self._pending: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    @property
    def bytes_held(self) -> int:
        with self._lock:
            self._reweigh()
            return self._held

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
            if time.monotonic() - entry.stored_at > self.ttl_seconds:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return (entry.value,)

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
        entry = _Entry(value, blocks_of(value), time.monotonic(), _nbytes(value))
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = entry
            self._count(entry.blocks, +1)
            self._reweigh()
            self._evict()

    def _evict(self) -> None:
        """Drop the least recently used entries while over the budget (lock held). The newest
        entry always stays, even alone over the budget: the page needs it."""
        while self._held > self.max_bytes and len(self._entries) > 1:
            self._drop(next(iter(self._entries)))

    def _reweigh(self) -> None:
        """Weigh again the entries that have grown since they were weighed (lock held)."""
        for entry in self._entries.values():
            if entry.grown_from is not None and _nbytes(entry.value) != entry.grown_from:
                self._count(entry.blocks, -1)
                entry.grown_from = _nbytes(entry.value)
                entry.blocks = blocks_of(entry.value)
                self._count(entry.blocks, +1)

    def _drop(self, key: Hashable) -> None:
        self._count(self._entries.pop(key).blocks, -1)

    def _count(self, blocks: Blocks, change: int) -> None:
        for address, size in blocks.items():
            users = self._users.get(address, 0) + change
            if users > 0:
                if address not in self._users:
                    self._sizes[address] = size
                    self._held += size
                self._users[address] = users
            else:
                self._held -= self._sizes.pop(address)
                del self._users[address]

    def values(self) -> list[Any]:
        """The values held now, oldest first (for tests and diagnostics)."""
        with self._lock:
            return [entry.value for entry in self._entries.values()]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._users.clear()
            self._sizes.clear()
            self._held = 0


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
