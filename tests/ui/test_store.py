"""The shared result store: bounded by bytes, computes each key once, hands out read-only data."""

import threading
import time

import numpy as np
import pytest

from ui.store import ResultStore, freeze, size_of


def megabytes(count: float) -> np.ndarray:
    return np.zeros(int(count * 2**20) // 8)


def test_returns_the_same_object_without_recomputing():
    store = ResultStore(max_bytes=10 * 2**20)
    calls = []
    first = store.get("a", lambda: calls.append(1) or megabytes(1))
    second = store.get("a", lambda: calls.append(1) or megabytes(1))
    assert first is second
    assert calls == [1]


def test_evicts_least_recently_used_beyond_the_byte_budget():
    store = ResultStore(max_bytes=int(2.5 * 2**20))
    store.get("a", lambda: megabytes(1))
    store.get("b", lambda: megabytes(1))
    store.get("a", lambda: megabytes(1))  # a is now the most recent
    store.get("c", lambda: megabytes(1))
    assert "a" in store and "c" in store
    assert "b" not in store
    assert store.bytes_held <= 2.5 * 2**20


def test_an_entry_over_the_budget_is_still_kept_alone():
    store = ResultStore(max_bytes=2**20)
    store.get("small", lambda: megabytes(0.5))
    big = store.get("big", lambda: megabytes(3))
    assert len(store) == 1
    assert store.get("big", lambda: megabytes(0)) is big


def test_entries_expire():
    store = ResultStore(max_bytes=2**30, ttl_seconds=0.05)
    store.get("a", lambda: megabytes(0.1))
    time.sleep(0.1)
    assert "a" not in store


def test_errors_are_not_stored():
    store = ResultStore(max_bytes=2**30)

    def fail():
        raise ValueError("no")

    with pytest.raises(ValueError):
        store.get("a", fail)
    assert store.get("a", lambda: 5) == 5


def test_concurrent_requests_for_one_key_compute_once():
    store = ResultStore(max_bytes=2**30)
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return megabytes(0.1)

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(store.get("k", slow))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [1]
    assert all(result is results[0] for result in results)


def test_stored_arrays_are_read_only_and_weighed():
    value = {"x": np.ones((4, 4)), "y": [np.ones(8, dtype=np.float32)]}
    freeze(value)
    with pytest.raises(ValueError):
        value["x"][0, 0] = 2
    assert size_of(value) >= 4 * 4 * 8 + 8 * 4
