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

import itertools
import math
import operator
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Literal

import numpy as np
import torch

from core.capture import BLOCK_ELEMENTS, LayerCapture, _scaled
from core.errors import AttentionTooLargeError, InvalidSelectionError, PositionOutOfRangeError
from core.row_stats import (
    DEFAULT_LOCAL_WINDOW,
    LN2,
    NEAR_STATISTICS,
    ROW_STATISTICS,
    STATISTICS,
    block_values,
)

DENSE_BUDGET_BYTES = 256 * 1024 * 1024
"""Largest dense `[layers, heads, q, k]` float32 array `attentions` builds (256 MB)."""

Reduce = Literal["mean", "max"]
_NEVER = -1e30
"""The logarithm given to weights a model never computes: finite, so that `w log w` is 0 there."""


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


def _row_means(values: torch.Tensor) -> np.ndarray:
    """`[heads, rows]` -> `[heads]`: the mean over the rows that are not NaN (NaN if none)."""
    defined = ~values.isnan()
    counts = defined.sum(-1)
    sums = torch.where(defined, values, 0.0).sum(-1)
    return torch.where(counts > 0, sums / counts.clamp(min=1), math.nan).cpu().numpy()


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

    def _row_blocks(
        self, heads: int = 1, width: int | None = None, most: int | None = None
    ) -> Iterator[np.ndarray]:
        """Query positions in blocks of at most `BLOCK_ELEMENTS` weights for `heads` heads of
        `width` keys a row (default: all keys), and at most `most` rows."""
        width = self.keys if width is None else width
        step = max(1, min(self.queries, most or self.queries, BLOCK_ELEMENTS // (heads * width)))
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

    def pooled_heads(self, size: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every head's mean-pooled overview at once: `(grid float32 [layers, heads, rows,
        cols], row_edges, col_edges)`, each head's grid as `pooled(layer, head, size)` gives it.

        A block's weights are summed as the statistics are: each row's share of the keys of
        a column block (on plain causal layers from the flash kernel, without one weight
        written), summed over the rows of a row block, then divided by the number of weights
        the model computes in the block (NaN where none).
        """
        row_edges = pooling_edges(self.queries, size)
        col_edges = pooling_edges(self.keys, size)
        positions = np.arange(self.keys)
        blocks = {
            f"keys {start}–{stop - 1}": (positions >= start) & (positions < stop)
            for start, stop in itertools.pairwise(col_edges.tolist())
        }
        grid = np.empty((*self.shape[:2], len(row_edges) - 1, len(col_edges) - 1), np.float32)
        counted: dict[Hashable, np.ndarray] = {}
        for layer, values in self._layers_values((), 1, blocks):
            shares = torch.stack([values[name] for name in blocks], -1).double().cpu().numpy()
            sums = np.add.reduceat(shares, row_edges[:-1], axis=1)
            structure = self._structure(layer)
            if structure not in counted:
                counted[structure] = self._computed_counts(layer, row_edges, col_edges)
            counts = counted[structure]
            with np.errstate(invalid="ignore", divide="ignore"):
                grid[layer] = np.where(counts > 0, sums / counts, np.nan)
        return grid, row_edges, col_edges

    def _structure(self, layer: int) -> Hashable:
        """Layers with equal structures compute the same cells (default: each its own)."""
        return layer

    def _extents(self, layer: int) -> tuple[np.ndarray, np.ndarray] | None:
        """`(first, stop)` `[queries]`: each query computes exactly keys `first … stop − 1`;
        None where an explicit mask says more."""
        return None

    def _computed_counts(self, layer: int, row_edges: np.ndarray, col_edges: np.ndarray):
        """`[row blocks, col blocks]`: how many weights the model computes in each block."""
        extents = self._extents(layer)
        if extents is not None:  # each row's keys are one range: count them per column block
            first, stop = extents
            inside = np.minimum(stop[:, None], col_edges[None, 1:])
            inside -= np.maximum(first[:, None], col_edges[None, :-1])
            return np.add.reduceat(np.maximum(inside, 0), row_edges[:-1], axis=0)
        counts = np.zeros((len(row_edges) - 1, len(col_edges) - 1))
        cols = np.arange(self.keys)
        for rows in self._row_blocks():
            seen = np.add.reduceat(self._computed_block(layer, rows, cols), col_edges[:-1], 1)
            np.add.at(counts, np.searchsorted(row_edges, rows, side="right") - 1, seen)
        return counts

    def row_values(
        self,
        names: Sequence[str] = tuple(ROW_STATISTICS),
        window: int = DEFAULT_LOCAL_WINDOW,
        key_sets: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """Each statistic of `names` (see `core.row_stats.STATISTICS`) and each share of
        `key_sets` (name: bool `[keys]`) per query row: float32 `[layers, heads, queries]`,
        NaN where a row does not define it.

        Computed one layer and one block of rows at a time for all heads of the layer, in
        float32 torch, never the n² weights of a layer at once.
        """
        values: dict[str, np.ndarray] = {}
        for layer, per_layer in self._layers_values(names, window, key_sets):
            for name, value in per_layer.items():
                values.setdefault(name, np.empty(self.shape[:3], dtype=np.float32))
                values[name][layer] = value.cpu().numpy()
        return values

    def statistics(
        self, window: int = DEFAULT_LOCAL_WINDOW, names: Sequence[str] = tuple(ROW_STATISTICS)
    ) -> dict[str, np.ndarray]:
        """Each statistic of `names` averaged over the query rows that define it, float64
        `[layers, heads]` (NaN where no row does); by default `core.row_stats.ROW_STATISTICS`.
        Blockwise, as `row_values`."""
        means: dict[str, np.ndarray] = {}
        for layer, per_layer in self._layers_values(names, window, None):
            for name, value in per_layer.items():
                means.setdefault(name, np.empty(self.shape[:2]))
                means[name][layer] = _row_means(value.double())
        return means

    def _layers_values(
        self, names: Sequence[str], window: int, key_sets: Mapping[str, np.ndarray] | None
    ) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        """`(layer, {name: [heads, queries]})` for every layer, validated."""
        unknown = sorted(set(names) - set(STATISTICS))
        if unknown:
            raise InvalidSelectionError(
                f"Unknown statistics {unknown}: choose from {', '.join(STATISTICS)}."
            )
        if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
            raise InvalidSelectionError(
                f"The local window must be a whole number ≥ 1, not {window!r}."
            )
        sets = {}
        for name, chosen in (key_sets or {}).items():
            chosen = np.asarray(chosen)
            if chosen.dtype != bool or chosen.shape != (self.keys,):
                raise InvalidSelectionError(
                    f"The key set '{name}' must be {self.keys} booleans, one per key."
                )
            sets[name] = torch.from_numpy(chosen)
        with torch.inference_mode():
            for layer in range(self.num_layers):
                yield layer, self._layer_values(layer, tuple(names), int(window), sets)

    def _layer_values(
        self, layer: int, names: tuple[str, ...], window: int, key_sets: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """`{name: float32 [heads, queries]}` of one layer (override: a faster route)."""
        return self._sweep(layer, names, window, key_sets, lambda rows: self._span(layer, rows))

    def _sweep(
        self,
        layer: int,
        names: tuple[str, ...],
        window: int,
        key_sets: dict[str, torch.Tensor],
        span: Callable[[np.ndarray], tuple[int, int]],
        width: int | None = None,
        most: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """`block_values` of every block of rows of one layer, each over the keys
        `span(rows)` gives (`[first, last)`: every key the statistics read). `width` (keys
        per row, default all) and `most` (rows) size the blocks."""
        values: dict[str, torch.Tensor] = {}
        # Twice the heads: the weights come with their logarithm and a temporary or two.
        for rows in self._row_blocks(2 * self.num_heads, width, most):
            first, last = span(rows)
            weights, logs = self._block(layer, rows, first, last)
            positions = torch.from_numpy(rows).to(weights.device)
            block = block_values(
                weights,
                logs,
                positions,
                first,
                self.keys,
                names,
                window,
                {name: chosen.to(weights.device) for name, chosen in key_sets.items()},
            )
            for name, value in block.items():
                values.setdefault(
                    name, torch.empty(self.num_heads, self.queries, device=value.device)
                )[:, rows[0] : rows[-1] + 1] = value
        return values

    def _span(self, layer: int, rows: np.ndarray) -> tuple[int, int]:
        """`[first, last)`: the keys a block of rows may compute."""
        return 0, self._keys_reached(layer, rows)

    def head_mean_block(
        self, layer: int, rows: range, heads: Sequence[int] | None = None
    ) -> tuple[int, torch.Tensor]:
        """The mean over `heads` (default all) of contiguous `rows`' weights, in one torch pass
        over the heads: `(first, float32 [len(rows), last − first])` over keys `first … last − 1`,
        every key these rows may compute (keys outside it and cells the model never computes
        are 0). Query heads read their key-value group, with the masks, windows, soft-caps
        and biases of `tile`; memory is about two `[heads, len(rows), last − first]` blocks.
        """
        layer, _ = self._check(layer)
        positions = _positions(rows, self.queries, "query position")
        if positions.size == 0 or np.any(np.diff(positions) != 1):
            raise InvalidSelectionError("A head-mean block needs a nonempty range of rows.")
        chosen = list(range(self.num_heads)) if heads is None else [int(h) for h in heads]
        if not chosen:
            raise InvalidSelectionError("The head mean needs at least one head.")
        for head in chosen:
            check_index(head, self.num_heads, "head")
        first, last = self._span(layer, positions)
        # No inference mode: the caller may change the block in place.
        with torch.no_grad():
            weights = self._summed_block(layer, positions, first, last, chosen)
            return first, weights.div_(len(chosen))

    def _summed_block(
        self, layer: int, rows: np.ndarray, first: int, last: int, heads: list[int]
    ) -> torch.Tensor:
        """Float32 `[len(rows), last − first]`: the sum over `heads` of their weights, 0 where
        not computed (override: a pass without the logarithms)."""
        weights, _ = self._block(layer, rows, first, last)
        return weights[heads].sum(0)

    def _block(
        self, layer: int, rows: np.ndarray, first: int, last: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Float32 `[heads, len(rows), last − first]` weights of contiguous `rows` on keys
        `first … last − 1`, 0 where not computed, and their natural logarithm (finite) or
        None."""
        raise NotImplementedError

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

    def _extents(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        rows = np.arange(self.queries)
        stop = rows + 1 + self.keys - self.queries if self.causal else np.full_like(rows, self.keys)
        return np.zeros_like(rows), np.clip(stop, 0, self.keys)

    def _block(self, layer: int, rows: np.ndarray, first: int, last: int):
        block = self.array[layer, :, rows[0] : rows[-1] + 1, first:last]
        # A copy: the array may be shared (read-only) and the block is masked in place.
        weights = torch.from_numpy(np.array(block, dtype=np.float32))
        if self.causal:
            cols = np.arange(first, last)
            unseen = torch.from_numpy(~self._computed_block(layer, rows, cols))
            weights.masked_fill_(unseen, 0.0)
        return weights.nan_to_num_(0.0), None

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
                scores = _all_scores(record, rows_t, cols_t)
                lse = record.lse[:, rows_t][..., None]
                allowed = record.allowed(rows_t, cols_t)
            weights = torch.exp(scores.sub_(lse)).masked_fill_(~allowed, float("nan"))
        return weights.cpu().numpy()

    def _structure(self, layer: int) -> Hashable:
        record = self.layers[layer]
        return layer if record.mask is not None else (record.causal, record.window)

    def _extents(self, layer: int) -> tuple[np.ndarray, np.ndarray] | None:
        record = self.layers[layer]
        if record.mask is not None:
            return None
        rows = np.arange(self.queries)
        if not record.causal:
            return np.zeros_like(rows), np.full_like(rows, self.keys)
        first = np.maximum(rows - record.window + 1, 0) if record.window else np.zeros_like(rows)
        return first, rows + 1

    def _span(self, layer: int, rows: np.ndarray) -> tuple[int, int]:
        record = self.layers[layer]
        if record.mask is not None or not record.causal:
            return 0, self.keys
        first = max(0, int(rows[0]) - record.window + 1) if record.window else 0
        return first, min(self.keys, int(rows[-1]) + 1)

    def _block(self, layer: int, rows: np.ndarray, first: int, last: int):
        record = self.layers[layer]
        device = record.queries.device
        rows_t = torch.from_numpy(rows).to(device)
        cols_t = torch.arange(first, last, device=device)
        logs = _all_scores(record, rows_t, cols_t).sub_(record.lse[:, rows_t, None])
        logs.masked_fill_(~record.allowed(rows_t, cols_t), _NEVER)
        return torch.exp(logs), logs

    def _summed_block(
        self, layer: int, rows: np.ndarray, first: int, last: int, heads: list[int]
    ) -> torch.Tensor:
        record = self.layers[layer]
        device = record.queries.device
        rows_t = torch.from_numpy(rows).to(device)
        cols_t = torch.arange(first, last, device=device)
        # exp(s − lse) in place, then 0 where not computed: one block, no logarithm kept.
        weights = _all_scores(record, rows_t, cols_t).sub_(record.lse[:, rows_t, None]).exp_()
        _zero_uncomputed(record, weights, rows_t, first, last)
        if len(heads) == self.num_heads:
            return weights.sum(0)
        return weights[heads].sum(0)

    def _layer_values(
        self, layer: int, names: tuple[str, ...], window: int, key_sets: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """A causal layer without masks, windows, soft-caps or biases on the CPU: the sums
        over whole rows come from PyTorch's flash kernel (`_flash_values`), the statistics
        of nearby keys from the few keys they read; the rest, all keys block by block."""
        record = self.layers[layer]
        structure = (record.causal, record.window, record.mask, record.bias, record.softcap)
        on_cpu = record.queries.device.type == "cpu" and _FLASH_KERNEL is not None
        if structure != (True, None, None, None, None) or not on_cpu:
            return super()._layer_values(layer, names, window, key_sets)
        values = _near_values(record, names, window)
        values.update(_flash_values(record, names, key_sets))
        return values

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


_FLASH_KERNEL = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


def _all_scores(record: LayerCapture, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Float32 `[heads, len(rows), len(cols)]` scores of every head of a captured layer before
    masking, one batched product per key-value group."""
    groups, width = record.keys.shape[0], record.queries.shape[-1]
    queries = record.queries[:, rows].float().reshape(groups, -1, width)
    products = torch.bmm(queries, record.keys[:, cols].float().transpose(1, 2))
    scores = _scaled(products, record.scale, record.softcap)
    scores = scores.view(record.num_heads, len(rows), len(cols))
    if record.bias is not None:
        scores += record.bias_block(rows, cols)
    return scores


def _zero_uncomputed(
    record: LayerCapture, weights: torch.Tensor, rows: torch.Tensor, first: int, last: int
) -> None:
    """Set to 0, in place, the weights of `weights` `[heads, len(rows), last − first]` (contiguous
    `rows` on keys `first … last − 1`) that the model never computes.

    Without an explicit mask, a causal layer computes every key between the last row's first
    key and the first row's own position for all rows of the block: only the columns on either
    side of that band are masked, not the whole block.
    """
    if record.mask is None and not record.causal:
        return  # every key is computed
    start, stop = int(rows[0]), int(rows[-1]) + 1
    band = (start + 1, start + 1)  # an empty band: mask everything
    if record.mask is None:
        band = (max(first, stop - record.window) if record.window else first, start + 1)
    if band[0] >= band[1]:  # a window narrower than the block
        band = (last, last)
    for low, high in ((first, band[0]), (max(band[1], first), last)):
        if high > low:
            cols = torch.arange(low, high, device=rows.device)
            part = weights[..., low - first : high - first]
            part.masked_fill_(~record.allowed(rows, cols), 0.0)


def _near_values(
    record: LayerCapture, names: tuple[str, ...], window: int
) -> dict[str, torch.Tensor]:
    """`NEAR_STATISTICS` of a causal layer without masks, windows or biases, `{name: float32
    [heads, n]}`: each query's weights on key 0 and on the `reach` keys up to it, read as the
    band along the diagonal of blocks of rows, so about n × (128 + reach) scores, not n²."""
    wanted = [name for name in names if name in NEAR_STATISTICS]
    if not wanted:
        return {}
    heads, n, width = record.queries.shape
    groups, reach = record.keys.shape[0], max(window, 2)  # the previous token is 1 key back
    queries = record.queries.float().view(groups, -1, n, width)
    keys = record.keys.float()
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in wanted}
    if "to_first" in wanted:
        firsts = _scaled(queries @ keys[:, :1].transpose(1, 2)[:, None], record.scale, None)
        parts["to_first"].append(firsts.reshape(heads, n).sub_(record.lse).exp_())
    banded = [name for name in wanted if name != "to_first"]
    # Key j at j + reach − 1: each block of rows reads its keys from `reach − 1` before it.
    padded = torch.nn.functional.pad(keys, (0, 0, reach - 1, 0))
    behind = torch.arange(reach - 1, -1, -1)
    step = max(reach, 512)  # rows a block: few, large products (each op has a fixed cost)
    for start in range(0, n if banded else 0, step):
        stop = min(n, start + step)
        block = torch.bmm(
            queries[:, :, start:stop].reshape(groups, -1, width),
            padded[:, start : stop + reach - 1].transpose(1, 2),
        ).view(heads, stop - start, stop - start + reach - 1)
        # The band along the diagonal: band[h, r, c] = block[h, r, r + c] is the weight of row
        # start + r on key start + r − (reach − 1 − c); c = reach − 1 is the query itself.
        band = block.as_strided(
            (heads, stop - start, reach), (block.stride(0), block.stride(1) + 1, 1)
        )
        scores = _scaled(band.clone(), record.scale, record.softcap)
        logs = scores.sub_(record.lse[:, start:stop, None])
        rows = torch.arange(start, stop)
        logs.masked_fill_(rows[:, None] < behind[None, :], _NEVER)  # before the first token
        weights = logs.exp_()
        for name in banded:
            if name in ("local_share", "recent_share"):  # the same on causal rows
                value = weights[..., reach - window :].sum(-1)
            elif name == "to_next":
                value = torch.zeros(heads, stop - start)
            else:
                value = weights[..., reach - 1 - (name == "to_previous")].clone()
            parts[name].append(value)
    values = {name: torch.cat(pieces, -1) for name, pieces in parts.items()}
    if "to_previous" in values:
        values["to_previous"][:, 0] = math.nan  # the first token has no previous one
    if "to_next" in values:
        values["to_next"][:, -1] = math.nan
    return values


def _flash_values(
    record: LayerCapture, names: tuple[str, ...], key_sets: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The statistics of whole causal rows, `{name: float32 [heads, n]}`, from the flash kernel.

    Attention with the keys themselves as values gives each row's `Σ_j w_j k_j`, so its
    weighted mean score `Σ_j w_j s_j = scale · q · Σ_j w_j k_j`, and with the kernel's
    log-sum-exp `L` the entropy `−Σ w log w = L − Σ w s` (nats) without one weight written.
    Extra value columns give `Σ_j w_j j` (the mean distance, `i − Σ w j` causally) and the
    share of each key set. Run on keys and queries 1 … n − 1 (the same causal structure), it
    gives the attention off the first token renormalised: the entropy without the first token.
    """
    values: dict[str, torch.Tensor] = {}
    whole = [name for name in ("entropy", "mean_distance") if name in names]
    heads, n, width = record.queries.shape
    positions = torch.arange(n, dtype=torch.float32)
    if whole or key_sets:
        extras = [positions] + [chosen.float() for chosen in key_sets.values()]
        lse, output, products = _flash(record, 0, torch.stack(extras, -1))
        if "entropy" in names:
            values["entropy"] = (lse - products).div_(LN2)
        if "mean_distance" in names:
            values["mean_distance"] = positions - output[..., width]
        for index, name in enumerate(key_sets, start=width + 1):
            values[name] = output[..., index].contiguous()
    if "entropy_without_first" in names:
        lse, _, products = _flash(record, 1, None)
        # Query 0 sees only the first token: nothing is left off it.
        undefined = torch.full((heads, 1), math.nan)
        values["entropy_without_first"] = torch.cat([undefined, (lse - products) / LN2], -1)
    return values


def _flash(record: LayerCapture, start: int, extras: torch.Tensor | None):
    """`(lse [heads, m], output [heads, m, d + e], Σ_j w_j s_j [heads, m])` of causal
    attention of queries and keys `start … n − 1` with values `[keys | extras]` (`extras`
    float32 `[n, e]`, the same for every head); float32."""
    queries = record.queries[:, start:].float()
    keys = record.keys[:, start:].float().repeat_interleave(record.group_size, 0)
    values = keys
    if extras is not None:
        values = torch.cat([keys, extras[start:].expand(keys.shape[0], -1, -1)], -1)
    # The kernel takes one width for all three, and runs faster on multiples of 16 (8-wide
    # heads take about 1.4 times as long as the same heads padded to 16): zero columns leave
    # every q · k as it is, and the output's extra columns are not read.
    width = -(-values.shape[-1] // 16) * 16
    queries, keys, values = (
        torch.nn.functional.pad(part, (0, width - part.shape[-1]))
        for part in (queries, keys, values)
    )
    assert _FLASH_KERNEL is not None
    output, lse = _FLASH_KERNEL(
        queries[None], keys[None], values[None], 0.0, True, scale=record.scale
    )
    output, lse = output[0], lse[0].float()
    width = record.queries.shape[-1]
    products = (queries[..., :width] * output[..., :width]).sum(-1).mul_(record.scale)
    return lse, output, products
