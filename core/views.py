"""Preparing a matrix for display: hiding special tokens and merging word pieces."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.tokens import Token, word_groups
from core.transforms import drop_positions, merge_groups


@dataclass(frozen=True)
class DisplayMatrix:
    """What a view draws: `matrix` `[..., m, m]` over `labels`, each unit covering `groups[u]`
    (token positions of the input), plus the caption notes saying what was changed."""

    matrix: np.ndarray
    labels: list[str]
    groups: list[list[int]]
    notes: list[str]

    def unit_of(self, position: int) -> int | None:
        """Display unit that holds input position `position` (None if it was hidden)."""
        return next((u for u, g in enumerate(self.groups) if position in g), None)


def prepare_display(
    matrix: np.ndarray,
    tokens: Sequence[Token],
    *,
    hide_special: bool = False,
    merge_words: bool = False,
) -> DisplayMatrix:
    """Apply the display options to `matrix` `[..., n, n]` over `tokens`.

    Merging sums over keys and averages over queries within a word; hiding drops special
    tokens from both axes and renormalises each row over what is left. Rows that are NaN
    (not computed, e.g. flow limited to some tokens) stay NaN.
    """
    tokens = list(tokens)
    groups = word_groups(tokens) if merge_words else [[t.index] for t in tokens]
    labels = [_group_label(tokens, g) for g in groups]
    notes: list[str] = []
    nan_rows = np.isnan(matrix).all(axis=-1)
    values = np.nan_to_num(matrix)
    if merge_words:
        values = merge_groups(values, groups)
        nan_rows = merge_groups(nan_rows[..., None] * np.ones_like(matrix), groups)[..., 0] > 0
        notes.append(
            "Word pieces merged into words: attention to a word is the sum over its pieces, "
            "attention from a word is the mean over its pieces."
        )
    if hide_special:
        special = [u for u, g in enumerate(groups) if all(tokens[i].is_special for i in g)]
        if special and len(special) < len(groups):
            values, keep = drop_positions(values, special, renormalize=True)
            nan_rows = nan_rows[..., keep]
            groups = [groups[u] for u in keep]
            labels = [labels[u] for u in keep]
            notes.append(
                "Special tokens hidden; each row is renormalised to sum to 1 over the tokens shown."
            )
    values = values.astype(np.float64)
    values[nan_rows] = np.nan
    return DisplayMatrix(values, labels, groups, notes)


def _group_label(tokens: list[Token], group: list[int]) -> str:
    return "".join(tokens[i].text for i in group).replace("␣", "") or tokens[group[0]].text


def block_edges(n: int, size: int) -> np.ndarray:
    """Start positions of the `min(n, size)` blocks `pool_matrix` averages over, plus `n`.

    Block `b` covers positions `[edges[b], edges[b + 1])`, exactly as `core.charts.pool_matrix`
    cuts an axis of length `n` into `size` blocks.
    """
    blocks = min(n, size)
    return np.array([b * n // blocks for b in range(blocks + 1)])


def pool_keys(weights: np.ndarray, size: int) -> np.ndarray:
    """Average the last axis of `[..., k]` down to at most `size` blocks (as `block_edges`).

    Returns float64 `[..., min(k, size)]`; used where one query's attention over a long input
    is drawn per head (the mask profile), which pools keys but keeps every head.
    """
    values = np.asarray(weights, dtype=np.float64)
    k = values.shape[-1]
    if k <= size:
        return values.copy()
    edges = block_edges(k, size)
    return np.add.reduceat(values, edges[:-1], axis=-1) / np.diff(edges)


def block_labels(labels: Sequence[str], size: int) -> list[str]:
    """Axis labels for a pooled overview: "first…last (i–j)" for each block of positions."""
    edges = block_edges(len(labels), size)
    result = []
    for start, stop in itertools.pairwise(edges):
        if stop - start == 1:
            result.append(f"{labels[start]} ({start})")
        else:
            result.append(f"{labels[start]}…{labels[stop - 1]} ({start}–{stop - 1})")
    return result


def window(n: int, center: int, width: int) -> tuple[int, int]:
    """A `[start, stop)` range of at most `width` positions of `0..n-1`, centred on `center`."""
    width = max(1, min(width, n))
    start = min(max(0, center - width // 2), n - width)
    return start, start + width


def thumbnail_size(
    layers: int, heads: int, n: int, *, budget: int = 40_000, largest: int = 48
) -> int:
    """Side of each head's thumbnail so an all-heads grid stays within `budget` cells.

    Short inputs are drawn whole (side `n`); long ones are averaged down, e.g. 144 heads of a
    512-token input get 16×16 thumbnails (36,864 cells instead of 37.7 million).
    """
    fitting = int((budget / max(1, layers * heads)) ** 0.5)
    return max(4, min(n, largest, fitting))
