"""The shared result store: bounded by bytes, computes each key once, hands out read-only data;
and the app's policy for the corpus store on disk (owners, expiry, the cap setting)."""

import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest

from core.corpus import CorpusStore
from core.corpus.store import RunRecord
from server.errors import DeployConfigError
from server.settings import policy_from_env
from ui.store import (
    PRUNE_EVERY_SECONDS,
    PUBLIC_CORPUS_RUN_SECONDS,
    ResultStore,
    blocks_of,
    corpus_store,
    freeze,
    prune_now_and_then,
)


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
    assert sum(blocks_of(value).values()) == 4 * 4 * 8 + 8 * 4


def test_large_strings_and_bytes_are_weighed_short_ones_not():
    image = b"\x89PNG" + bytes(2**20)
    blocks = blocks_of({"png": image, "url": "data:" + "A" * 2**20, "label": "the cat"})
    assert 2 * 2**20 < sum(blocks.values()) < 2 * 2**20 + 1024


def test_views_of_one_array_count_once_across_entries():
    shared = megabytes(1)
    store = ResultStore(max_bytes=10 * 2**20)
    store.get("whole", lambda: shared)
    store.get("rows", lambda: {"rows": shared[: len(shared) // 2], "own": megabytes(0.5)})
    assert store.bytes_held == pytest.approx(1.5 * 2**20, rel=0.01)
    # Counted twice, the shared block would have pushed the oldest entry out.
    store.get("big", lambda: megabytes(8.2))
    assert all(key in store for key in ("whole", "rows", "big"))
    assert store.bytes_held == pytest.approx(9.7 * 2**20, rel=0.01)


@dataclass
class GrowsLater:
    """Like an attention result: a small capture, and a large whole array built on demand."""

    captured: np.ndarray
    whole: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return self.captured.nbytes + (0 if self.whole is None else self.whole.nbytes)


def test_a_result_that_grows_after_storing_is_weighed_again_and_evicts_older_ones():
    store = ResultStore(max_bytes=int(4.5 * 2**20))
    store.get("old", lambda: megabytes(1))
    grown = store.get("result", lambda: GrowsLater(megabytes(1)))
    assert store.bytes_held == pytest.approx(2 * 2**20, rel=0.01)
    grown.whole = megabytes(2)  # a page asked for the whole array
    assert store.bytes_held == pytest.approx(4 * 2**20, rel=0.01)  # weighed again
    grown.whole = megabytes(2.6)
    store.get("next", lambda: megabytes(0.1))
    # 4.7 MB held was over the budget: the oldest went, the grown result stayed.
    assert "old" not in store and store.get("result", lambda: None) is grown
    assert store.bytes_held == pytest.approx(3.7 * 2**20, rel=0.01)


def test_an_attention_results_whole_array_is_counted_once_it_is_built(tiny_model_path):
    import core

    result = core.run_attention(core.load_model(str(tiny_model_path("llama"))), "The cat sat.")
    store = ResultStore(max_bytes=2**30)
    store.get("attention", lambda: result)
    before = store.bytes_held
    assert before == result.nbytes  # its captured tensors
    whole = result.attentions
    assert store.bytes_held == before + whole.nbytes
    # A method result holding the same array adds nothing.
    store.get("method", lambda: {"per_head": whole})
    assert store.bytes_held == before + whole.nbytes


# ---------------------------------------------------------------- the corpus store's policy
def test_public_mode_keeps_a_visitors_corpus_to_their_session(tmp_path):
    path = str(tmp_path / "corpus.duckdb")
    own = corpus_store(public=True, shared=False, owner="token", max_bytes=None, path=path)
    assert not own.shared and own.lifetime_seconds == PUBLIC_CORPUS_RUN_SECONDS
    assert own.scope("run") != "run"
    assert corpus_store(
        public=True, shared=False, owner="another", max_bytes=None, path=path
    ).scope("run") != own.scope("run")
    bundled = corpus_store(public=True, shared=True, owner="token", max_bytes=10**9, path=path)
    assert bundled.shared and bundled.lifetime_seconds is None and bundled.max_bytes == 10**9
    private = corpus_store(public=False, shared=False, owner="token", max_bytes=None, path=path)
    assert private.shared and private.lifetime_seconds is None  # one's own machine: all shared


def test_the_cap_setting():
    """The store's cap is one row of the settings table (`server.settings`)."""
    name = "ATLAS_MAX_CORPUS_STORE_BYTES"
    assert policy_from_env({"ATLAS_PUBLIC": "1"}).max_corpus_store_bytes == 200_000_000
    assert policy_from_env({}).max_corpus_store_bytes is None
    assert policy_from_env({name: "50M"}).max_corpus_store_bytes == 50_000_000
    assert policy_from_env({"ATLAS_PUBLIC": "1", name: "none"}).max_corpus_store_bytes is None
    with pytest.raises(DeployConfigError, match=name):
        policy_from_env({"ATLAS_PUBLIC": "1", name: "a lot"})


def test_expired_runs_go_when_the_page_is_shown_now_and_then(tmp_path, monkeypatch):
    import core.corpus.store as corpus_store_module

    path = tmp_path / "corpus.duckdb"
    handle = CorpusStore(path, owner="visitor", lifetime_seconds=60)
    record = RunRecord(handle.scope("r"), "m", "h", 16, "default", ("to_self",), 1, 1, 1, 0, 0, 0.0)
    handle.create_run(record, ["A sentence."])
    clock = [1000.0]
    assert prune_now_and_then(handle, clock=lambda: clock[0])
    assert handle.run(record.run_id) is not None  # not expired yet

    now = time.time()
    monkeypatch.setattr(corpus_store_module, "_now", lambda: now + 61)
    clock[0] += PRUNE_EVERY_SECONDS / 2
    assert not prune_now_and_then(handle, clock=lambda: clock[0])  # too soon: nothing done
    assert handle.run(record.run_id) is not None
    clock[0] += PRUNE_EVERY_SECONDS
    assert prune_now_and_then(handle, clock=lambda: clock[0])
    assert handle.run(record.run_id) is None and handle.sentences("h") == []
