"""`CorpusResult`: a stored run, read back from the store (finished or in progress)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from core.corpus.keys import check_sentences, corpus_hash, run_id
from core.corpus.labels import head_labels
from core.corpus.statistics import statistic_descriptions
from core.corpus.store import CorpusStore, RunRecord
from core.errors import CorpusError, PositionOutOfRangeError

CONFIDENCE = 0.95


@dataclass(frozen=True, eq=False)
class CorpusResult:
    """A snapshot of one run: `done` of `total` sentences measured so far.

    Reading is cheap (a few small queries); call `refresh()` for a newer snapshot of a run
    that is still going.
    """

    store: CorpusStore
    record: RunRecord
    sums: pd.DataFrame

    @classmethod
    def load(cls, store: CorpusStore, run: str) -> CorpusResult:
        record = store.run(run)
        if record is None:
            raise CorpusError("This corpus run is not in the store (it may have been deleted).")
        return cls(store, record, store.sums(run))

    def refresh(self) -> CorpusResult:
        return CorpusResult.load(self.store, self.record.run_id)

    # -- what the run is ----------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def store_path(self) -> Path:
        return self.store.path

    @property
    def model_name(self) -> str:
        return self.record.model

    @property
    def mode(self) -> str:
        return self.record.mode

    @property
    def max_tokens(self) -> int:
        return self.record.max_tokens

    @property
    def done(self) -> int:
        return self.record.done

    @property
    def total(self) -> int:
        return self.record.total

    @property
    def finished(self) -> bool:
        return self.record.finished

    @property
    def truncated(self) -> int:
        """Sentences measured so far that were longer than `max_tokens` and were cut."""
        return self.record.truncated

    @property
    def seconds(self) -> float:
        """Time spent running so far, over all sessions of the run."""
        return self.record.seconds

    @property
    def num_layers(self) -> int:
        return self.record.num_layers

    @property
    def num_heads(self) -> int:
        return self.record.num_heads

    @property
    def statistics(self) -> dict[str, str]:
        """Name -> meaning of each statistic, in column order."""
        return statistic_descriptions(self.mode)

    # -- the head table -----------------------------------------------------------------------

    @cached_property
    def head_table(self) -> pd.DataFrame:
        """One row per layer × head: for each statistic `s` its mean over sentences `s`, the
        95 % interval of that mean `s_low`, `s_high` (Student t, NaN below 2 sentences) and
        the number of sentences it was measured on `s_n`; then `labels` (comma-separated,
        see `core.corpus.label_rules`)."""
        frame = pd.DataFrame(
            {
                "layer": np.repeat(np.arange(self.num_layers), self.num_heads),
                "head": np.tile(np.arange(self.num_heads), self.num_layers),
            }
        )
        sums = self.sums
        for name in self.statistics:
            rows = sums[sums["statistic"] == name].set_index(["layer", "head"])
            rows = rows.reindex(pd.MultiIndex.from_frame(frame[["layer", "head"]]))
            n = rows["n"].fillna(0).to_numpy(dtype=np.float64)
            total = rows["total"].fillna(0).to_numpy()
            total_sq = rows["total_sq"].fillna(0).to_numpy()
            with np.errstate(divide="ignore", invalid="ignore"):
                mean = np.where(n > 0, total / n, np.nan)
                variance = np.where(n > 1, (total_sq - n * mean * mean) / (n - 1), np.nan)
                half = scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, np.maximum(n - 1, 1)) * np.sqrt(
                    np.maximum(variance, 0.0) / n
                )
            half = np.where(n > 1, half, np.nan)
            frame[name] = mean
            frame[f"{name}_low"] = mean - half
            frame[f"{name}_high"] = mean + half
            frame[f"{name}_n"] = n.astype(np.int64)
        names = list(self.statistics)
        frame["labels"] = [
            ", ".join(head_labels(dict(zip(names, row, strict=True)), self.mode))
            for row in frame[names].itertuples(index=False, name=None)
        ]
        return frame

    # -- examples behind a claim --------------------------------------------------------------

    def _check_head(self, layer: int, head: int) -> None:
        if not 0 <= int(layer) < self.num_layers:
            raise PositionOutOfRangeError(
                f"Layer {layer} is out of range: the model has layers 0–{self.num_layers - 1}."
            )
        if not 0 <= int(head) < self.num_heads:
            raise PositionOutOfRangeError(
                f"Head {head} is out of range: the model has heads 0–{self.num_heads - 1}."
            )

    def examples(self, layer: int, head: int, statistic: str, k: int = 10) -> pd.DataFrame:
        """The `k` sentences (at most `core.corpus.TOP_K`) where `statistic` is largest for
        this head, strongest first: `rank, value, sentence_index, sentence, query, key`.

        `value` is the statistic on that sentence alone; `query`/`key` are token positions
        (special tokens included, as on the Attention page) of the pair where it is strongest
        (-1 when the sentence has none, e.g. no punctuation).
        """
        self._check_head(layer, head)
        if statistic not in self.statistics:
            raise CorpusError(
                f"Unknown statistic '{statistic}': choose one of {', '.join(self.statistics)}."
            )
        return self.store.examples(self.run_id, int(layer), int(head), statistic, int(k))

    def typical_sentence(self, layer: int, head: int) -> tuple[int, str] | None:
        """`(sentence_index, text)` of the sentence whose statistics for this head are closest
        to the head's corpus means (mean squared z-score over the statistics), among an evenly
        spaced sample of `core.corpus.TYPICAL_SAMPLE` sentences. None before any is measured.
        """
        self._check_head(layer, head)
        sample = self.store.sample(self.run_id, int(layer), int(head))
        if sample.empty:
            return None
        values = np.array(sample["values"].tolist(), dtype=np.float64)  # [m, S]
        sums = self.sums[(self.sums["layer"] == layer) & (self.sums["head"] == head)]
        sums = sums.set_index("statistic").reindex(list(self.statistics))
        n = sums["n"].to_numpy(dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = sums["total"].to_numpy() / n
            spread = np.sqrt(np.maximum(sums["total_sq"].to_numpy() / n - mean * mean, 0.0))
            z = (values - mean) / np.where(spread > 0, spread, np.nan)
            z = np.where(np.isfinite(z), z, np.nan)
            counted = np.isfinite(z).sum(1)
            distance = np.where(
                counted > 0, np.nansum(z * z, axis=1) / np.maximum(counted, 1), np.inf
            )
        distance = np.where(np.isfinite(distance), distance, np.inf)
        best = int(sample["sentence_index"].iloc[int(np.argmin(distance))])
        return best, self.sentence(best)

    def sentence(self, index: int) -> str:
        """Text of sentence `index` of the corpus (0-based)."""
        if not 0 <= int(index) < self.total:
            raise PositionOutOfRangeError(
                f"Sentence {index} is out of range: the corpus has {self.total} sentences."
            )
        return self.store.sentences(self.record.corpus_hash, [int(index)])[0]

    def sentences(self) -> list[str]:
        """The whole corpus, in order."""
        return self.store.sentences(self.record.corpus_hash)


def open_corpus(
    model_name: str,
    sentences: Sequence[str],
    *,
    max_tokens: int,
    mode: str = "default",
    store: CorpusStore | str | None = None,
) -> CorpusResult | None:
    """The stored run of this model, corpus and settings (finished or not), or None.

    `max_tokens` must be the effective value (capped at the model's maximum), as
    `run_corpus` records it. Instant: nothing is computed.
    """
    store = store if isinstance(store, CorpusStore) else CorpusStore(store)
    run = store.scope(run_id(model_name, corpus_hash(check_sentences(sentences)), max_tokens, mode))
    return CorpusResult.load(store, run) if store.run(run) is not None else None


def open_run(run: str, store: CorpusStore | str | None = None) -> CorpusResult:
    """A stored run by its id (see `CorpusStore.runs()` for the list)."""
    store = store if isinstance(store, CorpusStore) else CorpusStore(store)
    return CorpusResult.load(store, run)
