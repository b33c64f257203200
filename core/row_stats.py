"""Per-row statistics of attention weights, for any block of rows (pure NumPy).

Every function takes a block of rows `weights` `[..., rows, keys]` (weights a model never
computes as 0 or NaN, both counted as no attention) and the query `positions` `[rows]` of those
rows, and returns one value per row `[..., rows]`. Blocks of rows can come from a dense
`[layers, heads, n, n]` array or be recomputed a few at a time from a capture
(`core.exact.CapturedStack.statistics`), so whole-head summaries of long inputs never hold n².
"""

from __future__ import annotations

import numpy as np

ROW_STATISTICS = {
    "to_first": "Share of attention a query puts on the first token.",
    "entropy": "Entropy of a query's attention in bits (0 = all on one token).",
    "mean_distance": "Mean |query − key| distance in tokens, weighted by attention.",
    "local_share": "Share of attention on keys within the local window of the query.",
}
DEFAULT_LOCAL_WINDOW = 8
"""Keys with |query − key| < this count as local for `local_share`."""


def _clean(weights: np.ndarray) -> np.ndarray:
    return np.nan_to_num(np.asarray(weights, dtype=np.float64), nan=0.0)


def _distance(positions: np.ndarray, keys: int) -> np.ndarray:
    """`[rows, keys]` absolute distances between each row's query and every key."""
    return np.abs(np.asarray(positions)[:, None] - np.arange(keys)[None, :]).astype(np.float64)


def entropy_bits(weights: np.ndarray) -> np.ndarray:
    """`-Σ w log2 w` per row."""
    w = _clean(weights)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(w > 0, w * np.log2(np.where(w > 0, w, 1.0)), 0.0)
    return -plogp.sum(-1)


def mean_distance(weights: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """`Σ_j w_ij |i − j|` per row `i`."""
    w = _clean(weights)
    return (w * _distance(positions, w.shape[-1])).sum(-1)


def first_token_share(weights: np.ndarray) -> np.ndarray:
    """The weight on key 0 per row."""
    return _clean(np.asarray(weights)[..., 0])


def local_share(
    weights: np.ndarray, positions: np.ndarray, window: int = DEFAULT_LOCAL_WINDOW
) -> np.ndarray:
    """The weight on keys `j` with `|i − j| < window` per row `i`."""
    w = _clean(weights)
    return (w * (_distance(positions, w.shape[-1]) < window)).sum(-1)


def _zeroed(weights: np.ndarray) -> np.ndarray:
    """The weights in their own float dtype with NaN (never computed) as 0, in one pass."""
    weights = np.asarray(weights)
    return np.where(weights > 0, weights, 0.0)


def recent_share(weights: np.ndarray, positions: np.ndarray, window: int) -> np.ndarray:
    """The weight on keys `i − window < j ≤ i` per row `i`: the query and the `window − 1`
    keys before it (a causal, streaming window; equal to `local_share` for causal models).

    Reads only the band of keys the block's window can reach, so it costs rows × window.
    """
    positions = np.asarray(positions)
    first = max(0, int(positions.min()) - window + 1)
    stop = min(np.shape(weights)[-1], int(positions.max()) + 1)
    band = _zeroed(np.asarray(weights)[..., first:stop])
    behind = positions[:, None] - np.arange(first, max(first, stop))[None, :]
    return np.where((behind >= 0) & (behind < window), band, 0.0).sum(-1, dtype=np.float64)


def entropy_without_first(weights: np.ndarray) -> np.ndarray:
    """Entropy in bits of the weights off key 0, renormalised to sum to 1, per row; NaN where
    a row puts no weight off key 0 (a causal model's first query), as it is then undefined.

    With `s = Σ_{j≥1} w_j`: `−Σ (w_j/s) log2(w_j/s) = −(Σ w_j log2 w_j) / s + log2 s`, so the
    block is read once in its own dtype (float32) and summed in float64.
    """
    rest = np.asarray(weights)[..., 1:]
    weighed = rest > 0  # False for NaN (never computed) and 0
    total = np.sum(rest, axis=-1, dtype=np.float64, where=weighed)
    plogp = np.log2(rest, out=np.zeros_like(rest), where=weighed)
    spread = -np.sum(np.multiply(rest, plogp, out=plogp, where=weighed), -1, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, spread / total + np.log2(total), np.nan)


def row_statistics(
    weights: np.ndarray, positions: np.ndarray, window: int = DEFAULT_LOCAL_WINDOW
) -> dict[str, np.ndarray]:
    """Every statistic of `ROW_STATISTICS` per row: `[..., rows, keys]` -> `[..., rows]` each."""
    return {
        "to_first": first_token_share(weights),
        "entropy": entropy_bits(weights),
        "mean_distance": mean_distance(weights, positions),
        "local_share": local_share(weights, positions, window),
    }
