"""Positions to mask or replace: the words a replacement may change, the tokens a visitor may
mask, each mask's ranked predictions as export rows and how a masked position attends."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.pooling import block_labels, pool_keys
from core.predictions import Prediction
from core.tokens import Token, word_groups


def replaceable_words(tokens: Sequence[Token]) -> dict[int, str]:
    """`{word_index: word}` of the first text's words (a replacement's candidates), in order."""
    words: dict[int, str] = {}
    for group in word_groups(list(tokens)):
        first = tokens[group[0]]
        if first.is_special or first.segment != 0 or first.word_index is None:
            continue
        words[first.word_index] = "".join(tokens[i].text for i in group)
    return words


def maskable_positions(tokens: Sequence[Token]) -> list[int]:
    """Positions a visitor may mask: every token that is not special."""
    return [token.index for token in tokens if not token.is_special]


def prediction_rows(
    positions: Sequence[int], predictions: Sequence[Sequence[Prediction]]
) -> list[dict[str, object]]:
    """One row per (mask, rank) for the predictions export."""
    return [
        {"mask": m + 1, "position": pos, "rank": r + 1, "token": p.token, "score": p.score}
        for m, (pos, ranked) in enumerate(zip(positions, predictions, strict=False))
        for r, p in enumerate(ranked)
    ]


def mask_profile(
    attentions: np.ndarray, position: int, labels: Sequence[str], limit: int, blocks: int
) -> tuple[np.ndarray, list[str]]:
    """How `position` attends in every layer and head: `[layers, heads, k]` and key labels.

    Beyond `limit` keys they are averaged into at most `blocks` blocks (one cell per head and
    key would be 70,000 cells at 512 tokens).
    """
    profile = np.asarray(attentions[:, :, position, :])
    if len(labels) <= limit:
        return profile, list(labels)
    return pool_keys(profile, blocks), block_labels(labels, blocks)
