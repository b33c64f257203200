"""Per-head statistics that tell what kind of pattern each head has."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np
import pandas as pd

from core.row_stats import entropy_bits, mean_distance
from core.tokens import Token

STAT_DESCRIPTIONS = {
    "entropy": "Mean entropy of a query's attention in bits (0 = all on one token).",
    "mean_distance": "Mean |query − key| distance in tokens, weighted by attention.",
    "to_special": "Share of attention going to special tokens ([CLS], [SEP], <s>, </s>).",
    "to_self": "Share of attention a token puts on itself.",
    "to_previous": "Share of attention going to the previous token.",
    "to_next": "Share of attention going to the next token.",
    "to_punctuation": "Share of attention going to punctuation tokens.",
}


def is_punctuation(text: str) -> bool:
    """True for tokens made only of punctuation characters (Unicode category P*)."""
    stripped = text.strip()
    return bool(stripped) and all(unicodedata.category(c).startswith("P") for c in stripped)


def head_statistics(
    attentions: np.ndarray, tokens: Sequence[Token], *, content_queries_only: bool = True
) -> pd.DataFrame:
    """One row per (layer, head) with the statistics of `STAT_DESCRIPTIONS`.

    `attentions` is `[layers, heads, n, n]`. Shares are averaged over query rows; with
    `content_queries_only`, rows of special tokens are left out of the average (their
    attention is atypical and would blur every head's profile) unless nothing else is left.
    """
    layers, heads, n, _ = attentions.shape
    if len(tokens) != n:
        raise ValueError(f"{len(tokens)} tokens for attention over {n} positions.")
    special = np.array([t.is_special for t in tokens])
    punctuation = np.array([not t.is_special and is_punctuation(t.text) for t in tokens])
    rows = ~special if content_queries_only and (~special).any() else np.ones(n, dtype=bool)
    positions = np.arange(n)
    # The first token has no previous and the last no next: average over those that do.
    chosen_rows = {
        "to_previous": rows & (positions > 0),
        "to_next": rows & (positions < n - 1),
    }

    columns: dict[str, np.ndarray] = {name: np.empty((layers, heads)) for name in STAT_DESCRIPTIONS}
    # One layer at a time: the float64 temporaries of a whole 512-token BERT-base stack would
    # take 300 MB each and several seconds; per layer they are 25 MB.
    for layer in range(layers):
        per_query = _per_query(attentions[layer].astype(np.float64), special, punctuation)
        for name, values in per_query.items():
            chosen = chosen_rows.get(name, rows)
            columns[name][layer] = values[:, chosen].mean(-1) if chosen.any() else np.nan
    layer_ids, head_ids = np.meshgrid(np.arange(layers), np.arange(heads), indexing="ij")
    frame = {"layer": layer_ids.ravel(), "head": head_ids.ravel()}
    frame.update({name: values.ravel() for name, values in columns.items()})
    return pd.DataFrame(frame)


def _per_query(
    weights: np.ndarray, special: np.ndarray, punctuation: np.ndarray
) -> dict[str, np.ndarray]:
    """Each statistic per head and query row: `weights` `[heads, n, n]` -> `[heads, n]` each."""
    heads, n = weights.shape[0], weights.shape[-1]
    no_row = np.zeros((heads, 1))
    return {
        "entropy": entropy_bits(weights),
        "mean_distance": mean_distance(weights, np.arange(n)),
        "to_special": weights[..., special].sum(-1),
        "to_self": np.diagonal(weights, axis1=-2, axis2=-1),
        "to_previous": np.concatenate(
            [no_row, np.diagonal(weights, offset=-1, axis1=-2, axis2=-1)], axis=-1
        ),
        "to_next": np.concatenate(
            [np.diagonal(weights, offset=1, axis1=-2, axis2=-1), no_row], axis=-1
        ),
        "to_punctuation": weights[..., punctuation].sum(-1),
    }
