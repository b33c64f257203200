"""Reshaping attention for display: merging word pieces, hiding tokens, choosing heads."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.errors import PositionOutOfRangeError


def merge_groups(attentions: np.ndarray, groups: Sequence[Sequence[int]]) -> np.ndarray:
    """Aggregate token positions into groups (e.g. word pieces into words).

    Keys are summed within a group (a word receives what its pieces receive) and queries are
    averaged (a word looks where its pieces look on average), so rows still sum to 1.
    `attentions` is `[..., n, n]`; returns `[..., g, g]` for `g = len(groups)`.
    """
    n = attentions.shape[-1]
    membership = np.zeros((len(groups), n), dtype=np.float64)
    for g, positions in enumerate(groups):
        if not positions:
            raise ValueError("Every group needs at least one position.")
        membership[g, list(positions)] = 1.0
    query_mean = membership / membership.sum(axis=1, keepdims=True)
    merged = query_mean @ attentions.astype(np.float64) @ membership.T
    return merged.astype(attentions.dtype, copy=False)


def drop_positions(
    attentions: np.ndarray, drop: Sequence[int], *, renormalize: bool = True
) -> tuple[np.ndarray, list[int]]:
    """Remove positions (e.g. special tokens) from both axes of `[..., n, n]` attention.

    With `renormalize`, each remaining row is rescaled to sum to 1, so it reads as "of the
    attention that went to the shown tokens, this share went here". Rows whose whole mass went
    to dropped positions become zeros. Returns the reduced array and the kept positions.
    """
    n = attentions.shape[-1]
    dropped = set(drop)
    if any(not 0 <= p < n for p in dropped):
        raise PositionOutOfRangeError(f"Positions to hide must be within 0..{n - 1}.")
    keep = [i for i in range(n) if i not in dropped]
    reduced = attentions[..., keep, :][..., :, keep]
    if renormalize:
        sums = reduced.sum(axis=-1, keepdims=True)
        reduced = np.divide(reduced, sums, out=np.zeros_like(reduced), where=sums > 0)
    return reduced, keep


def select_heads(attentions: np.ndarray, layer: int, heads: Sequence[int] | None) -> np.ndarray:
    """Heads of one layer, `[heads, n, n]`; `heads=None` means all of them.

    Negative `layer` counts from the top as in Python indexing.
    """
    layers, num_heads = attentions.shape[:2]
    if not -layers <= layer < layers:
        raise PositionOutOfRangeError(
            f"Layer {layer} does not exist: the model has layers 0 to {layers - 1}."
        )
    chosen = list(range(num_heads)) if heads is None else list(heads)
    bad = [h for h in chosen if not 0 <= h < num_heads]
    if bad or not chosen:
        raise PositionOutOfRangeError(
            f"Head {bad[0] if bad else '(none)'} does not exist: "
            f"the model has heads 0 to {num_heads - 1}."
        )
    return attentions[layer, chosen]


def mean_of_heads(attentions: np.ndarray, layer: int) -> np.ndarray:
    """Average of all heads of one layer, `[n, n]`."""
    return select_heads(attentions, layer, None).mean(axis=0)
