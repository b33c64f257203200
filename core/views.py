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
    (token positions of the input), plus the caption notes saying what was changed.

    Cross attention (`prepare_cross_display`) is `[..., m, p]`: rows are `labels`/`groups` of
    the target, columns `key_labels`/`key_groups` of the source. For self-attention those two
    are None: the columns are the rows' tokens."""

    matrix: np.ndarray
    labels: list[str]
    groups: list[list[int]]
    notes: list[str]
    key_labels: list[str] | None = None
    key_groups: list[list[int]] | None = None

    @property
    def column_labels(self) -> list[str]:
        return self.labels if self.key_labels is None else self.key_labels

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


def prepare_cross_display(
    matrix: np.ndarray,
    query_tokens: Sequence[Token],
    key_tokens: Sequence[Token],
    *,
    hide_special: bool = False,
    merge_words: bool = False,
) -> DisplayMatrix:
    """`prepare_display` for a `[..., q, k]` matrix whose rows and columns are different texts.

    Cross attention has target (decoder) tokens as queries and source tokens as keys, so each
    axis is merged and hidden with its own tokens: keys summed and queries averaged within a
    word, special tokens dropped (rows renormalised over the keys shown). A side that would
    lose every unit keeps its special tokens.
    """
    query_tokens, key_tokens = list(query_tokens), list(key_tokens)
    q_groups = _groups(query_tokens, merge_words)
    k_groups = _groups(key_tokens, merge_words)
    values = np.nan_to_num(np.asarray(matrix, dtype=np.float64))
    notes: list[str] = []
    if merge_words:
        # [..., q, k] -> [..., m, p]: mean over a word's query pieces, sum over its key pieces.
        values = _membership(q_groups, len(query_tokens), mean=True) @ values
        values = values @ _membership(k_groups, len(key_tokens), mean=False).T
        notes.append(
            "Word pieces merged into words: attention to a word is the sum over its pieces, "
            "attention from a word is the mean over its pieces."
        )
    if hide_special:
        keep_q = _shown_units(q_groups, query_tokens)
        keep_k = _shown_units(k_groups, key_tokens)
        if len(keep_q) < len(q_groups) or len(keep_k) < len(k_groups):
            values = values[..., keep_q, :][..., keep_k]
            sums = values.sum(axis=-1, keepdims=True)
            values = np.divide(values, sums, out=np.zeros_like(values), where=sums > 0)
            q_groups = [q_groups[u] for u in keep_q]
            k_groups = [k_groups[u] for u in keep_k]
            notes.append(
                "Special tokens hidden; each row is renormalised to sum to 1 over the tokens shown."
            )
    return DisplayMatrix(
        values,
        [_group_label(query_tokens, g) for g in q_groups],
        q_groups,
        notes,
        key_labels=[_group_label(key_tokens, g) for g in k_groups],
        key_groups=k_groups,
    )


def _groups(tokens: list[Token], merge_words: bool) -> list[list[int]]:
    return word_groups(tokens) if merge_words else [[t.index] for t in tokens]


def _membership(groups: list[list[int]], n: int, *, mean: bool) -> np.ndarray:
    """`[units, n]`: 1 (or 1/size with `mean`) where position `j` belongs to unit `u`."""
    membership = np.zeros((len(groups), n), dtype=np.float64)
    for unit, positions in enumerate(groups):
        membership[unit, positions] = 1.0 / len(positions) if mean else 1.0
    return membership


def _shown_units(groups: list[list[int]], tokens: list[Token]) -> list[int]:
    shown = [u for u, g in enumerate(groups) if not all(tokens[i].is_special for i in g)]
    return shown or list(range(len(groups)))


def causal_display_mask(
    groups: Sequence[Sequence[int]], key_groups: Sequence[Sequence[int]] | None = None
) -> np.ndarray:
    """bool `[m, p]`: display cells a causal model cannot see, to be left empty.

    A cell is hidden when every key position of its column unit comes after every query
    position of its row unit (merged words and hidden tokens keep the input's order, so this is
    the upper triangle above the diagonal of units).
    """
    columns = groups if key_groups is None else key_groups
    last_query = np.array([max(g) for g in groups], dtype=np.int64)
    first_key = np.array([min(g) for g in columns], dtype=np.int64)
    return first_key[None, :] > last_query[:, None]


def blank_causal(attentions: np.ndarray) -> np.ndarray:
    """float64 copy of `[..., n, n]` with NaN where the key comes after the query.

    A causal model never computes those cells; NaN keeps them out of pooled thumbnails' means
    and leaves them undrawn, instead of zeros that look like measured "no attention".
    """
    n = attentions.shape[-1]
    future = np.triu(np.ones((n, n), dtype=bool), 1)
    return np.where(future, np.nan, np.asarray(attentions, dtype=np.float64))


def pad_square(matrix: np.ndarray) -> np.ndarray:
    """`[..., m, p]` padded with NaN (drawn empty) at the bottom or right to `[..., s, s]`.

    `s = max(m, p)`: the all-heads grid draws square thumbnails; cross attention has `m` target
    rows and `p` source columns.
    """
    m, p = matrix.shape[-2:]
    side = max(m, p)
    padding = [(0, 0)] * (matrix.ndim - 2) + [(0, side - m), (0, side - p)]
    return np.pad(np.asarray(matrix, dtype=np.float64), padding, constant_values=np.nan)


def _group_label(tokens: list[Token], group: list[int]) -> str:
    return "".join(tokens[i].text for i in group).replace("␣", "") or tokens[group[0]].text


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
