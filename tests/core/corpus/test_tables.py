"""The Corpus page's tables: head rows with interval half-widths, examples with their pair."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.corpus.tables import corpus_example_rows, corpus_head_rows


def corpus_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "layer": [0, 0],
            "head": [0, 1],
            "to_previous": [0.9, 0.1],
            "to_previous_low": [0.8, np.nan],
            "to_previous_high": [1.0, np.nan],
            "to_previous_n": [5, 1],
            "labels": ["previous-token", ""],
        }
    )


def test_corpus_head_rows_keep_means_and_interval_half_widths():
    rows = corpus_head_rows(corpus_table(), ["to_previous"])
    assert list(rows.columns) == [
        "layer",
        "head",
        "labels",
        "sentences",
        "to_previous",
        "to_previous ±",
    ]
    assert rows["to_previous ±"].iloc[0] == pytest.approx(0.1)
    assert np.isnan(rows["to_previous ±"].iloc[1])  # one sentence: no interval
    assert rows["sentences"].tolist() == [5, 1]
    with pytest.raises(ValueError):
        corpus_head_rows(corpus_table(), ["entropy"])


def test_corpus_example_rows_spell_out_the_pair():
    examples = pd.DataFrame(
        {
            "rank": [0, 1],
            "value": [0.7, 0.5],
            "sentence_index": [3, 1],
            "sentence": ["a b", "c d"],
            "query": [2, -1],
            "key": [1, -1],
        }
    )
    rows = corpus_example_rows(examples, [["[CLS]", "a", "b"], ["[CLS]", "c", "d"]])
    assert rows["rank"].tolist() == [1, 2]
    assert rows["pair"].tolist() == ["2: b → 1: a", ""]
    with pytest.raises(ValueError):
        corpus_example_rows(examples, [["a"]])
