"""The display options applied to an attention matrix: word pieces merged into words, special
tokens hidden (rows renormalised), cells a causal model never computes left empty.

`merge_groups` and `drop_positions` do the arithmetic on any `[..., n, n]` array;
`prepare_display` (and `prepare_cross_display` for cross attention) apply both to a matrix
over its tokens and say what changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import PositionOutOfRangeError
from core.tokens import Token, word_groups


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


WITHOUT_FIRST_NOTE = "without the first token, rows renormalised"
"""How a legend or caption states that `without_first_token` was applied."""


def without_first_token(matrix: np.ndarray) -> np.ndarray:
    """float64 copy of `[..., q, k]` weights with key 0 left out and each row renormalised.

    Most heads of many models park most of their weight on the first token (an attention
    sink), which flattens every other cell to the bottom of the colour scale; this shows how
    the rest is shared. Column 0 becomes NaN (drawn empty) rather than being removed, so rows,
    columns, labels and masks keep their positions. Each row is divided by its sum over keys
    1..k-1, counting only finite cells: cells never computed (NaN, e.g. a causal model's future
    keys) stay NaN, and a row with nothing left (sum 0 or no finite cell, e.g. a causal
    model's first query) becomes NaN. Raises ValueError for fewer than 2 axes.
    """
    values = np.array(matrix, dtype=np.float64)
    if values.ndim < 2:
        raise ValueError(f"matrix must be [..., q, k], got shape {values.shape}")
    values[..., 0] = np.nan
    rest = np.nansum(values, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        renormalised = values / np.where(rest > 0, rest, np.nan)
    return renormalised


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
