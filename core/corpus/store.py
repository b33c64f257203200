"""The corpus result store: one DuckDB file holding every run, written as a run goes.

Tables (all keyed by `run_id`, a hash of model, corpus, settings and statistics version):

* `runs`: one row per run: model, corpus hash, max_tokens, mode, progress, timings.
* `corpus_sentences`: the sentences of each corpus (by corpus hash), so a stored run can show
  its examples without the original file.
* `head_sums`: per layer × head × statistic, the running count, sum and sum of squares of the
  per-sentence values: means and intervals come from these, so memory does not grow with the
  corpus.
* `head_examples`: per layer × head × statistic, the `top_k` sentences where the statistic is
  largest, with the token pair where it is strongest.
* `head_sample`: every statistic of every head for a bounded, evenly spaced sample of sentences
  (to pick each head's most typical sentence).

Connections are cached per file and process: DuckDB lets one process hold a file, and threads
share that connection through cursors (a page reads while a background run writes).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import CorpusStoreError

STORE_ENV = "ATLAS_CORPUS_STORE"
"""Environment variable naming the store file (overrides the default location)."""

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


_CONNECTIONS: dict[Path, object] = {}
_CONNECTIONS_GUARD = threading.Lock()


def _connect(path: Path):
    import duckdb

    with _CONNECTIONS_GUARD:
        connection = _CONNECTIONS.get(path)
        if connection is None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                connection = duckdb.connect(str(path))
                connection.execute(_SCHEMA)
            except (OSError, duckdb.Error) as exc:
                raise CorpusStoreError(
                    f"The corpus store '{path.name}' cannot be opened ({type(exc).__name__}): "
                    "another program may be using it, or it is not a DuckDB file. Choose "
                    f"another store file (argument store= or ${STORE_ENV})."
                ) from exc
            _CONNECTIONS[path] = connection
        return connection


class CorpusStore:
    """A handle on one store file. Cheap to create: the DuckDB connection is shared."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path).expanduser().resolve() if path else default_store_path().resolve()
        self._connection = _connect(self.path)

    def _cursor(self):
        return self._connection.cursor()

    # -- runs ---------------------------------------------------------------------------------

    def run(self, run_id: str) -> RunRecord | None:
        row = (
            self._cursor()
            .execute(
                "SELECT run_id, model, corpus_hash, max_tokens, mode, statistics, num_layers, "
                "num_heads, total, done, truncated, seconds FROM runs WHERE run_id = ?",
                [run_id],
            )
            .fetchone()
        )
        if row is None:
            return None
        values = list(row)
        values[5] = tuple(values[5].split(","))
        return RunRecord(*values)

    def runs(self) -> pd.DataFrame:
        """Every stored run, newest first."""
        return (
            self._cursor()
            .execute(
                "SELECT run_id, model, corpus_hash, max_tokens, mode, total, done, truncated, "
                "seconds, created, updated FROM runs ORDER BY updated DESC"
            )
            .df()
        )

    def create_run(self, record: RunRecord, sentences: list[str]) -> None:
        """Register a run (and its corpus's sentences, once per corpus)."""
        cursor = self._cursor()
        cursor.begin()
        try:
            known = cursor.execute(
                "SELECT count(*) FROM corpus_sentences WHERE corpus_hash = ?", [record.corpus_hash]
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
                "num_layers, num_heads, total, done, truncated, seconds) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                ],
            )
            cursor.commit()
        except Exception:
            cursor.rollback()
            raise

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
        """Write one step of a run atomically: a stopped run resumes from the last step."""
        cursor = self._cursor()
        cursor.begin()
        try:
            cursor.register("new_sums", sums)
            cursor.execute("INSERT OR REPLACE INTO head_sums SELECT * FROM new_sums")
            cursor.unregister("new_sums")
            if examples is not None and len(examples):
                cursor.register("new_examples", examples)
                cursor.execute("INSERT OR REPLACE INTO head_examples SELECT * FROM new_examples")
                cursor.unregister("new_examples")
            if sample is not None and len(sample):
                cursor.register("new_sample", sample)
                cursor.execute("INSERT OR REPLACE INTO head_sample SELECT * FROM new_sample")
                cursor.unregister("new_sample")
            cursor.execute(
                "UPDATE runs SET done = ?, truncated = ?, seconds = ?, "
                "updated = current_timestamp WHERE run_id = ?",
                [done, truncated, seconds, run_id],
            )
            cursor.commit()
        except Exception:
            cursor.rollback()
            raise

    # -- reading ------------------------------------------------------------------------------

    def sums(self, run_id: str) -> pd.DataFrame:
        """`layer, head, statistic, n, total, total_sq` of a run."""
        return (
            self._cursor()
            .execute(
                "SELECT layer, head, statistic, n, total, total_sq FROM head_sums "
                "WHERE run_id = ? ORDER BY layer, head, statistic",
                [run_id],
            )
            .df()
        )

    def all_examples(self, run_id: str) -> pd.DataFrame:
        return (
            self._cursor()
            .execute(
                "SELECT layer, head, statistic, rank, value, sentence_index, query, key "
                "FROM head_examples WHERE run_id = ?",
                [run_id],
            )
            .df()
        )

    def examples(self, run_id: str, layer: int, head: int, statistic: str, k: int) -> pd.DataFrame:
        """The `k` strongest stored examples of one head and statistic, with their sentences."""
        return (
            self._cursor()
            .execute(
                "SELECT e.rank, e.value, e.sentence_index, s.text AS sentence, e.query, e.key "
                "FROM head_examples e JOIN runs r USING (run_id) "
                "JOIN corpus_sentences s ON s.corpus_hash = r.corpus_hash "
                "AND s.sentence_index = e.sentence_index "
                "WHERE e.run_id = ? AND e.layer = ? AND e.head = ? AND e.statistic = ? "
                "ORDER BY e.rank LIMIT ?",
                [run_id, layer, head, statistic, k],
            )
            .df()
        )

    def sample(self, run_id: str, layer: int, head: int) -> pd.DataFrame:
        """`sentence_index, values` (one list per sentence, statistics in run order)."""
        return (
            self._cursor()
            .execute(
                'SELECT sentence_index, "values" FROM head_sample '
                "WHERE run_id = ? AND layer = ? AND head = ? ORDER BY sentence_index",
                [run_id, layer, head],
            )
            .df()
        )

    def sentences(self, corpus_hash: str, indices: list[int] | None = None) -> list[str]:
        """Texts of a stored corpus, all or the given indices (in that order)."""
        cursor = self._cursor()
        if indices is None:
            rows = cursor.execute(
                "SELECT text FROM corpus_sentences WHERE corpus_hash = ? ORDER BY sentence_index",
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
