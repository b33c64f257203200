"""The corpus result store: one DuckDB file holding every run, written as a run goes.

Tables (all keyed by `run_id`, a hash of model, corpus, settings and statistics version, and of
the owner for an owner's runs):

* `runs`: one row per run: model, corpus hash, max_tokens, mode, progress, timings, and who may
  reopen it (`owner`, NULL for a shared run) and until when (`expires`, epoch seconds or NULL).
* `corpus_sentences`: the sentences of each corpus (by corpus hash), so a stored run can show
  its examples without the original file. A corpus's sentences go when its last run goes.
* `head_sums`: per layer × head × statistic, the running count, sum and sum of squares of the
  per-sentence values: means and intervals come from these, so memory does not grow with the
  corpus.
* `head_examples`: per layer × head × statistic, the `top_k` sentences where the statistic is
  largest, with the token pair where it is strongest.
* `head_sample`: every statistic of every head for a bounded, evenly spaced sample of sentences
  (to pick each head's most typical sentence).

Privacy and retention are parameters of a handle (`CorpusStore(path, owner=, lifetime_seconds=,
max_bytes=)`); when to use which is the caller's policy (the app decides it in `ui.store`).
A handle with an owner stores its runs under ids scoped to that owner and sees only those and
the shared runs; the same corpus run by two owners is two runs. Deleting runs, expired runs
and runs evicted by the size cap (oldest first) are removed from the file itself: the file is
rewritten without them, because DuckDB leaves deleted rows' bytes in freed blocks.

Several processes (the app and `python -m core.corpus`) use one file at once: DuckDB lets one
process hold a file, so a process holds it only while its operations run (its threads share
that connection) and `LINGER_SECONDS` after, behind a lock file that the others wait for (at
most `busy_seconds`). A long run holds it only while it writes a step.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import CorpusError, CorpusStoreError

try:  # POSIX; elsewhere processes rely on DuckDB's own lock (and retry on it) alone
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

STORE_ENV = "ATLAS_CORPUS_STORE"
"""Environment variable naming the store file (overrides the default location)."""
BUSY_SECONDS = 60.0
"""How long an operation waits for another process using the store before giving up."""
LINGER_SECONDS = 0.25
"""A process keeps the file this long after its last operation: a page's burst of reads opens
it once (opening costs ≈ 20-60 ms). Not when another process is waiting for it: see below."""
WAITING_FRESH_SECONDS = 1.0
"""A process waiting for the file touches `<store>.wait` every `POLL_SECONDS`; while that file
is this fresh, the holder lets go after its current operations (no new ones start, no linger)
and, opening again, first gives the waiting process `DEFER_SECONDS` to take the file: without
this a busy app would keep the file for good and starve the command (or the other way)."""
POLL_SECONDS = 0.01
DEFER_SECONDS = 0.05
EVICT_TO = 0.8
"""Over its cap, the store evicts down to this fraction of it, so that the file is not
rewritten on every write once it is full."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    model VARCHAR NOT NULL,
    corpus_hash VARCHAR NOT NULL,
    max_tokens INTEGER NOT NULL,
    mode VARCHAR NOT NULL,
    statistics VARCHAR NOT NULL,
    num_layers INTEGER NOT NULL,
    num_heads INTEGER NOT NULL,
    total INTEGER NOT NULL,
    done INTEGER NOT NULL,
    truncated INTEGER NOT NULL,
    seconds DOUBLE NOT NULL,
    created TIMESTAMP DEFAULT current_timestamp,
    updated TIMESTAMP DEFAULT current_timestamp
);
-- Added after the first release: stores written before have only shared runs.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS owner VARCHAR;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS expires DOUBLE;
CREATE TABLE IF NOT EXISTS corpus_sentences (
    corpus_hash VARCHAR NOT NULL,
    sentence_index INTEGER NOT NULL,
    text VARCHAR NOT NULL,
    PRIMARY KEY (corpus_hash, sentence_index)
);
CREATE TABLE IF NOT EXISTS head_sums (
    run_id VARCHAR NOT NULL,
    layer INTEGER NOT NULL,
    head INTEGER NOT NULL,
    statistic VARCHAR NOT NULL,
    n BIGINT NOT NULL,
    total DOUBLE NOT NULL,
    total_sq DOUBLE NOT NULL,
    PRIMARY KEY (run_id, layer, head, statistic)
);
CREATE TABLE IF NOT EXISTS head_examples (
    run_id VARCHAR NOT NULL,
    layer INTEGER NOT NULL,
    head INTEGER NOT NULL,
    statistic VARCHAR NOT NULL,
    rank INTEGER NOT NULL,
    value DOUBLE NOT NULL,
    sentence_index INTEGER NOT NULL,
    query INTEGER NOT NULL,
    key INTEGER NOT NULL,
    PRIMARY KEY (run_id, layer, head, statistic, rank)
);
CREATE TABLE IF NOT EXISTS head_sample (
    run_id VARCHAR NOT NULL,
    sentence_index INTEGER NOT NULL,
    layer INTEGER NOT NULL,
    head INTEGER NOT NULL,
    "values" DOUBLE[] NOT NULL,
    PRIMARY KEY (run_id, sentence_index, layer, head)
);
"""


def default_store_path() -> Path:
    """`$ATLAS_CORPUS_STORE`, else `corpus.duckdb` in the user's cache directory."""
    configured = os.environ.get(STORE_ENV)
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "attention-atlas" / "corpus.duckdb"


@dataclass(frozen=True)
class RunRecord:
    """One row of `runs`."""

    run_id: str
    model: str
    corpus_hash: str
    max_tokens: int
    mode: str
    statistics: tuple[str, ...]
    num_layers: int
    num_heads: int
    total: int
    done: int
    truncated: int
    seconds: float

    @property
    def finished(self) -> bool:
        return self.done >= self.total


# --------------------------------------------------------------------------------------------
# Opening the file: shared by this process's threads, held only while an operation runs.
# --------------------------------------------------------------------------------------------


def _busy(exc: BaseException) -> bool:
    """Whether a DuckDB error says another process holds the file."""
    return "lock" in str(exc).lower()


class _OpenFile:
    """One store file as this process uses it: a DuckDB connection and the lock file, opened
    by the first operation and closed by the last one running, so other processes get the file
    between operations. An exclusive user (rewriting the file) waits until it is alone."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self.wait_path = path.with_name(path.name + ".wait")
        self.condition = threading.Condition()
        self.users = 0
        self.exclusive = False
        self.exclusive_waiting = 0
        """Exclusive users waiting to start: readers arriving meanwhile wait behind them."""
        self.connection = None
        self._lock_fd: int | None = None
        self.generation = 0
        """Changes on every use and release, so that a stale linger timer does nothing."""

    def open(self, busy_seconds: float) -> None:
        import duckdb

        deadline = time.monotonic() + busy_seconds
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise self._error(exc) from exc
        try:
            self._wait_for_lock(deadline)
            while True:
                try:
                    self.connection = duckdb.connect(str(self.path))
                    self.connection.execute(_SCHEMA)
                    return
                except duckdb.Error as exc:
                    self._close_connection()
                    if not _busy(exc) or time.monotonic() > deadline:
                        raise self._error(exc) from exc
                    time.sleep(0.05)  # a program outside the lock file holds it: poll
                except OSError as exc:
                    self._close_connection()
                    raise self._error(exc) from exc
        except BaseException:
            self._release_lock()
            raise

    def another_waits(self) -> bool:
        """Whether another process is waiting for the file (its `.wait` file is fresh)."""
        try:
            return time.time() - self.wait_path.stat().st_mtime < WAITING_FRESH_SECONDS
        except OSError:
            return False

    def _wait_for_lock(self, deadline: float) -> None:
        if fcntl is None:
            return
        if self.another_waits():
            time.sleep(DEFER_SECONDS)  # its turn first: it polls faster than this
        waited = False
        try:
            while True:
                try:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError as exc:
                    if time.monotonic() > deadline:
                        raise CorpusStoreError(
                            f"The corpus store '{self.path.name}' is busy: another program "
                            "has been using it for too long. Try again in a moment, or choose "
                            f"another store file (argument store= or ${STORE_ENV})."
                        ) from exc
                    self.wait_path.touch()  # asks the holder to let go
                    waited = True
                    time.sleep(POLL_SECONDS)
        finally:
            if waited:
                self.wait_path.unlink(missing_ok=True)

    def _error(self, exc: BaseException) -> CorpusStoreError:
        return CorpusStoreError(
            f"The corpus store '{self.path.name}' cannot be opened ({type(exc).__name__}): "
            "another program may be holding it, or it is not a DuckDB file. Choose "
            f"another store file (argument store= or ${STORE_ENV})."
        )

    def _close_connection(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(Exception):
                self.connection.close()
            self.connection = None

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def close(self) -> None:
        self._close_connection()
        self._release_lock()

    def is_open(self) -> bool:
        return self.connection is not None

    def release_later(self) -> None:
        """Close the file `LINGER_SECONDS` from now unless an operation uses it meanwhile
        (called with `condition` held, when the last user is done)."""
        self.generation += 1
        generation = self.generation

        def close_if_idle() -> None:
            with self.condition:
                if self.users == 0 and self.generation == generation:
                    self.close()

        timer = threading.Timer(LINGER_SECONDS, close_if_idle)
        timer.daemon = True
        timer.start()

    def reopen_after(self, replace: Path) -> None:
        """Put `replace` in place of the file, keeping the lock file held throughout."""
        import duckdb

        self._close_connection()
        os.replace(replace, self.path)
        try:
            self.connection = duckdb.connect(str(self.path))
        except duckdb.Error as exc:
            self.close()  # the next operation opens it afresh, lock file included
            raise self._error(exc) from exc


_OPEN_FILES: dict[Path, _OpenFile] = {}
_OPEN_FILES_GUARD = threading.Lock()


@contextlib.contextmanager
def _using(path: Path, busy_seconds: float, *, exclusive: bool = False) -> Iterator[_OpenFile]:
    with _OPEN_FILES_GUARD:
        opened = _OPEN_FILES.setdefault(path, _OpenFile(path))
    with opened.condition:
        # No new operation joins while another process waits, nor while a rewrite waits in
        # this one: the file is let go (or rewritten) when the running ones end. Operations
        # never nest, so this cannot wait on itself.
        opened.exclusive_waiting += exclusive
        try:
            while (
                opened.exclusive
                or (exclusive and opened.users)
                or (not exclusive and opened.exclusive_waiting)
                or (opened.users and opened.another_waits())
            ):
                opened.condition.wait(POLL_SECONDS)
        finally:
            opened.exclusive_waiting -= exclusive
        if not opened.is_open():
            opened.open(busy_seconds)
        opened.users += 1
        opened.generation += 1  # a pending linger timer must not close it under this user
        opened.exclusive = exclusive
    try:
        yield opened
    finally:
        with opened.condition:
            opened.users -= 1
            if exclusive:
                opened.exclusive = False
            if opened.users == 0:
                if opened.another_waits():
                    opened.close()
                else:
                    opened.release_later()
            opened.condition.notify_all()


def _digest(*parts: str, length: int) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:length]


_VISIBLE = "(owner IS NULL OR owner = ?)"
"""SQL: a run this handle may read: shared, or its owner's (`?` is the handle's owner key)."""


class CorpusStore:
    """A handle on one store file: cheap to create, and it holds nothing between operations.

    `owner` (any string, e.g. a random token per visitor; None: shared runs) scopes the runs
    this handle makes and sees: they are stored under `scope(run_id)`, and only a handle with
    the same owner reopens or deletes them; shared runs are seen by every handle. Runs made
    with `lifetime_seconds` expire that long after they were made. `max_bytes` caps the file:
    a write that takes it over the cap evicts the runs written least recently (of any owner)
    down to `EVICT_TO` of the cap, never the run being written. Expired and evicted runs are
    removed by the writes of any handle with these settings, and by `prune()`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        owner: str | None = None,
        lifetime_seconds: float | None = None,
        max_bytes: int | None = None,
        busy_seconds: float = BUSY_SECONDS,
    ) -> None:
        if owner is not None and (not isinstance(owner, str) or not owner):
            raise CorpusError("A corpus store owner must be a non-empty string.")
        for name, value in (("lifetime_seconds", lifetime_seconds), ("max_bytes", max_bytes)):
            if value is not None and (isinstance(value, bool) or not value > 0):
                raise CorpusError(f"The corpus store's {name} must be positive, not {value}.")
        self.path = Path(path).expanduser().resolve() if path else default_store_path().resolve()
        # Only a digest of the owner is written: the file never holds a visitor's token.
        self._owner = None if owner is None else _digest("owner", owner, length=32)
        self.lifetime_seconds = lifetime_seconds
        self.max_bytes = max_bytes
        self.busy_seconds = busy_seconds
        with self._cursor():  # fail here, not at the first read, if the file is not a store
            pass

    @property
    def shared(self) -> bool:
        """Whether this handle makes shared runs (no owner)."""
        return self._owner is None

    def scope(self, run_id: str) -> str:
        """The id this handle stores the run with content key `run_id` under: the key itself
        for a shared run, a digest of it and the owner otherwise (one run per owner)."""
        return run_id if self._owner is None else _digest(run_id, self._owner, length=24)

    @contextlib.contextmanager
    def _cursor(self):
        with _using(self.path, self.busy_seconds) as opened:
            cursor = opened.connection.cursor()
            try:
                yield cursor
            finally:
                cursor.close()

    def release(self) -> None:
        """Close this process's hold on the file now if no operation is using it (instead of
        `LINGER_SECONDS` later), e.g. before measuring the file or handing it to another
        program."""
        with _OPEN_FILES_GUARD:
            opened = _OPEN_FILES.get(self.path)
        if opened is not None:
            with opened.condition:
                if opened.users == 0:
                    opened.close()

    def file_bytes(self) -> int:
        """Bytes the store takes on disk now (the file and its write-ahead log)."""
        total = 0
        for part in (self.path, self.path.with_name(self.path.name + ".wal")):
            with contextlib.suppress(FileNotFoundError):
                total += part.stat().st_size
        return total

    # -- runs ---------------------------------------------------------------------------------

    def run(self, run_id: str) -> RunRecord | None:
        """The run stored under `run_id`, if this handle may see it."""
        with self._cursor() as cursor:
            row = cursor.execute(
                "SELECT run_id, model, corpus_hash, max_tokens, mode, statistics, num_layers, "
                f"num_heads, total, done, truncated, seconds FROM runs WHERE run_id = ? "
                f"AND {_VISIBLE}",
                [run_id, self._owner],
            ).fetchone()
        if row is None:
            return None
        values = list(row)
        values[5] = tuple(values[5].split(","))
        return RunRecord(*values)

    def runs(self) -> pd.DataFrame:
        """Every run this handle may see, newest first; `shared` says whose it is and
        `expires` when it goes (epoch seconds, NaN: never)."""
        with self._cursor() as cursor:
            return cursor.execute(
                "SELECT run_id, model, corpus_hash, max_tokens, mode, total, done, truncated, "
                "seconds, created, updated, owner IS NULL AS shared, expires FROM runs "
                f"WHERE {_VISIBLE} ORDER BY updated DESC",
                [self._owner],
            ).df()

    def create_run(self, record: RunRecord, sentences: list[str]) -> None:
        """Register a run (and its corpus's sentences, once per corpus), owned and expiring as
        this handle says; then remove expired runs and keep the file under its cap."""
        expires = None if self.lifetime_seconds is None else _now() + self.lifetime_seconds
        with self._cursor() as cursor:
            cursor.begin()
            try:
                known = cursor.execute(
                    "SELECT count(*) FROM corpus_sentences WHERE corpus_hash = ?",
                    [record.corpus_hash],
                ).fetchone()[0]
                if known != len(sentences):
                    cursor.execute(
                        "DELETE FROM corpus_sentences WHERE corpus_hash = ?", [record.corpus_hash]
                    )
                    frame = pd.DataFrame(
                        {
                            "corpus_hash": record.corpus_hash,
                            "sentence_index": np.arange(len(sentences), dtype=np.int32),
                            "text": sentences,
                        }
                    )
                    cursor.register("new_sentences", frame)
                    cursor.execute("INSERT INTO corpus_sentences SELECT * FROM new_sentences")
                    cursor.unregister("new_sentences")
                for table in ("head_sums", "head_examples", "head_sample", "runs"):
                    cursor.execute(f"DELETE FROM {table} WHERE run_id = ?", [record.run_id])
                cursor.execute(
                    "INSERT INTO runs (run_id, model, corpus_hash, max_tokens, mode, statistics, "
                    "num_layers, num_heads, total, done, truncated, seconds, owner, expires) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        record.run_id,
                        record.model,
                        record.corpus_hash,
                        record.max_tokens,
                        record.mode,
                        ",".join(record.statistics),
                        record.num_layers,
                        record.num_heads,
                        record.total,
                        record.done,
                        record.truncated,
                        record.seconds,
                        self._owner,
                        expires,
                    ],
                )
                cursor.commit()
            except Exception:
                cursor.rollback()
                raise
        self.prune(keep=record.run_id)

    def save_progress(
        self,
        run_id: str,
        *,
        done: int,
        truncated: int,
        seconds: float,
        sums: pd.DataFrame,
        examples: pd.DataFrame | None,
        sample: pd.DataFrame | None,
    ) -> None:
        """Write one step of a run atomically: a stopped run resumes from the last step.

        Raises `CorpusError` if the run is no longer in the store (deleted, expired or
        evicted while it ran): nothing is written then.
        """
        with self._cursor() as cursor:
            cursor.begin()
            try:
                updated = cursor.execute(
                    "UPDATE runs SET done = ?, truncated = ?, seconds = ?, "
                    "updated = current_timestamp WHERE run_id = ? RETURNING run_id",
                    [done, truncated, seconds, run_id],
                ).fetchall()
                if not updated:
                    raise CorpusError(
                        "This corpus run was removed from the store while it ran (deleted, "
                        "expired, or evicted as the oldest when the store was full). Start "
                        "it again to measure it from the beginning."
                    )
                cursor.register("new_sums", sums)
                cursor.execute("INSERT OR REPLACE INTO head_sums SELECT * FROM new_sums")
                cursor.unregister("new_sums")
                if examples is not None and len(examples):
                    cursor.register("new_examples", examples)
                    cursor.execute(
                        "INSERT OR REPLACE INTO head_examples SELECT * FROM new_examples"
                    )
                    cursor.unregister("new_examples")
                if sample is not None and len(sample):
                    cursor.register("new_sample", sample)
                    cursor.execute("INSERT OR REPLACE INTO head_sample SELECT * FROM new_sample")
                    cursor.unregister("new_sample")
                cursor.commit()
            except Exception:
                cursor.rollback()
                raise
        if self.max_bytes is not None:
            self.prune(keep=run_id)

    # -- deleting -----------------------------------------------------------------------------

    def delete_runs(self, run_ids: Iterable[str] | None = None) -> int:
        """Delete this handle's own runs (all, or those of `run_ids`) with their statistics and
        their sentences where no other run uses them, and rewrite the file without them.

        A handle with an owner deletes that owner's runs only, never shared ones; a shared
        handle deletes shared runs only. Returns how many runs were deleted.
        """
        chosen = None if run_ids is None else list(run_ids)
        with _using(self.path, self.busy_seconds, exclusive=True) as opened:
            cursor = opened.connection.cursor()
            try:
                query = "SELECT run_id FROM runs WHERE owner IS NOT DISTINCT FROM ?"
                mine = {r[0] for r in cursor.execute(query, [self._owner]).fetchall()}
            finally:
                cursor.close()
            doomed = mine if chosen is None else mine & set(chosen)
            return self._remove(opened, doomed)

    def prune(self, keep: str | None = None) -> int:
        """Remove expired runs, then, over `max_bytes`, the runs written least recently until
        the file is under `EVICT_TO` of the cap; never `keep`. Returns how many were removed."""
        removed = 0
        with _using(self.path, self.busy_seconds, exclusive=True) as opened:
            if self.max_bytes is not None:
                # Write the log into the file first (alone, so no transaction is open): its
                # rows take more room once in blocks, and the file's size is what is capped.
                opened.connection.execute("CHECKPOINT")
            for _ in range(4):  # each pass evicts on an estimate, then measures the file
                cursor = opened.connection.cursor()
                try:
                    expired = cursor.execute(
                        "SELECT run_id FROM runs WHERE expires < ?", [_now()]
                    ).fetchall()
                    doomed = {r[0] for r in expired} - {keep}
                    if self.max_bytes is not None and self.file_bytes() > self.max_bytes:
                        doomed |= self._oldest_over_cap(cursor, keep, doomed)
                finally:
                    cursor.close()
                if not doomed:
                    break
                removed += self._remove(opened, doomed)
                if self.max_bytes is None or self.file_bytes() <= self.max_bytes:
                    break
        return removed

    def _oldest_over_cap(self, cursor, keep: str | None, doomed: set[str]) -> set[str]:
        """Runs to evict, oldest first, until the others' estimated share of the file is
        under `EVICT_TO` of the cap. A run's share is its rows weighed by their rough size."""
        weights = cursor.execute(
            """
            WITH sums AS (SELECT run_id, count(*) AS n FROM head_sums GROUP BY run_id),
            examples AS (SELECT run_id, count(*) AS n FROM head_examples GROUP BY run_id),
            sample AS (SELECT run_id, count(*) AS n, sum(len("values")) AS v
                       FROM head_sample GROUP BY run_id),
            texts AS (SELECT corpus_hash, sum(strlen(text)) + 8 * count(*) AS b
                      FROM corpus_sentences GROUP BY corpus_hash)
            SELECT r.run_id,
                   40 * coalesce(sums.n, 0) + 48 * coalesce(examples.n, 0)
                   + 32 * coalesce(sample.n, 0) + 8 * coalesce(sample.v, 0)
                   + coalesce(texts.b, 0) / count(*) OVER (PARTITION BY r.corpus_hash) + 256
                   AS weight
            FROM runs r LEFT JOIN sums USING (run_id) LEFT JOIN examples USING (run_id)
            LEFT JOIN sample USING (run_id) LEFT JOIN texts USING (corpus_hash)
            ORDER BY r.updated, r.created, r.run_id
            """
        ).fetchall()
        total = sum(float(w) for _, w in weights)
        scale = self.file_bytes() / max(total, 1.0)
        left = sum(float(w) for run, w in weights if run not in doomed)
        evicted: set[str] = set()
        for run, weight in weights:
            if left * scale <= self.max_bytes * EVICT_TO:
                break
            if run == keep or run in doomed:
                continue
            evicted.add(run)
            left -= float(weight)
        return evicted

    def _remove(self, opened: _OpenFile, runs: set[str]) -> int:
        """Delete `runs` and unused sentences, then rewrite the file without their bytes."""
        if not runs:
            return 0
        cursor = opened.connection.cursor()
        try:
            cursor.begin()
            for table in ("head_sums", "head_examples", "head_sample", "runs"):
                cursor.execute(
                    f"DELETE FROM {table} WHERE run_id IN (SELECT unnest(?))", [sorted(runs)]
                )
            cursor.execute(
                "DELETE FROM corpus_sentences WHERE corpus_hash NOT IN "
                "(SELECT corpus_hash FROM runs)"
            )
            cursor.commit()
            database = cursor.execute("SELECT current_database()").fetchone()[0]
        finally:
            cursor.close()
        self._rewrite(opened, database)
        return len(runs)

    def _rewrite(self, opened: _OpenFile, database: str) -> None:
        """Copy the live rows to a new file and put it in place of the old one: DuckDB reuses
        the blocks of deleted rows but leaves their bytes (deleted sentences among them) in
        the file, and never shrinks it."""
        fresh = self.path.with_name(self.path.name + ".rewrite")
        for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
            leftover.unlink(missing_ok=True)
        connection = opened.connection
        connection.execute(f"ATTACH '{_quote(fresh)}' AS atlas_rewrite")
        try:
            name = database.replace('"', '""')
            connection.execute(f'COPY FROM DATABASE "{name}" TO atlas_rewrite')
        finally:
            connection.execute("DETACH atlas_rewrite")
        opened.reopen_after(fresh)

    # -- reading ------------------------------------------------------------------------------

    def _frame(self, query: str, parameters: list) -> pd.DataFrame:
        with self._cursor() as cursor:
            return cursor.execute(query, parameters).df()

    def sums(self, run_id: str) -> pd.DataFrame:
        """`layer, head, statistic, n, total, total_sq` of a run."""
        return self._frame(
            "SELECT layer, head, statistic, n, total, total_sq FROM head_sums "
            "WHERE run_id = ? ORDER BY layer, head, statistic",
            [run_id],
        )

    def all_examples(self, run_id: str) -> pd.DataFrame:
        return self._frame(
            "SELECT layer, head, statistic, rank, value, sentence_index, query, key "
            "FROM head_examples WHERE run_id = ?",
            [run_id],
        )

    def examples(self, run_id: str, layer: int, head: int, statistic: str, k: int) -> pd.DataFrame:
        """The `k` strongest stored examples of one head and statistic, with their sentences."""
        return self._frame(
            "SELECT e.rank, e.value, e.sentence_index, s.text AS sentence, e.query, e.key "
            "FROM head_examples e JOIN runs r USING (run_id) "
            "JOIN corpus_sentences s ON s.corpus_hash = r.corpus_hash "
            "AND s.sentence_index = e.sentence_index "
            "WHERE e.run_id = ? AND e.layer = ? AND e.head = ? AND e.statistic = ? "
            "ORDER BY e.rank LIMIT ?",
            [run_id, layer, head, statistic, k],
        )

    def sample(self, run_id: str, layer: int, head: int) -> pd.DataFrame:
        """`sentence_index, values` (one list per sentence, statistics in run order)."""
        return self._frame(
            'SELECT sentence_index, "values" FROM head_sample '
            "WHERE run_id = ? AND layer = ? AND head = ? ORDER BY sentence_index",
            [run_id, layer, head],
        )

    def sentences(self, corpus_hash: str, indices: list[int] | None = None) -> list[str]:
        """Texts of a stored corpus, all or the given indices (in that order)."""
        with self._cursor() as cursor:
            if indices is None:
                rows = cursor.execute(
                    "SELECT text FROM corpus_sentences WHERE corpus_hash = ? "
                    "ORDER BY sentence_index",
                    [corpus_hash],
                ).fetchall()
                return [r[0] for r in rows]
            found = dict(
                cursor.execute(
                    "SELECT sentence_index, text FROM corpus_sentences WHERE corpus_hash = ? "
                    "AND sentence_index IN (SELECT unnest(?))",
                    [corpus_hash, list(indices)],
                ).fetchall()
            )
        return [found[i] for i in indices]


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


def _now() -> float:
    """Seconds since the epoch: expiry times are stored as such (a module function so that
    tests can move the clock)."""
    return time.time()
