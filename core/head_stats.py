"""Per-head statistics that tell what kind of pattern each head has."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np
import pandas as pd

from core.exact import CapturedStack, DenseStack
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
    attentions: np.ndarray | DenseStack | CapturedStack,
    tokens: Sequence[Token],
    *,
    content_queries_only: bool = True,
) -> pd.DataFrame:
    """One row per (layer, head) with the statistics of `STAT_DESCRIPTIONS`.

    `attentions` is a whole `[layers, heads, n, n]` array or a stack read in pieces
    (`AttentionResult.pieces(stack)`, any length: rows are recomputed block by block for all
    heads of a layer, never the n² weights of a layer at once). Shares are averaged over query
    rows in float64; with `content_queries_only`, rows of special tokens are left out of the
    average (their attention is atypical and would blur every head's profile) unless nothing
    else is left. The first token has no previous and the last no next: those rows are left
    out of `to_previous` and `to_next`.
    """
    stack = attentions if isinstance(attentions, DenseStack | CapturedStack) else None
    stack = stack or DenseStack(np.asarray(attentions))
    n = stack.queries
    if len(tokens) != n or stack.keys != n:
        raise ValueError(f"{len(tokens)} tokens for attention over {stack.shape[2:]} positions.")
    special = np.array([t.is_special for t in tokens], dtype=bool)
    punctuation = np.array(
        [not t.is_special and is_punctuation(t.text) for t in tokens], dtype=bool
    )
    rows = ~special if content_queries_only and (~special).any() else np.ones(n, dtype=bool)
    per_row = stack.row_values(
        ("entropy", "mean_distance", "to_self", "to_previous", "to_next"),
        key_sets={"to_special": special, "to_punctuation": punctuation},
    )
    frame: dict[str, np.ndarray] = {}
    for name in STAT_DESCRIPTIONS:
        values = per_row[name][..., rows].astype(np.float64)
        defined = ~np.isnan(values)
        with np.errstate(invalid="ignore", divide="ignore"):
            frame[name] = (np.where(defined, values, 0.0).sum(-1) / defined.sum(-1)).ravel()
    layers, heads = stack.shape[:2]
    layer_ids, head_ids = np.meshgrid(np.arange(layers), np.arange(heads), indexing="ij")
    return pd.DataFrame({"layer": layer_ids.ravel(), "head": head_ids.ravel(), **frame})
