"""The Corpus page's tables: one row per layer x head with interval half-widths, and the
examples behind a claim with their token pair spelled out. Numbers stay numbers, so a table
sorts by any column."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def corpus_head_rows(head_table: pd.DataFrame, statistics: Sequence[str]) -> pd.DataFrame:
    """The Corpus page's table from `CorpusResult.head_table`: one row per layer × head.

    Columns: `layer, head, labels, sentences` (how many sentences were measured), then for each
    statistic `s` its corpus mean and `s ±`, half the width of its 95 % interval (NaN below two
    sentences). Numbers stay numbers, so the table sorts by any of them.
    """
    missing = [s for s in statistics if s not in head_table.columns]
    if missing:
        raise ValueError(f"the head table has no statistics {missing}")
    rows = pd.DataFrame(
        {
            "layer": head_table["layer"].to_numpy(),
            "head": head_table["head"].to_numpy(),
            "labels": head_table["labels"].to_numpy(),
        }
    )
    counts = [head_table[f"{s}_n"].to_numpy() for s in statistics]
    rows["sentences"] = np.max(counts, axis=0) if counts else 0
    for name in statistics:
        rows[name] = head_table[name].to_numpy()
        rows[f"{name} ±"] = (head_table[f"{name}_high"] - head_table[f"{name}_low"]).to_numpy() / 2
    return rows


def corpus_example_rows(
    examples: pd.DataFrame, token_labels: Sequence[Sequence[str]]
) -> pd.DataFrame:
    """The examples behind a claim (`CorpusResult.examples`) with their token pair spelled out.

    `token_labels[i]` are the token texts of example `i`'s sentence. Columns: `rank, value,
    sentence, pair` ("query → key", "" when the statistic has no strongest pair there).
    """
    if len(token_labels) != len(examples):
        raise ValueError(f"{len(token_labels)} token lists for {len(examples)} examples")
    pairs = []
    for (query, key), labels in zip(
        examples[["query", "key"]].itertuples(index=False, name=None), token_labels, strict=True
    ):
        inside = 0 <= query < len(labels) and 0 <= key < len(labels)
        pairs.append(f"{query}: {labels[query]} → {key}: {labels[key]}" if inside else "")
    return pd.DataFrame(
        {
            "rank": examples["rank"].to_numpy() + 1,
            "value": examples["value"].to_numpy(),
            "sentence": examples["sentence"].to_numpy(),
            "pair": pairs,
        }
    )
