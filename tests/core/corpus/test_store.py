"""The store: stop and resume, instant reopening, readable while running, locations; owners,
expiry, the size cap, deletion, and two processes at once."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

import core.corpus.run as corpus_run
import core.corpus.store as corpus_store
from core.corpus import (
    STORE_ENV,
    CorpusStore,
    default_store_path,
    open_corpus,
    open_run,
    run_corpus,
)
from core.corpus.__main__ import main as corpus_main
from core.errors import CorpusError, CorpusStoreError, EmptyCorpusError, RunInProgressError
from tests.core.corpus.conftest import SENTENCES

REPOSITORY = Path(__file__).resolve().parents[3]


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


# -- privacy, retention and the size cap (issue 24) ----------------------------------------------


def _random_sentences(seed: int, count: int, words: int = 8) -> list[str]:
    """Sentences of random letters and digits: DuckDB cannot compress them, so their bytes are
    in the file verbatim while they are stored (which makes "gone from the file" testable)."""
    rng = np.random.default_rng(seed)
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
    return [
        " ".join("".join(rng.choice(alphabet, rng.integers(4, 9))) for _ in range(words))
        for _ in range(count)
    ]


def _in_file(path, sentences: list[str]) -> int:
    data = path.read_bytes()
    return sum(sentence[:40].encode() in data for sentence in sentences)


def test_another_owner_never_reopens_a_run_even_with_the_same_text(loaded_tiny, tmp_path):
    model = loaded_tiny("bert")
    path = tmp_path / "corpus.duckdb"
    alice = CorpusStore(path, owner="alice-session")
    bob = CorpusStore(path, owner="bob-session")
    shared = CorpusStore(path)
    mine = run_corpus(model, SENTENCES[:3], store=alice, max_tokens=16)
    assert mine.finished

    # The same text, model and settings: not "stored" for anyone but its owner.
    assert open_corpus(model.name, SENTENCES[:3], max_tokens=16, store=bob) is None
    assert open_corpus(model.name, SENTENCES[:3], max_tokens=16, store=shared) is None
    assert open_corpus(model.name, SENTENCES[:3], max_tokens=16, store=alice).finished
    with pytest.raises(CorpusError, match="not in the store"):
        open_run(mine.run_id, bob)
    assert bob.runs().empty and shared.runs().empty
    # Bob measures it himself, as his own run.
    calls = []
    his = run_corpus(
        model, SENTENCES[:3], store=bob, max_tokens=16, progress=lambda *a: calls.append(a)
    )
    assert his.run_id != mine.run_id and len(calls) == 1 and his.finished
    # Shared runs (the bundled corpus's) are seen by every handle; an owner's handle looks
    # a corpus up among its own runs.
    common = run_corpus(model, SENTENCES[3:6], store=shared, max_tokens=16)
    for handle in (alice, bob, shared):
        assert open_run(common.run_id, handle).finished
    assert open_corpus(model.name, SENTENCES[3:6], max_tokens=16, store=alice) is None
    assert set(alice.runs()["run_id"]) == {mine.run_id, common.run_id}
    # The file holds a digest of the owner, never the token itself.
    alice.release()
    assert b"alice-session" not in path.read_bytes()


def test_deleted_runs_and_their_sentences_are_gone_from_the_file(loaded_tiny, tmp_path):
    model = loaded_tiny("bert")
    path = tmp_path / "corpus.duckdb"
    private = _random_sentences(1, 6)
    kept = _random_sentences(2, 6)
    visitor = CorpusStore(path, owner="visitor")
    other = CorpusStore(path, owner="other visitor")
    run_corpus(model, private, store=visitor, max_tokens=16)
    run_corpus(model, private, store=visitor, max_tokens=8)
    theirs = run_corpus(model, kept, store=other, max_tokens=16)
    common = run_corpus(model, SENTENCES[:4], store=CorpusStore(path), max_tokens=16)
    visitor.release()
    assert _in_file(path, private) == len(private)  # the check below is not vacuous

    assert visitor.delete_runs() == 2
    visitor.release()
    assert _in_file(path, private) == 0
    assert _in_file(path, kept) == len(kept)
    connection = duckdb.connect(str(path), read_only=True)
    try:
        texts = {
            row[0] for row in connection.execute("SELECT text FROM corpus_sentences").fetchall()
        }
        runs = {row[0] for row in connection.execute("SELECT run_id FROM runs").fetchall()}
        orphans = connection.execute(
            "SELECT count(*) FROM head_sums WHERE run_id NOT IN (SELECT run_id FROM runs)"
        ).fetchone()[0]
    finally:
        connection.close()
    assert texts == set(kept) | set(SENTENCES[:4])
    assert runs == {theirs.run_id, common.run_id} and orphans == 0
    assert visitor.runs()["run_id"].tolist() == [common.run_id]  # a visitor never deletes shared
    assert visitor.delete_runs() == 0


def test_runs_expire_for_every_handle(loaded_tiny, tmp_path, monkeypatch):
    model = loaded_tiny("bert")
    path = tmp_path / "corpus.duckdb"
    private = _random_sentences(3, 4)
    visitor = CorpusStore(path, owner="visitor", lifetime_seconds=3600)
    run_corpus(model, private, store=visitor, max_tokens=16)
    forever = run_corpus(model, SENTENCES[:3], store=CorpusStore(path), max_tokens=16)
    assert CorpusStore(path).prune() == 0  # not expired yet

    now = time.time()
    monkeypatch.setattr(corpus_store, "_now", lambda: now + 3601)
    assert CorpusStore(path).prune() == 1
    assert visitor.runs()["run_id"].tolist() == [forever.run_id]
    visitor.release()
    assert _in_file(path, private) == 0


def test_the_cap_bounds_the_file_and_evicts_the_oldest_runs(loaded_tiny, tmp_path):
    model = loaded_tiny("bert")
    corpora = [_random_sentences(100 + seed, 40, words=5) for seed in range(10)]
    # A visitor pasting new corpora and pressing Run, first with no cap. The cap is then set
    # halfway between one run's file and ten runs' file, both measured here: how many bytes a
    # run takes depends on DuckDB's block allocation (the first run costs most), not on the test.
    free = CorpusStore(tmp_path / "free.duckdb")
    sizes = []
    for sentences in corpora:
        run_corpus(model, sentences, store=free, max_tokens=16)
        free.release()
        sizes.append(free.file_bytes())
    assert sizes[-1] > 1.5 * sizes[0]  # without a cap the file keeps growing
    cap = (sizes[0] + sizes[-1]) // 2

    capped = CorpusStore(tmp_path / "capped.duckdb", max_bytes=cap)
    order = []
    for sentences in corpora:
        order.append(run_corpus(model, sentences, store=capped, max_tokens=16).run_id)
        capped.release()
        assert capped.file_bytes() <= cap
        assert capped.run(order[-1]).finished  # the run just made is never evicted

    kept = capped.runs()["run_id"].tolist()
    assert order[0] not in kept and 1 <= len(kept) < len(order)
    assert set(kept) == set(order[-len(kept) :])  # the oldest went first


def test_a_run_removed_while_it_runs_stops_with_a_message(loaded_tiny, tmp_path, monkeypatch):
    model = loaded_tiny("bert")
    visitor = CorpusStore(tmp_path / "corpus.duckdb", owner="visitor")
    monkeypatch.setattr(corpus_run, "FLUSH_SECONDS", 0.0)

    def delete_after_first_batch(done, total, rate, left):
        visitor.delete_runs()

    with pytest.raises(CorpusError, match="removed from the store"):
        run_corpus(model, SENTENCES, store=visitor, batch_size=4, progress=delete_after_first_batch)
    assert visitor.runs().empty
    visitor.release()
    connection = duckdb.connect(str(visitor.path), read_only=True)
    try:
        for table in ("head_sums", "head_examples", "head_sample", "corpus_sentences"):
            assert connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
    finally:
        connection.close()


APP_PROCESS = """
import sys, threading
from pathlib import Path
from core import load_model
from core.corpus import CorpusStore, open_corpus, run_corpus

model_path, store_path, stop, wanted = sys.argv[1:5]
model = load_model(model_path)
store = CorpusStore(store_path)
wanted = Path(wanted).read_text(encoding="utf-8").splitlines()
run_corpus(model, ["The app writes first.", "Then it reads."], store=store, max_tokens=16)
seen = []

def visitor():  # a page reading again and again; with two of them the reads overlap
    while not Path(stop).exists():
        store.runs()
        found = open_corpus(model.name, wanted, max_tokens=16, store=store)
        if found is not None and found.done > 0:
            seen.append(found.done)

readers = [threading.Thread(target=visitor) for _ in range(2)]
for reader in readers:
    reader.start()
print("ready", flush=True)
rounds = 0
while not Path(stop).exists():
    run_corpus(model, [f"The app's own run {rounds}.", "It writes."], store=store, max_tokens=16)
    rounds += 1
for reader in readers:
    reader.join()
print(rounds, bool(seen), flush=True)
"""


def test_the_command_and_the_app_use_one_store_at_once(tiny_model_path, tmp_path):
    model = str(tiny_model_path("bert"))
    store = tmp_path / "corpus.duckdb"
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES), encoding="utf-8")
    stop = tmp_path / "stop"
    app = subprocess.Popen(
        [sys.executable, "-c", APP_PROCESS, model, str(store), str(stop), str(corpus)],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert app.stdout.readline().strip() == "ready"  # the app has the store open
        arguments = ["--model", model, "--corpus", str(corpus), "--store", str(store)]
        code = corpus_main([*arguments, "--max-tokens", "16", "--batch-size", "2", "--quiet"])
        assert code == 0
        result = open_corpus(model, SENTENCES, max_tokens=16, store=CorpusStore(store))
        assert result is not None and result.finished
    finally:
        stop.touch()
        out, _ = app.communicate(timeout=300)
    rounds, seen = out.split()
    assert app.returncode == 0 and int(rounds) >= 1
    assert seen == "True"  # the app read the command's run while both were going


def test_threads_read_while_another_evicts_and_rewrites(loaded_tiny, tmp_path):
    model = loaded_tiny("bert")
    path = tmp_path / "corpus.duckdb"
    writer = CorpusStore(path, max_bytes=4_000_000)  # under two runs: every run evicts
    reader = CorpusStore(path)
    done = threading.Event()
    failures: list[BaseException] = []
    reads = []

    def read() -> None:
        while not done.is_set():
            try:
                for run in reader.runs()["run_id"]:
                    record = reader.run(run)
                    if record is not None:  # it may have been evicted in between
                        reader.sums(run)
                reads.append(1)
            except BaseException as error:  # reported below
                failures.append(error)
                return

    threads = [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for seed in range(5):
            run_corpus(model, _random_sentences(200 + seed, 12), store=writer, max_tokens=16)
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=120)
    assert not failures, failures
    assert reads and not any(thread.is_alive() for thread in threads)
    writer.release()
    assert writer.file_bytes() <= 4_000_000
