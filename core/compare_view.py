"""How matrices of one text drawn side by side find each other's cells: before and after a
replacement through the word alignment, two models' tokenizations through character offsets;
and the signed pooling that keeps a sparse difference visible in a long overview.

A panel's rows are display units (tokens, merged words or pooled blocks). Each row maps to a
*link unit* (a word unit of `WordAlignment`, or a character of the text) and each link unit
back to a row, so a row of one panel finds its counterpart in another as
``other.unit_rows[this.row_units[row]]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.pooling import block_edges
from core.tokens import Token


def token_units(groups: Sequence[Sequence[int]], n_tokens: int) -> np.ndarray:
    """int64 `[n_tokens]`: the unit (index of `groups`, e.g. `WordAlignment.before`) holding
    each token position, -1 for a token in none."""
    units = np.full(n_tokens, -1, dtype=np.int64)
    for unit, positions in enumerate(groups):
        units[list(positions)] = unit
    return units


def character_units(tokens: Sequence[Token]) -> tuple[np.ndarray, int]:
    """int64 `[n_tokens]` link units of two tokenizations of one text, and how many there are.

    Unit 0 is before the text; unit ``c + 1`` is character `c` (a pair's second segment
    counted after the first's end). An ordinary token's unit is the character it starts at, so
    two models' tokens covering the same character meet whatever their tokenizers; a special
    token's is the character after the ordinary token before it (unit 0 for a leading [CLS]),
    a unit no ordinary token takes, so a [SEP] never stands in for the next word.
    """
    tokens = list(tokens)
    first_length = max((t.end for t in tokens if t.segment == 0 and not t.is_special), default=0)

    def offset(token: Token) -> int:
        return first_length + 2 if token.segment == 1 else 1

    units = np.empty(len(tokens), dtype=np.int64)
    after_previous = 0
    for i, token in enumerate(tokens):
        if token.is_special:
            units[i] = after_previous
        else:
            units[i] = token.start + offset(token)
            after_previous = token.end + offset(token)
    total = int(max(units.max(initial=0), after_previous)) + 1
    return units, total


def row_units(groups: Sequence[Sequence[int]], units_of_tokens: np.ndarray) -> list[int]:
    """The link unit of each display row (`groups`: its token positions): its first token's
    that has one (-1: none)."""
    rows = []
    for positions in groups:
        linked = [int(units_of_tokens[p]) for p in positions if units_of_tokens[p] >= 0]
        rows.append(linked[0] if linked else -1)
    return rows


def unit_rows(rows_of_units: Sequence[int], n_units: int) -> list[int]:
    """The row of each link unit: the first row mapped to it, else the row of the nearest
    earlier unit (the nearest later one for units before every row); -1 with no rows."""
    found = [-1] * n_units
    for row, unit in enumerate(rows_of_units):
        if 0 <= unit < n_units and found[unit] < 0:
            found[unit] = row
    previous = next((r for r in found if r >= 0), -1)
    for unit in range(n_units):
        if found[unit] < 0:
            found[unit] = previous
        else:
            previous = found[unit]
    return found


def pooled_row_units(rows_of_units: Sequence[int], size: int) -> list[int]:
    """`row_units` of rows pooled into at most `size` blocks (`core.pooling.block_edges`):
    each block's first row's unit."""
    edges = block_edges(len(rows_of_units), size)
    return [int(rows_of_units[start]) for start in edges[:-1]]
