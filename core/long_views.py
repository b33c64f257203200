"""Display data of one head at any length, read in pieces from an `AttentionResult`.

An input of thousands of tokens has no whole `[layers, heads, n, n]` array within memory
(`AttentionResult.attentions` raises `AttentionTooLargeError` beyond its budget). The views
here read only what they draw: a pooled overview of one layer's head (`result.pooled`), an
exact window of it (`result.tile`) and the top weights of one query (`result.row`).

Conventions: `head` is a head's number or None for the mean of the layer's heads; weights the
model never computes (future tokens, keys outside a sliding window) are NaN, drawn empty.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from core.attention import AttentionResult
from core.errors import InvalidSelectionError
from core.exact import CapturedStack, check_index
from core.families import SELF

Reduce = Literal["mean", "max"]
REDUCES: tuple[Reduce, ...] = ("mean", "max")
OVERVIEW_BLOCKS = 256
"""Blocks per side of a pooled overview (fewer for shorter inputs)."""
DETAIL_TOKENS = 64
"""Rows and columns of the exact detail window."""
TOP_WEIGHTS = 20
"""Keys listed for the selected token's row."""


@dataclass(frozen=True)
class Overview:
    """One head pooled into blocks: `grid` float32 `[row blocks, col blocks]` (NaN: no weight
    of the block is computed), block `b` of rows is `row_edges[b]:row_edges[b + 1]`."""

    grid: np.ndarray
    row_edges: np.ndarray
    col_edges: np.ndarray
    reduce: Reduce
    head: int | None

    @property
    def row_labels(self) -> list[str]:
        return block_labels(self.row_edges)

    @property
    def col_labels(self) -> list[str]:
        return block_labels(self.col_edges)

    @property
    def what(self) -> str:
        """How a block's value is made, for a title or a legend."""
        if self.reduce == "mean":
            of = "head" if self.head is not None else "mean of heads"
            return f"mean of each block's computed weights ({of})"
        of = "" if self.head is not None else ", any head"
        return f"maximum of each block's computed weights{of}"


@dataclass(frozen=True)
class Detail:
    """An exact window of one head: `matrix` float32 `[len(rows), len(cols)]`, NaN where the
    model computes no weight."""

    matrix: np.ndarray
    rows: range
    cols: range


def block_labels(edges: np.ndarray) -> list[str]:
    """ "first–last" token positions of each block between `edges` (one position: itself)."""
    return [
        str(start) if stop - start == 1 else f"{start}–{stop - 1}"
        for start, stop in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True)
    ]


def whole_fits(result: AttentionResult, stack: str = SELF) -> bool:
    """Whether `result.stack(stack)` gives the whole array within the result's budget."""
    held = result.attention_stacks[stack]
    return not isinstance(held, CapturedStack) or held.dense_nbytes <= result.budget


def max_whole_tokens(result: AttentionResult) -> int:
    """Longest input whose whole self-attention array fits the result's budget (float32)."""
    per_token2 = 4 * result.num_layers * result.num_heads
    return math.isqrt(result.budget // per_token2)


def _heads(result: AttentionResult, head: int | None) -> list[int]:
    if head is None:
        return list(range(result.num_heads))
    return [check_index(head, result.num_heads, "head")]


def pooled_overview(
    result: AttentionResult,
    layer: int,
    head: int | None,
    size: int = OVERVIEW_BLOCKS,
    reduce: Reduce = "mean",
) -> Overview:
    """The self-attention of `layer`, `head` (None: mean of heads) pooled into `size` blocks.

    Mean pooling of the mean of heads is the mean of each head's block means (every head of a
    layer computes the same cells); max pooling of it is the largest weight of any head.
    """
    if reduce not in REDUCES:
        raise InvalidSelectionError(f"Pool by 'mean' or 'max', not '{reduce}'.")
    grids = []
    for each in _heads(result, head):
        grid, row_edges, col_edges = result.pooled(layer, each, size, reduce)
        grids.append(grid)
    stacked = np.stack(grids)
    with np.errstate(all="ignore"):
        grid = stacked.mean(0) if reduce == "mean" else stacked.max(0)
    return Overview(grid.astype(np.float32), row_edges, col_edges, reduce, head)


def window_start(centre: int, length: int, size: int = DETAIL_TOKENS) -> int:
    """First position of a `size` window on `length` positions with `centre` in its middle."""
    return max(0, min(centre - size // 2, length - size))


def detail_window(
    result: AttentionResult,
    layer: int,
    head: int | None,
    row_start: int,
    col_start: int,
    size: int = DETAIL_TOKENS,
) -> Detail:
    """Exact weights of rows and columns `[start, start + size)` (clipped to the input)."""
    n = len(result.tokens)
    if size < 1:
        raise InvalidSelectionError("A detail window needs at least one token.")
    rows, cols = (_span(start, n, size) for start in (row_start, col_start))
    tiles = [result.tile(layer, each, rows, cols) for each in _heads(result, head)]
    return Detail(np.mean(tiles, axis=0, dtype=np.float32), rows, cols)


def _span(start: int, length: int, size: int) -> range:
    """`size` positions from `start`, moved back to end within `length` (fewer if shorter)."""
    first = max(0, min(start, length - size))
    return range(first, min(length, first + size))


def query_row(result: AttentionResult, layer: int, head: int | None, query: int) -> np.ndarray:
    """Float32 `[keys]`: one query's exact weights in `head` (None: mean of heads)."""
    rows = [result.row(layer, each, query) for each in _heads(result, head)]
    return np.mean(rows, axis=0, dtype=np.float32)


def top_weights(row: np.ndarray, labels: Sequence[str], count: int = TOP_WEIGHTS) -> pd.DataFrame:
    """The `count` largest computed weights of a row `[keys]`, largest first.

    Columns: ``position`` (int), ``token`` (str), ``weight`` (float). Keys never computed
    (NaN) are left out, not counted as zero.
    """
    if len(labels) != len(row):
        raise InvalidSelectionError(f"{len(row)} weights but {len(labels)} token labels.")
    computed = np.flatnonzero(np.isfinite(row))
    order = computed[np.argsort(-row[computed], kind="stable")][:count]
    return pd.DataFrame(
        {
            "position": order.astype(np.int64),
            "token": [labels[i] for i in order],
            "weight": row[order].astype(np.float64),
        }
    )
