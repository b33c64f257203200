"""Per-head statistics that tell what kind of pattern each head has."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np
import pandas as pd

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
    weights = attentions.astype(np.float64, copy=False)
    special = np.array([t.is_special for t in tokens])
    punctuation = np.array([not t.is_special and is_punctuation(t.text) for t in tokens])
    rows = ~special if content_queries_only and (~special).any() else np.ones(n, dtype=bool)

    positions = np.arange(n)
    distance = np.abs(positions[:, None] - positions[None, :]).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(weights > 0, weights * np.log2(weights), 0.0)
    per_query = {
        "entropy": -plogp.sum(-1),
        "mean_distance": (weights * distance).sum(-1),
        "to_special": weights[..., special].sum(-1),
        "to_self": np.diagonal(weights, axis1=-2, axis2=-1),
        "to_previous": np.concatenate(
            [np.zeros((layers, heads, 1)), np.diagonal(weights, offset=-1, axis1=-2, axis2=-1)],
            axis=-1,
        ),
        "to_next": np.concatenate(
            [np.diagonal(weights, offset=1, axis1=-2, axis2=-1), np.zeros((layers, heads, 1))],
            axis=-1,
        ),
        "to_punctuation": weights[..., punctuation].sum(-1),
    }
    # The first token has no previous and the last no next: average over those that do.
    has_previous = rows & (positions > 0)
    has_next = rows & (positions < n - 1)
    masks = {"to_previous": has_previous, "to_next": has_next}
    layer_ids, head_ids = np.meshgrid(np.arange(layers), np.arange(heads), indexing="ij")
    frame = {"layer": layer_ids.ravel(), "head": head_ids.ravel()}
    for name, values in per_query.items():
        chosen = masks.get(name, rows)
        frame[name] = values[..., chosen].mean(-1).ravel() if chosen.any() else np.nan
    return pd.DataFrame(frame)
