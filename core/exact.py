"""One attention stack read in pieces: rows, tiles, pooled overviews and statistics.

Two kinds of stack answer the same questions:

* `DenseStack` wraps a float32 `[layers, heads, q, k]` array (short inputs, encoder-decoder
  decoder stacks, results built by hand);
* `CapturedStack` holds what `core.capture` recorded per layer (queries, keys once per key-value
  group, scale, soft-cap, window, bias and each row's log-sum-exp) and recomputes any piece
  exactly in float32, in blocks of rows, never the layers × heads × n² tensor unless asked for
  and within `DENSE_BUDGET_BYTES`.

Conventions: `rows` and `cols` are `range`s of query and key positions. Weights a model never
computes (future tokens of a causal model, keys outside a sliding window) are NaN in `row`,
`tile` and `pooled`, and `computed` says where they are; the dense `attentions` array keeps the
model's own 0 there, so that every row sums to 1 as existing views expect.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import numpy as np
import torch

from core.capture import BLOCK_ELEMENTS, LayerCapture
from core.errors import AttentionTooLargeError, InvalidSelectionError, PositionOutOfRangeError
from core.row_stats import DEFAULT_LOCAL_WINDOW, row_statistics

DENSE_BUDGET_BYTES = 256 * 1024 * 1024
"""Largest dense `[layers, heads, q, k]` float32 array `attentions` builds (256 MB)."""

Reduce = Literal["mean", "max"]
RowStatistics = Callable[[np.ndarray, np.ndarray, int], dict[str, np.ndarray]]
"""`per_row(weights [heads, rows, keys], positions [rows], window)` -> `{name: [heads, rows]}`."""


def check_index(value: int, size: int, what: str, owner: str = "the result") -> int:
    """`value` as an index into `size` things, or `PositionOutOfRangeError` saying so."""
    index = operator.index(value)
    if not 0 <= index < size:
        raise PositionOutOfRangeError(
            f"{what.capitalize()} {index} does not exist: {owner} has {size} {what}s, "
            f"numbered 0 to {size - 1}."
        )
    return index


def _positions(span: range | Sequence[int], size: int, what: str) -> np.ndarray:
    positions = np.asarray(span, dtype=np.int64).reshape(-1)
    if positions.size and (positions.min() < 0 or positions.max() >= size):
        raise PositionOutOfRangeError(
            f"The {what}s {positions.min()}..{positions.max()} are outside the {size} {what}s "
            f"of this input (0 to {size - 1})."
        )
    return positions


def pooling_edges(length: int, size: int) -> np.ndarray:
    """`size + 1` block edges splitting `length` positions into `size` near-equal blocks
    (`size` is lowered to `length` for short inputs); block `b` is `edges[b]:edges[b+1]`."""
    if size < 1:
        raise InvalidSelectionError("A pooled overview needs at least one block.")
    size = min(size, length)
    return np.linspace(0, length, size + 1).round().astype(np.int64)


class _Stack:
    """What every stack answers; subclasses provide `_weights` and `_computed_block`."""

    num_layers: int
    num_heads: int
    queries: int
    keys: int

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.num_layers, self.num_heads, self.queries, self.keys)

    @property
    def dense_nbytes(self) -> int:
        """Bytes of the whole float32 `[layers, heads, q, k]` array."""
        return 4 * self.num_layers * self.num_heads * self.queries * self.keys

    def _check(self, layer: int, head: int | None = None) -> tuple[int, int | None]:
        layer = check_index(layer, self.num_layers, "layer")
        if head is not None:
            head = check_index(head, self.num_heads, "head")
        return layer, head

    def _weights(self, layer: int, heads: int | None, rows: np.ndarray, cols: np.ndarray):
        """Float32 `[len(rows), len(cols)]` for one head, `[heads, …]` for `heads=None`; NaN
        where not computed."""
        raise NotImplementedError

    def _computed_block(self, layer: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _keys_reached(self, layer: int, rows: np.ndarray) -> int:
        """How many leading keys a block of rows may compute (all, unless causal)."""
        return self.keys

    def row(self, layer: int, head: int, query: int) -> np.ndarray:
        """Float32 `[keys]`: the weights of query `query` in one head (NaN where not computed)."""
        layer, head = self._check(layer, head)
        query = check_index(query, self.queries, "query position")
        return self._weights(layer, head, np.array([query]), np.arange(self.keys))[0]

    def tile(self, layer: int, head: int, rows: range, cols: range) -> np.ndarray:
        """Float32 `[len(rows), len(cols)]` of one head (NaN where not computed)."""
        layer, head = self._check(layer, head)
        return self._weights(
            layer,
            head,
            _positions(rows, self.queries, "query position"),
            _positions(cols, self.keys, "key position"),
        )

    def computed(self, layer: int, rows: range, cols: range) -> np.ndarray:
        """Bool `[len(rows), len(cols)]`: True where the model computes a weight."""
        layer, _ = self._check(layer)
        return self._computed_block(
            layer,
            _positions(rows, self.queries, "query position"),
            _positions(cols, self.keys, "key position"),
        )

    def _row_blocks(self, heads: int = 1) -> Iterator[np.ndarray]:
        """Query positions in blocks of at most `BLOCK_ELEMENTS` weights for `heads` heads."""
        step = max(1, min(self.queries, BLOCK_ELEMENTS // max(1, heads * self.keys)))
        for start in range(0, self.queries, step):
            yield np.arange(start, min(self.queries, start + step))

    def pooled(
        self, layer: int, head: int, size: int = 256, reduce: Reduce = "mean"
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """An exact overview of one head: `(grid [rows, cols], row_edges, col_edges)`.

        Cell `(a, b)` is the mean (or max) of the weights the model computes in rows
        `row_edges[a]:row_edges[a+1]` and keys `col_edges[b]:col_edges[b+1]`; NaN where it
        computes none. The grid is `size × size` (fewer for inputs shorter than `size`).
        Rows are recomputed in blocks, so memory stays at one block whatever the length.
        """
        if reduce not in ("mean", "max"):
            raise InvalidSelectionError(f"Pool by 'mean' or 'max', not {reduce!r}.")
        layer, head = self._check(layer, head)
        row_edges = pooling_edges(self.queries, size)
        col_edges = pooling_edges(self.keys, size)
        shape = (len(row_edges) - 1, len(col_edges) - 1)
        totals = np.zeros(shape)
        counts = np.zeros(shape)
        maxima = np.full(shape, np.nan)
        cols = np.arange(self.keys)
        # Smaller blocks than the recomputation allows: the pooling temporaries are float64.
        for rows in self._row_blocks(heads=4):
            weights = self._weights(layer, head, rows, cols).astype(np.float64)
            bins = np.searchsorted(row_edges, rows, side="right") - 1
            seen = ~np.isnan(weights)
            if reduce == "mean":
                np.add.at(
                    totals,
                    bins,
                    np.add.reduceat(np.where(seen, weights, 0.0), col_edges[:-1], axis=1),
                )
                np.add.at(counts, bins, np.add.reduceat(seen, col_edges[:-1], axis=1))
            else:
                np.fmax.at(maxima, bins, np.fmax.reduceat(weights, col_edges[:-1], axis=1))
        if reduce == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                grid = np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)
        else:
            grid = maxima
        return grid.astype(np.float32), row_edges, col_edges

    def statistics(
        self, window: int = DEFAULT_LOCAL_WINDOW, per_row: RowStatistics = row_statistics
    ) -> dict[str, np.ndarray]:
        """Each statistic of `per_row` averaged over query rows, `[layers, heads]`.

        `per_row(weights [heads, rows, keys], positions [rows], window)` returns one
        `[heads, rows]` array per statistic (by default `core.row_stats.ROW_STATISTICS`); rows
        where a statistic is NaN (undefined) are left out of its mean. Computed one block of
        rows at a time for all heads of a layer.
        """
        sums: dict[str, np.ndarray] = {}
        counts: dict[str, np.ndarray] = {}
        for layer in range(self.num_layers):
            for rows in self._row_blocks(self.num_heads):
                # Keys no row of the block computes hold no weight: leave them out.
                cols = np.arange(self._keys_reached(layer, rows))
                weights = self._weights(layer, None, rows, cols)
                for name, values in per_row(weights, rows, window).items():
                    defined = ~np.isnan(values)
                    for totals, value in (
                        (sums, np.where(defined, values, 0.0)),
                        (counts, defined),
                    ):
                        totals.setdefault(name, np.zeros((self.num_layers, self.num_heads)))
                        totals[name][layer] += value.sum(-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return {
                name: np.where(counts[name] > 0, sums[name] / counts[name], np.nan) for name in sums
            }

    def dense(self, budget: int = DENSE_BUDGET_BYTES) -> np.ndarray:
        """The whole float32 `[layers, heads, q, k]` array, 0 where not computed."""
        raise NotImplementedError

    @property
    def nbytes(self) -> int:
        raise NotImplementedError


class DenseStack(_Stack):
    """A stack held whole: float32 `[layers, heads, q, k]`; `causal` marks the upper triangle
    as never computed (a windowed model's dense array cannot say more)."""

    def __init__(self, attentions: np.ndarray, causal: bool = False) -> None:
        self.array = attentions
        self.causal = causal
        self.num_layers, self.num_heads, self.queries, self.keys = attentions.shape

    def _computed_block(self, layer: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        if not self.causal:
            return np.ones((len(rows), len(cols)), dtype=bool)
        return cols[None, :] <= rows[:, None] + (self.keys - self.queries)

    def _keys_reached(self, layer: int, rows: np.ndarray) -> int:
        if not self.causal:
            return self.keys
        return min(self.keys, int(rows[-1]) + 1 + self.keys - self.queries)

    def _weights(self, layer: int, heads: int | None, rows: np.ndarray, cols: np.ndarray):
        picked = self.array[layer] if heads is None else self.array[layer, heads]
        values = picked[..., rows[:, None], cols[None, :]].astype(np.float32)
        return np.where(self._computed_block(layer, rows, cols), values, np.nan)

    def dense(self, budget: int = DENSE_BUDGET_BYTES) -> np.ndarray:
        return self.array

    @property
    def nbytes(self) -> int:
        return int(self.array.nbytes)


class CapturedStack(_Stack):
    """A self-attention stack kept as `core.capture.LayerCapture`s, one per layer."""

    def __init__(self, layers: Sequence[LayerCapture], budget: int = DENSE_BUDGET_BYTES) -> None:
        if not layers:
            raise InvalidSelectionError("A captured stack needs at least one layer.")
        self.layers = tuple(layers)
        self.budget = budget
        self.num_layers = len(self.layers)
        self.num_heads = self.layers[0].num_heads
        self.queries = self.keys = self.layers[0].length
        self._dense: np.ndarray | None = None
        self._dense_lock = threading.Lock()

    def __getstate__(self) -> dict:
        # Picklable (a cache may copy results between processes); the lock is per process.
        state = self.__dict__.copy()
        del state["_dense_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._dense_lock = threading.Lock()

    def _computed_block(self, layer: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        record = self.layers[layer]
        device = record.queries.device
        rows_t, cols_t = torch.from_numpy(rows).to(device), torch.from_numpy(cols).to(device)
        return record.allowed(rows_t, cols_t, 0).cpu().numpy()

    def _keys_reached(self, layer: int, rows: np.ndarray) -> int:
        record = self.layers[layer]
        if record.causal and record.mask is None:
            return min(self.keys, int(rows[-1]) + 1)
        return self.keys

    def _weights(self, layer: int, heads: int | None, rows: np.ndarray, cols: np.ndarray):
        record = self.layers[layer]
        device = record.queries.device
        rows_t = torch.from_numpy(rows).to(device)
        cols_t = torch.from_numpy(cols).to(device)
        with torch.inference_mode():
            if heads is not None:
                scores = record.scores(heads, rows_t, cols_t)
                lse = record.lse[heads, rows_t][:, None]
                allowed = record.allowed(rows_t, cols_t, heads)
            else:
                scores = torch.stack(
                    [record.scores(h, rows_t, cols_t) for h in range(record.num_heads)]
                )
                lse = record.lse[:, rows_t][..., None]
                allowed = record.allowed(rows_t, cols_t)
            weights = torch.exp(scores.sub_(lse)).masked_fill_(~allowed, float("nan"))
        return weights.cpu().numpy()

    def dense(self, budget: int | None = None) -> np.ndarray:
        budget = self.budget if budget is None else budget
        if self._dense is not None:
            return self._dense
        if self.dense_nbytes > budget:
            raise AttentionTooLargeError(
                f"The whole attention of this input ({self.num_layers} layers × "
                f"{self.num_heads} heads × {self.queries}² tokens) would take "
                f"{self.dense_nbytes / 2**20:,.0f} MB, over the {budget / 2**20:,.0f} MB budget. "
                "Read it in pieces instead: result.row(layer, head, query), "
                "result.tile(layer, head, rows, cols) or result.pooled(layer, head)."
            )
        with self._dense_lock:
            if self._dense is None:
                array = np.empty(self.shape, dtype=np.float32)
                cols = np.arange(self.keys)
                for layer in range(self.num_layers):
                    for rows in self._row_blocks(self.num_heads):
                        block = self._weights(layer, None, rows, cols)
                        array[layer, :, rows[0] : rows[-1] + 1] = np.nan_to_num(block, nan=0.0)
                self._dense = array
        return self._dense

    @property
    def nbytes(self) -> int:
        seen: set[int] = set()
        total = 0
        for record in self.layers:
            for tensor in (record.queries, record.keys, record.lse, record.bias, record.mask):
                # T5 hands every layer the same position bias: count shared storage once.
                if tensor is not None and tensor.data_ptr() not in seen:
                    seen.add(tensor.data_ptr())
                    total += tensor.numel() * tensor.element_size()
        return total + (0 if self._dense is None else int(self._dense.nbytes))

    @property
    def keys_per_query_head(self) -> int:
        """Query heads per key-value group (1 without grouped-query attention)."""
        return self.layers[0].group_size

    def window(self, layer: int) -> int | None:
        """The sliding window of one layer, None for global attention."""
        return self.layers[check_index(layer, self.num_layers, "layer")].window
