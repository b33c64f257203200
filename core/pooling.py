"""Long inputs drawn whole: block-averaged overviews (NaN cells left out), their axis labels,
a detail window and the thumbnail size that keeps an all-heads grid small."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np


def pool_matrix(matrix: np.ndarray, size: int) -> np.ndarray:
    """Block-average the last two axes of `[..., n, k]` down to at most `size x size`.

    An axis of length <= `size` is kept as is, so the result is exact (a float64 copy) when
    `n, k <= size`. Otherwise the axis is cut into `size` contiguous blocks whose lengths differ
    by at most one (block `b` covers ``[b*n//size, (b+1)*n//size)``). NaN cells are left out of
    a block's mean; an all-NaN block is NaN.

    Returns float64 `[..., min(n, size), min(k, size)]`.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    a = np.asarray(matrix)
    if a.ndim < 2:
        raise ValueError(f"matrix must have at least 2 axes, got shape {a.shape}")
    *lead, n, k = a.shape
    flat = a.reshape(-1, n, k)
    pooled = np.empty((flat.shape[0], min(n, size), min(k, size)))
    # A few matrices at a time: a whole 512-token BERT-base stack in float64 with its NaN
    # masks would be several 300 MB temporaries; chunks keep them around 16 MB.
    step = max(1, 2**21 // max(1, n * k))
    for start in range(0, flat.shape[0], step):
        pooled[start : start + step] = _pool_chunk(flat[start : start + step], size)
    return pooled.reshape(*lead, *pooled.shape[1:])


def _pool_chunk(chunk: np.ndarray, size: int) -> np.ndarray:
    """`pool_matrix` of `[m, n, k]`."""
    values = chunk.astype(np.float64)
    finite = np.isfinite(values)
    sums = np.where(finite, values, 0.0)
    counts = finite.astype(np.float64)
    # Sum values and counts per block on both axes, then divide once, so a block's mean is
    # over its own non-NaN cells rather than a mean of per-axis means.
    for axis in (-2, -1):
        length = values.shape[axis]
        if length > size:
            starts = (np.arange(size) * length) // size
            sums = np.add.reduceat(sums, starts, axis=axis)
            counts = np.add.reduceat(counts, starts, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = sums / counts
    return np.where(counts > 0, pooled, np.nan)


def pool_signed_max(matrix: np.ndarray, size: int) -> np.ndarray:
    """Block-pool the last two axes of `[..., n, k]` to at most `size` × `size` keeping each
    block's value of largest magnitude, sign included (blocks as `pool_matrix`).

    A mean would dilute one changed cell among a block's unchanged ones (a single ±0.04 in an
    8 × 8 block reads as ±0.0006); the signed maximum keeps it. NaN cells are left out; an
    all-NaN block is NaN. Returns float64 `[..., min(n, size), min(k, size)]`.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    values = np.asarray(matrix, dtype=np.float64)
    if values.ndim < 2:
        raise ValueError(f"matrix must have at least 2 axes, got shape {values.shape}")
    high, low = values, values
    for axis in (-2, -1):
        length = values.shape[axis]
        if length > size:
            starts = block_edges(length, size)[:-1]
            # fmax / fmin skip NaN unless a whole block is NaN.
            high = np.fmax.reduceat(high, starts, axis=axis)
            low = np.fmin.reduceat(low, starts, axis=axis)
    with np.errstate(invalid="ignore"):
        return np.where(-low > high, low, high)


def block_edges(n: int, size: int) -> np.ndarray:
    """Start positions of the `min(n, size)` blocks `pool_matrix` averages over, plus `n`.

    Block `b` covers positions `[edges[b], edges[b + 1])`, exactly as `pool_matrix`
    cuts an axis of length `n` into `size` blocks.
    """
    blocks = min(n, size)
    return np.array([b * n // blocks for b in range(blocks + 1)])


def pool_keys(weights: np.ndarray, size: int) -> np.ndarray:
    """Average the last axis of `[..., k]` down to at most `size` blocks (as `block_edges`).

    Returns float64 `[..., min(k, size)]`; used where one query's attention over a long input
    is drawn per head (the mask profile), which pools keys but keeps every head. NaN cells are
    left out of a block's mean, as in `pool_matrix`, which does the work on a one-row matrix.
    """
    return pool_matrix(np.asarray(weights)[..., None, :], size)[..., 0, :]


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
