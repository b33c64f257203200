"""Shared corpus-test inputs: a small varied corpus and a per-test DuckDB store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.corpus import CorpusStore

# Different lengths (so batches pad), punctuation, a split word and repeated tokens.
SENTENCES = [
    "The cat sat on the mat.",
    "Emma Woodhouse, handsome, clever, and rich, had lived nearly twenty-one years.",
    "It rained.",
    "The the the dog barked, and the other dog barked back at the unbelievably loud dog.",
    "Mr. Knightley was a sensible man about seven or eight-and-thirty.",
    "Yes!",
    "She had been a friend and companion such as few possessed: intelligent, well-informed.",
    "Tokenization splits uncommonly long words into pieces.",
    "A, b, c.",
]


@pytest.fixture
def store(tmp_path) -> CorpusStore:
    return CorpusStore(tmp_path / "corpus.duckdb")


def stored_examples(result) -> pd.DataFrame:
    """Every stored example of a run, in a fixed order."""
    return result.store.all_examples(result.run_id).sort_values(
        ["layer", "head", "statistic", "rank"], ignore_index=True
    )


def assert_same_examples(left, right, atol: float) -> None:
    """Same values to `atol`, and the same sentences and pairs wherever the value is not tied
    (within `atol`) with another example of its head and statistic: near-ties may swap rank
    when float32 attention moves by ~1e-8."""
    a, b = stored_examples(left), stored_examples(right)
    np.testing.assert_allclose(a["value"], b["value"], rtol=0, atol=atol)
    groups = a.groupby(["layer", "head", "statistic"])["value"]
    gap = groups.transform(lambda v: v.diff().abs().fillna(np.inf)).to_numpy()
    next_gap = groups.transform(lambda v: v.diff(-1).abs().fillna(np.inf)).to_numpy()
    clear = (gap > atol) & (next_gap > atol)
    assert clear.mean() > 0.5  # the check below must not be vacuous
    for column in ("sentence_index", "query", "key"):
        np.testing.assert_array_equal(a[column][clear], b[column][clear], err_msg=column)
