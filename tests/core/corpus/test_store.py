"""The store: stop and resume, instant reopening, readable while running, locations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import core.corpus.run as corpus_run
from core.corpus import (
    STORE_ENV,
    CorpusStore,
    default_store_path,
    open_corpus,
    open_run,
    run_corpus,
)
from core.errors import CorpusStoreError, EmptyCorpusError, RunInProgressError
from tests.core.corpus.conftest import SENTENCES


def _examples(result):
    return result.store.all_examples(result.run_id).sort_values(
        ["layer", "head", "statistic", "rank"], ignore_index=True
    )


def test_stopped_run_resumes_where_it_stopped(loaded_tiny, tmp_path):
    model = loaded_tiny("bert")
    whole = run_corpus(model, SENTENCES, store=CorpusStore(tmp_path / "a.duckdb"), batch_size=2)

    store = CorpusStore(tmp_path / "b.duckdb")
    calls = []

    def stop_after_two_batches(done, total, rate, left):
        calls.append((done, total))
        assert rate > 0 and left >= 0
        return len(calls) < 2

    stopped = run_corpus(
        model, SENTENCES, store=store, batch_size=2, progress=stop_after_two_batches
    )
    assert calls == [(2, len(SENTENCES)), (4, len(SENTENCES))]
    assert not stopped.finished and stopped.done == 4
    assert (stopped.head_table["to_self_n"] == 4).all()

    resumed_calls = []
    resumed = run_corpus(
        model, SENTENCES, store=store, batch_size=2, progress=lambda *a: resumed_calls.append(a[0])
    )
    assert resumed_calls[0] == 6  # continued from 4, not from 0
    assert resumed.finished and resumed.done == len(SENTENCES)
    statistics = list(resumed.statistics)
    # Same batches as the uninterrupted run, so the same numbers.
    pd.testing.assert_frame_equal(
        resumed.head_table[statistics], whole.head_table[statistics], rtol=0, atol=1e-12
    )
    pd.testing.assert_frame_equal(_examples(resumed), _examples(whole), rtol=0, atol=1e-12)
    assert resumed.typical_sentence(1, 2) == whole.typical_sentence(1, 2)


def test_finished_run_reopens_without_computing(loaded_tiny, store, monkeypatch):
    model = loaded_tiny("bert")
    first = run_corpus(model, SENTENCES, store=store)

    def fail(*args, **kwargs):
        raise AssertionError("a finished run must not run the model again")

    monkeypatch.setattr(corpus_run, "process_batch", fail)
    monkeypatch.setattr(corpus_run, "processing_order", fail)
    again = run_corpus(model, SENTENCES, store=store)
    assert again.run_id == first.run_id and again.finished
    pd.testing.assert_frame_equal(again.head_table, first.head_table)
    reopened = open_corpus(model.name, SENTENCES, max_tokens=128, store=store.path)
    assert reopened is not None and reopened.run_id == first.run_id
    assert open_run(first.run_id, store).done == len(SENTENCES)
    assert open_corpus(model.name, SENTENCES[:3], max_tokens=128, store=store) is None


def test_settings_and_mode_are_part_of_the_key(loaded_tiny, store):
    model = loaded_tiny("bert")
    a = run_corpus(model, SENTENCES[:3], store=store, max_tokens=128)
    b = run_corpus(model, SENTENCES[:3], store=store, max_tokens=8)
    c = run_corpus(model, SENTENCES[:3], store=store, mode="clark")
    assert len({a.run_id, b.run_id, c.run_id}) == 3
    assert b.max_tokens == 8 and b.truncated >= 2
    assert "to_cls" in c.head_table.columns and "to_special" not in c.head_table.columns
    assert len(store.runs()) == 3


def test_results_are_readable_while_the_run_goes(loaded_tiny, store, monkeypatch):
    model = loaded_tiny("bert")
    seen = []

    def peek(done, total, rate, left):
        partial = open_corpus(model.name, SENTENCES, max_tokens=128, store=store)
        seen.append((done, partial.done, len(partial.head_table)))

    monkeypatch.setattr(corpus_run, "FLUSH_SECONDS", 0.0)  # write after every batch
    run_corpus(model, SENTENCES, store=store, batch_size=4, progress=peek)
    # Each callback sees what was saved up to the previous batch.
    assert [s[1] for s in seen] == [0, 4, 8]
    assert all(rows == model.num_layers * model.num_heads for *_, rows in seen)


def test_examples_and_sentences(loaded_tiny, store):
    model = loaded_tiny("bert")
    result = run_corpus(model, SENTENCES, store=store)
    examples = result.examples(0, 1, "to_punctuation", k=3)
    assert list(examples.columns) == ["rank", "value", "sentence_index", "sentence", "query", "key"]
    assert list(examples["rank"]) == [0, 1, 2]
    assert examples["value"].is_monotonic_decreasing
    for row in examples.itertuples():
        assert row.sentence == SENTENCES[row.sentence_index]
        assert result.sentence(row.sentence_index) == row.sentence
    assert result.sentences() == SENTENCES
    index, text = result.typical_sentence(0, 0)
    assert text == SENTENCES[index]
    with pytest.raises(Exception, match="Unknown statistic"):
        result.examples(0, 0, "nonsense")
    with pytest.raises(IndexError):
        result.examples(99, 0, "to_self")


def test_default_store_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "mine.duckdb"))
    assert default_store_path() == tmp_path / "mine.duckdb"
    monkeypatch.delenv(STORE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_store_path() == tmp_path / "cache" / "attention-atlas" / "corpus.duckdb"


def test_a_file_that_is_not_duckdb_is_refused(tmp_path):
    bad = tmp_path / "not-a-db.duckdb"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CorpusStoreError, match="cannot be opened"):
        CorpusStore(bad)


def test_bad_corpora_are_refused(loaded_tiny, store):
    model = loaded_tiny("bert")
    for bad in ([], ["fine", "  "], "one string"):
        with pytest.raises(EmptyCorpusError):
            run_corpus(model, bad, store=store)
    with pytest.raises(ValueError):
        run_corpus(model, SENTENCES, store=store, max_tokens=1)
    with pytest.raises(ValueError):
        run_corpus(model, SENTENCES, store=store, batch_size=0)
    with pytest.raises(ValueError):
        run_corpus(model, SENTENCES, store=store, mode="paper")
    assert np.isfinite(run_corpus(model, SENTENCES[:2], store=store).head_table["to_self"]).all()


def test_the_same_run_cannot_go_twice_at_once(loaded_tiny, store):
    model = loaded_tiny("bert")
    raised = []

    def start_again(done, total, rate, left):
        with pytest.raises(RunInProgressError, match="already being measured"):
            run_corpus(model, SENTENCES, store=store)
        raised.append(done)
        return False

    run_corpus(model, SENTENCES, store=store, batch_size=4, progress=start_again)
    assert raised == [4]
    # Once it stopped, the run can be resumed.
    assert run_corpus(model, SENTENCES, store=store).finished


def test_a_failing_batch_keeps_the_batches_before_it(loaded_tiny, store, monkeypatch):
    model = loaded_tiny("bert")
    real = corpus_run.process_batch
    calls = []

    def fail_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("worker died")
        return real(*args, **kwargs)

    monkeypatch.setattr(corpus_run, "process_batch", fail_on_third)
    monkeypatch.setattr(corpus_run, "FLUSH_SECONDS", 3600.0)  # only the error path saves
    with pytest.raises(RuntimeError, match="worker died"):
        run_corpus(model, SENTENCES, store=store, batch_size=2)
    partial = open_corpus(model.name, SENTENCES, max_tokens=128, store=store)
    assert partial.done == 4 and (partial.head_table["to_self_n"] == 4).all()
