"""Baseline for bench/bench_flow.py: the attention-flow solver as it was before issue 15.

A verbatim copy of ``core/_maxflow.py`` at commit dfa6cf8 (scipy's integral Dinic on
subgraphs with cut generation and hub certificates), kept only so the benchmark can time
today's solver against it in the same run. Nothing in ``core`` imports it.

Exact maximum-flow values on the layered attention graph (the engine behind core.flow).

Graph of a stack of ``L`` transition matrices ``A_1 .. A_L`` (each ``[n, n]``, rows sum
to 1): nodes ``(l, i)`` for ``l = 0..L``; for ``l >= 1`` an edge ``(l, i) -> (l-1, j)`` of
capacity ``A_l[i, j]``. ``lambda(i, j)`` is the max-flow value from ``(L, i)`` to
``(0, j)``. Only row ``i`` of ``A_L`` and column ``j`` of ``A_1`` matter at the ends: other
top nodes are unreachable and other input nodes are dead ends.

Why this is fast although it is exact:

* ``L == 1``: the only path is one edge, ``lambda = A_1[i, j]``.
* ``L == 2``: the paths ``(2,i) -> (1,m) -> (0,j)`` are edge-disjoint, so
  ``lambda = sum_m min(A_2[i, m], A_1[m, j])``, vectorised over all pairs.
* ``L >= 3``: a pair is solved on a *subgraph* first, whose max flow is a feasible flow of
  the full graph (a lower bound). The source side of the subgraph's minimum cut is also a
  cut of the full graph; its full capacity, summed from the dense matrices, is an upper
  bound. If the two meet, the pair is solved exactly. If they do not, the cut crosses
  full-graph edges the subgraph lacks: those whole rows (or columns) are added and the
  pair is solved again (cut generation); after a few rounds the full graph is used.
  The subgraph starts as: the residual edge, the ``_TOPK`` largest edges per row and per
  column, the whole rows and columns of the ``_HUB_TOKENS`` tokens with the largest
  in-capacity (on real text, cuts run along the [CLS]/[SEP] chains), and the row of the
  source token and the column of the sink token at every depth.
* Blocks of several sources and several sinks first try hub certificates. Every pair's
  max flow is at most ``ub(j) = min(1, sum_k min(A_1[k, j], colsum(A_2)[k]))`` (explicit
  cuts: the source's out-capacity, and per layer-1 node the cheaper of its sink edge and
  its in-edges), and on deep stacks it usually *equals* it. Each s-t flow crosses a middle
  level exactly once, so if the source can deliver a vector ``u`` to that level and the
  sink can absorb ``w`` from it, ``lambda >= sum(min(u, w))``. With ``|I| + |J|`` "leg"
  flows into and out of a fixed distribution ``z`` over the level (uniform, or one
  high-capacity token), all ``|I| * |J|`` pairs whose legs reach their bounds are
  certified at ``ub``; only the rest are solved one by one.

Max flows are solved by ``scipy.sparse.csgraph.maximum_flow`` (Dinic, C code), which needs
int32 capacities. Capacities are scaled by ``2**30`` and rounded *down*, so an integral
flow divided by the scale is a feasible flow of the real-valued graph: a true lower bound.
Rounding leaves each cut edge short by less than ``2**-30``. Those shortfalls are pushed
along residual paths wide enough for all of them when such paths exist (checked by two
breadth-first searches), which certifies the cut's real capacity as the max flow;
otherwise the residual graph is solved again at a finer scale (capacities clipped just
above the remaining gap, which cannot change its max flow). Either way a cut and a flow
end within :data:`FLOW_ATOL` of each other. Many pairs are solved in one call as disjoint
copies joined by a super source and sink; the flow on each copy's sink edge is that
copy's value.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import breadth_first_order, maximum_flow

__all__ = ["FLOW_ATOL", "LayeredFlow"]

# Certified absolute error of every unnormalised flow value: the returned cut capacity is
# at most this far above a feasible flow. A row-normalised value is then within
# (n + 1) * FLOW_ATOL / rowsum of exact, and rowsum >= 1.
FLOW_ATOL = 1e-9
_SCALE_BITS = 30
_SCALE = float(2**_SCALE_BITS)
_TOPK = 2
# Tokens that collect far more attention than average ([CLS], [SEP], full stops) get their
# whole row and column in every subgraph (average in-capacity is 1); the same number of
# high-capacity tokens is tried as single-node hubs.
_HUB_TOKENS = 2
_HUB_MIN_IN_CAPACITY = 2.0
# Cut-generation rounds on a subgraph before a pair falls back to the full graph.
_GROWTH_ROUNDS = 6
# Edges per scipy call: large enough to amortise call overhead, small enough that the
# UI can update and cancel between calls.
_EDGES_PER_CALL = 100_000
_MAX_ROUNDS = 8


class _Union:
    """Disjoint copies of one stack's pair graph, joined by a super source and sink.

    Copy ``b`` uses node ids ``b * per .. b * per + per - 1``: level ``g`` token ``k`` is
    ``(g - 1) * n + k`` for ``g = 1..L-1``, the source is ``(L - 1) * n``, the sink the
    next id. ``rows, cols, caps`` are the edges ``[E]``; zero capacities are dropped.
    """

    def __init__(
        self, rows: np.ndarray, cols: np.ndarray, caps: np.ndarray, copies: int, per: int
    ) -> None:
        keep = caps > 0
        self.rows, self.cols, self.caps = rows[keep], cols[keep], caps[keep]
        self.copies, self.per = copies, per
        self.super_source = copies * per
        self.super_sink = copies * per + 1
        self.n_nodes = copies * per + 2
        offsets = np.arange(copies, dtype=np.int64) * per
        self.sinks = offsets + per - 1
        self.graph = csr_array(
            (self.caps, (self.rows, self.cols)), shape=(self.n_nodes, self.n_nodes)
        )
        # Which copy an edge belongs to; super edges are attributed through their other end.
        self.edge_copy = np.minimum(self.rows, self.cols) // per


def _edge_values(flow: csr_array, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Entries ``flow[rows[b], cols[b]]`` as a float array ``[B]``."""
    return np.asarray(flow[rows, cols], dtype=np.float64).ravel()


def _integral(residual: csr_array, clip: float | None, scale: float) -> csr_array:
    """Round ``min(residual, clip) * scale`` down to an int32 capacity graph."""
    data = residual.data if clip is None else np.minimum(residual.data, clip)
    # scale is a power of two, so data * scale is exact and floor() only drops the
    # fraction: the integral capacities never exceed the real ones.
    ints = np.floor(data * scale).astype(np.int32)
    # Copies: eliminate_zeros() compacts indices in place and must not touch `residual`.
    graph = csr_array((ints, residual.indices.copy(), residual.indptr.copy()), shape=residual.shape)
    graph.eliminate_zeros()
    return graph


def _refine_scale(gap: float) -> tuple[float, float]:
    """Clip level and power-of-two scale for a residual round whose remaining flow <= gap.

    Clipping at ``2 * gap`` leaves the max flow unchanged (a cut through a clipped edge
    costs more than the whole remaining flow) and means a clipped edge is never saturated.
    The scale keeps ``cap(u, v) + cap(v, u) <= 2**30`` because the residual graph has both
    directions and scipy keeps residual capacities in int32.
    """
    clip = 2.0 * gap
    exponent = math.floor(math.log2(2.0 ** (_SCALE_BITS - 1) / clip))
    return clip, 2.0**exponent


def _residual(integral: csr_array, flow: csr_array) -> csr_array:
    """Integral residual capacities (both directions) of a flow, zeros dropped."""
    # int32 is safe: a capacity plus an opposite flow stays <= 2**30 by the choice of scale.
    residual = integral - flow
    residual.eliminate_zeros()
    return residual


def _reach(graph: csr_array, start: int, n_nodes: int) -> np.ndarray:
    """Boolean mask ``[n_nodes]`` of the nodes reachable from ``start`` along stored edges."""
    reached = breadth_first_order(graph, start, directed=True, return_predecessors=False)
    inside = np.zeros(n_nodes, dtype=bool)
    inside[reached] = True
    return inside


def _thick(residual: csr_array, theta: int, always: int) -> csr_array:
    """Edges with residual >= ``theta``, plus every edge out of node ``always``."""
    keep = residual.data >= theta
    start, stop = residual.indptr[always], residual.indptr[always + 1]
    keep[start:stop] = True
    graph = csr_array(
        (keep.astype(np.int8), residual.indices.copy(), residual.indptr.copy()),
        shape=residual.shape,
    )
    graph.eliminate_zeros()
    return graph


def _route_deficits(
    union: _Union, residual: csr_array, inside: np.ndarray, candidates: np.ndarray
) -> np.ndarray:
    """Copies ``[B]`` whose rounding losses on the cut can all be pushed after round one.

    Rounding down left each cut edge ``e`` short by ``d_e = cap_e - floor(cap_e 2**30) /
    2**30``. If the edge's tail is reachable from the source, and its head reaches the
    sink, along residual edges that each have room for the copy's whole shortfall
    ``D = sum d_e``, all ``d_e`` can be sent at once: the flow then equals the cut's
    capacity, which certifies both without a second max-flow round. The super edges are
    not part of the real graph (their capacity 1 only restates that a copy's flow is at
    most 1), so they always count as wide enough.
    """
    crossing = inside[union.rows] & ~inside[union.cols]
    deficit = union.caps - np.floor(union.caps * _SCALE) / _SCALE
    need = crossing & (deficit > 0) & candidates[union.edge_copy]
    if not need.any():
        return candidates
    shortfall = np.bincount(union.edge_copy[need], weights=deficit[need], minlength=union.copies)
    theta = math.ceil(float(shortfall[: union.copies].max()) * _SCALE) + 1
    forward = _reach(_thick(residual, theta, union.super_source), union.super_source, union.n_nodes)
    backward_graph = _thick(residual.T.tocsr(), theta, union.super_sink)
    backward = _reach(backward_graph, union.super_sink, union.n_nodes)
    blocked = need & ~(forward[union.rows] & backward[union.cols])
    stuck = np.bincount(union.edge_copy[blocked], minlength=union.copies)[: union.copies] > 0
    return candidates & ~stuck


def _subgraph_cut(union: _Union, inside: np.ndarray) -> np.ndarray:
    """Capacity ``[B]`` of each copy's cut ``inside`` counting only the solved edges."""
    crossing = inside[union.rows] & ~inside[union.cols]
    return np.bincount(
        union.edge_copy[crossing], weights=union.caps[crossing], minlength=union.copies
    )[: union.copies]


def _close_copies(residual: csr_array, union: _Union, closed: np.ndarray) -> None:
    """Zero the super-source edge of ``closed`` copies so no more flow enters them."""
    start, stop = residual.indptr[union.super_source], residual.indptr[union.super_source + 1]
    # The super source's only edges lead to the copies' sources.
    copy = residual.indices[start:stop] // union.per
    residual.data[start:stop][closed[copy]] = 0.0


class LayeredFlow:
    """Max-flow values between the top and bottom layer of sub-stacks of ``mixed``.

    Args:
        mixed: ``[layers, n, n]`` float64 transition matrices ``A_1 .. A_layers`` (entry
            ``q`` is ``A_{q+1}``); rows sum to 1.
        check: called between solver calls; raises to abort (cancellation).
    """

    def __init__(self, mixed: np.ndarray, check: Callable[[], None] | None = None) -> None:
        self.mixed = np.ascontiguousarray(mixed, dtype=np.float64)
        self.n = self.mixed.shape[-1]
        self._check = check or (lambda: None)
        self._shared_cache: dict[int, tuple[np.ndarray, ...]] = {}
        self._dense_cache: dict[int, tuple[np.ndarray, ...]] = {}

    # ----------------------------------------------------------------- public entry

    def block(
        self,
        lo: int,
        hi: int,
        sources: np.ndarray,
        sinks: np.ndarray,
        exact: bool = True,
        report: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Max-flow values for all pairs ``sources x sinks`` of the stack ``mixed[lo:hi]``.

        Level ``hi - lo`` of the stack holds the source tokens and level 0 the sink tokens;
        ``mixed[lo]`` is the stack's bottom matrix ``A_1``.

        Args:
            lo, hi: the stack is ``mixed[lo:hi]``, ``hi - lo >= 1`` matrices.
            sources: token indices ``[I]`` at the top.
            sinks: token indices ``[J]`` at the bottom.
            exact: if False, pairs that cut generation cannot settle are not sent to the
                full graph; their value is NaN and their lower bound is still valid (used
                for hub legs, which only need lower bounds).
            report: called with the number of pairs resolved so far, as work proceeds.

        Returns:
            ``(value, lower)``, both ``[I, J]``. ``value`` is within :data:`FLOW_ATOL` of the
            max flow (NaN where not solved); ``lower <= max flow`` always (up to float
            summation error).
        """
        sources = np.asarray(sources, dtype=np.int64)
        sinks = np.asarray(sinks, dtype=np.int64)
        depth = hi - lo
        if depth == 1:
            value = self.mixed[lo][np.ix_(sources, sinks)].copy()
            return value, value.copy()
        if depth == 2:
            value = self._two_layer(lo, sources, sinks)
            return value, value.copy()
        return self._deep_block(lo, hi, sources, sinks, exact, report or (lambda _k: None))

    def upper_bound(self, lo: int) -> np.ndarray:
        """Cut bound ``min(1, sum_k min(A_1[k, j], colsum(A_2)[k]))`` per sink ``[n]``.

        Valid for stacks of depth >= 2 whose bottom matrices are ``mixed[lo]`` and
        ``mixed[lo + 1]``: per layer-1 node cut either its edge into the sink or all its
        in-edges; or cut the source's edges (total capacity 1).
        """
        in_capacity = self.mixed[lo + 1].sum(axis=0)  # [n]
        into_sink = np.minimum(self.mixed[lo], in_capacity[:, None]).sum(axis=0)
        return np.minimum(1.0, into_sink)

    # ----------------------------------------------------------------- closed form

    def _two_layer(self, lo: int, sources: np.ndarray, sinks: np.ndarray) -> np.ndarray:
        """``sum_m min(A_2[i, m], A_1[m, j])`` ``[I, J]``: two-edge paths are disjoint."""
        top = self.mixed[lo + 1][sources]  # [I, n]
        bottom = self.mixed[lo][:, sinks]  # [n, J]
        out = np.empty((sources.size, sinks.size))
        # Bound the [chunk, n, J] temporary to a few tens of MB.
        chunk = max(1, 4_000_000 // max(1, self.n * sinks.size))
        for start in range(0, sources.size, chunk):
            part = top[start : start + chunk, :, None]
            out[start : start + chunk] = np.minimum(part, bottom[None]).sum(axis=1)
        return out

    # ----------------------------------------------------------------- deep stacks

    def _deep_block(
        self,
        lo: int,
        hi: int,
        sources: np.ndarray,
        sinks: np.ndarray,
        exact: bool,
        report: Callable[[int], None],
    ) -> tuple[np.ndarray, np.ndarray]:
        depth = hi - lo
        bound = np.broadcast_to(self.upper_bound(lo)[sinks], (sources.size, sinks.size))
        value = np.full(bound.shape, np.nan)
        lower = np.zeros(bound.shape)
        pending = np.ones(bound.shape, dtype=bool)
        resolved = 0

        if depth >= 4 and sources.size >= 2 and sinks.size >= 2:
            for hub_layer, hub in self._hub_candidates(lo, hi):
                rows = np.flatnonzero(pending.any(axis=1))
                cols = np.flatnonzero(pending.any(axis=0))
                via_hub = self._via_hub(lo, hi, hub_layer, hub, sources[rows], sinks[cols])
                sub = np.ix_(rows, cols)
                newly = pending[sub] & (via_hub >= bound[sub] - FLOW_ATOL)
                value[sub] = np.where(newly, bound[sub], value[sub])
                lower[sub] = np.where(newly, via_hub, lower[sub])
                pending[sub] &= ~newly
                resolved += int(newly.sum())
                report(resolved)
                if not pending.any():
                    return value, lower

        src_idx, snk_idx = np.nonzero(pending)

        def settle(pairs: np.ndarray, cut: np.ndarray, flow: np.ndarray, done: np.ndarray) -> None:
            nonlocal resolved
            i, j = src_idx[pairs], snk_idx[pairs]
            value[i[done], j[done]] = cut[done]
            lower[i, j] = np.maximum(lower[i, j], flow)
            resolved += int(done.sum())
            report(resolved)

        left = self._grow_and_solve(lo, hi, sources[src_idx], sinks[snk_idx], settle)
        if exact and left.size:
            batch = max(1, _EDGES_PER_CALL // self._edges_per_copy(depth, None))
            for start in range(0, left.size, batch):
                part = left[start : start + batch]
                cut, flow, _, _ = self._solve(
                    lo, hi, sources[src_idx[part]], sinks[snk_idx[part]], None
                )
                settle(part, cut, flow, np.ones(part.size, dtype=bool))
        return value, lower

    def _hub_candidates(self, lo: int, hi: int) -> list[tuple[int, int | np.ndarray]]:
        """Hubs to try, as ``(hub_layer, hub)``: a spread-out one first, then single tokens.

        A hub sits mid-way so both legs are deep enough to spread and gather flow. ``hub``
        is either a token (a single node) or a distribution ``z`` ``[n]`` over the level's
        nodes (see :meth:`_via_hub`). The uniform distribution suits spread-out attention;
        a single token can only carry pairs whose bound is at most its in-capacity, so the
        tokens with the largest in-capacity are tried.
        """
        depth = hi - lo
        hub_layer = depth // 2
        in_capacity = self.mixed[lo + hub_layer].sum(axis=0)
        tokens = np.argsort(-in_capacity, kind="stable")[:_HUB_TOKENS]
        spread = np.full(self.n, 1.0 / self.n)
        return [(hub_layer, spread)] + [(hub_layer, int(token)) for token in tokens]

    def _via_hub(
        self,
        lo: int,
        hi: int,
        hub_layer: int,
        hub: int | np.ndarray,
        sources: np.ndarray,
        sinks: np.ndarray,
    ) -> np.ndarray:
        """Lower bounds ``[I, J]`` on the pairs' max flows through one hub.

        The flow crosses level ``hub_layer`` exactly once, so any vector ``x`` there that the
        source can deliver and the sink can absorb gives ``lambda >= sum(x)`` (the two halves
        of the graph share no edge). For a distribution ``z``: the up leg is the max flow
        from the source into level ``hub_layer`` with capacity ``z_k`` out of node ``k``,
        delivering ``u <= z``; the down leg the max flow from supplies ``z`` to the sink,
        absorbing ``w <= z``. Then ``x = min(u, w)`` works and
        ``sum(x) >= sum(u) + sum(w) - sum(z)``. For a single token ``v`` (``z = e_v``) that
        is exactly ``min(lambda(s, v), lambda(v, t))``.
        """
        if not isinstance(hub, np.ndarray):
            _, up = self.block(lo + hub_layer, hi, sources, np.array([hub]), False)
            _, down = self.block(lo, lo + hub_layer, np.array([hub]), sinks, False)
            return np.minimum(up, down)  # [I, 1] x [1, J]
        n = self.n
        # The distribution becomes one column (up leg) or one row (down leg) of an extra
        # matrix, so the legs are ordinary pairs of a slightly deeper stack.
        into = np.zeros((1, n, n))
        into[0, :, 0] = hub
        up_stack = LayeredFlow(np.concatenate([into, self.mixed[lo + hub_layer : hi]]), self._check)
        _, up = up_stack.block(0, up_stack.mixed.shape[0], sources, np.array([0]), False)
        out_of = np.zeros((1, n, n))
        out_of[0, 0, :] = hub
        down_stack = LayeredFlow(
            np.concatenate([self.mixed[lo : lo + hub_layer], out_of]), self._check
        )
        _, down = down_stack.block(0, hub_layer + 1, np.array([0]), sinks, False)
        return up + down - float(hub.sum())

    def _grow_and_solve(
        self,
        lo: int,
        hi: int,
        src: np.ndarray,
        snk: np.ndarray,
        settle: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None],
    ) -> np.ndarray:
        """Solve pairs ``(src[p], snk[p])`` on growing subgraphs (cut generation).

        Each pair carries the whole rows and columns added to its subgraph, as boolean
        masks ``[B, L-2, n]`` over the stack's inner matrices. ``settle(pairs, cut, flow,
        done)`` receives every result.

        Returns:
            Indices ``[P']`` of the pairs still unresolved after ``_GROWTH_ROUNDS`` rounds.
        """
        depth, n = hi - lo, self.n
        batch = max(1, _EDGES_PER_CALL // self._edges_per_copy(depth, _TOPK))
        left = []
        for start in range(0, src.size, batch):
            pairs = np.arange(start, min(src.size, start + batch))
            rows_added = np.zeros((pairs.size, depth - 2, n), dtype=bool)
            cols_added = np.zeros((pairs.size, depth - 2, n), dtype=bool)
            rows_added[np.arange(pairs.size), :, src[pairs]] = True
            cols_added[np.arange(pairs.size), :, snk[pairs]] = True
            live = np.arange(pairs.size)
            for _ in range(_GROWTH_ROUNDS):
                added = (rows_added[live], cols_added[live])
                cut, flow, unresolved, level = self._solve(
                    lo, hi, src[pairs[live]], snk[pairs[live]], added
                )
                settle(pairs[live], cut, flow, ~unresolved)
                grow = live[unresolved]
                if grow.size == 0:
                    break
                self._add_missing_lines(lo, hi, level[unresolved], rows_added, cols_added, grow)
                live = grow
            else:
                left.append(pairs[live])
        return np.concatenate(left) if left else np.zeros(0, dtype=np.int64)

    def _add_missing_lines(
        self,
        lo: int,
        hi: int,
        level: np.ndarray,
        rows_added: np.ndarray,
        cols_added: np.ndarray,
        which: np.ndarray,
    ) -> None:
        """Add to pairs ``which`` the full rows or columns their current cut is missing.

        ``level`` ``[B, L-1, n]`` is each pair's cut (source side per level). Per inner
        matrix the cut crosses from ``U`` (upper side) to ``V`` (lower side outside); the
        cheaper of "rows of U" and "columns of V" that have missing edges is added.
        """
        for b, pair in enumerate(which):
            for m, q in enumerate(range(lo + 1, hi - 1)):
                upper, lower_out = level[b, m + 1], ~level[b, m]
                if not upper.any() or not lower_out.any():
                    continue
                kept = self._shared_layer(q)[3]
                block = self.mixed[q][np.ix_(upper, lower_out)] > 0
                block &= ~kept[np.ix_(upper, lower_out)]
                block &= ~rows_added[pair, m][upper][:, None]
                block &= ~cols_added[pair, m][lower_out][None, :]
                if not block.any():
                    continue
                if upper.sum() <= lower_out.sum():
                    rows_added[pair, m, np.flatnonzero(upper)[block.any(axis=1)]] = True
                else:
                    cols_added[pair, m, np.flatnonzero(lower_out)[block.any(axis=0)]] = True

    # ----------------------------------------------------------------- graph building

    def _shared_layer(self, q: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Edges of ``mixed[q]`` every subgraph starts with.

        The residual edge, the top-k per row and per column (rows alone leave a rarely
        attended token fed only by its own residual chain), and the whole rows and columns
        of the tokens with the largest in-capacity.

        Returns ``(rows, cols, caps, kept)``, ``kept`` being the ``[n, n]`` boolean mask.
        """
        if q not in self._shared_cache:
            matrix = self.mixed[q]
            n = self.n
            kept = np.eye(n, dtype=bool)
            if n > 2 * _TOPK:
                by_row = np.argpartition(-matrix, _TOPK, axis=1)[:, :_TOPK]
                kept[np.repeat(np.arange(n), _TOPK), by_row.ravel()] = True
                by_col = np.argpartition(-matrix, _TOPK, axis=0)[:_TOPK, :]
                kept[by_col.ravel(), np.tile(np.arange(n), _TOPK)] = True
                in_capacity = matrix.sum(axis=0)
                hubs = np.argsort(-in_capacity, kind="stable")[:_HUB_TOKENS]
                hubs = hubs[in_capacity[hubs] >= _HUB_MIN_IN_CAPACITY]
                kept[hubs, :] = True
                kept[:, hubs] = True
            else:
                kept[:] = True
            kept &= matrix > 0
            rows, cols = np.nonzero(kept)
            self._shared_cache[q] = (rows, cols, matrix[rows, cols], kept)
        return self._shared_cache[q]

    def _dense_layer(self, q: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All positive-capacity edges of ``mixed[q]`` as ``(rows, cols, caps)``."""
        if q not in self._dense_cache:
            rows, cols = np.nonzero(self.mixed[q] > 0)
            self._dense_cache[q] = (rows, cols, self.mixed[q][rows, cols])
        return self._dense_cache[q]

    def _edges_per_copy(self, depth: int, topk: int | None) -> int:
        """Rough edge count of one pair's graph, to size the batches."""
        n = self.n
        per_node = n if topk is None else min(n, 2 * topk + 5)
        return (depth - 2) * n * per_node + 2 * n

    def _build(
        self,
        lo: int,
        hi: int,
        src: np.ndarray,
        snk: np.ndarray,
        added: tuple[np.ndarray, np.ndarray] | None,
    ) -> _Union:
        """Union graph of the pairs ``(src[b], snk[b])`` on the stack ``mixed[lo:hi]``.

        ``added=None`` keeps every edge; otherwise the shared subgraph plus, per copy, the
        whole rows and columns flagged in ``added = (rows [B, L-2, n], cols [B, L-2, n])``.
        """
        n, depth, copies = self.n, hi - lo, src.size
        per = (depth - 1) * n + 2
        offsets = np.arange(copies, dtype=np.int64) * per
        tokens = np.arange(n, dtype=np.int64)
        shared: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        # (copy index [R], tail ids [R, n], head ids [R, n], capacities [R, n]) per part.
        own: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        for m, q in enumerate(range(lo + 1, hi - 1)):
            head, tail = (m + 1) * n, m * n  # mixed[q] joins level m+2 to level m+1
            if added is None:
                rows, cols, caps = self._dense_layer(q)
                shared.append((head + rows, tail + cols, caps))
                continue
            rows, cols, caps, kept = self._shared_layer(q)
            shared.append((head + rows, tail + cols, caps))
            matrix = self.mixed[q]
            # Added rows: every edge not already shared.
            copy, token = np.nonzero(added[0][:, m])
            caps = np.where(kept[token], 0.0, matrix[token])  # [R, n]
            own.append(
                (
                    copy,
                    np.broadcast_to((head + token)[:, None], caps.shape),
                    np.broadcast_to(tail + tokens, caps.shape),
                    caps,
                )
            )
            # Added columns: every edge not shared and not already in an added row.
            copy, token = np.nonzero(added[1][:, m])
            caps = np.where(kept[:, token].T | added[0][copy, m], 0.0, matrix[:, token].T)
            own.append(
                (
                    copy,
                    np.broadcast_to(head + tokens, caps.shape),
                    np.broadcast_to((tail + token)[:, None], caps.shape),
                    caps,
                )
            )
        source_local, sink_local = (depth - 1) * n, (depth - 1) * n + 1
        every = np.arange(copies)
        top_caps = self.mixed[hi - 1][src]  # [B, n]
        own.append(
            (
                every,
                np.full(top_caps.shape, source_local),
                np.broadcast_to((depth - 2) * n + tokens, top_caps.shape),
                top_caps,
            )
        )
        bottom_caps = self.mixed[lo][:, snk].T  # [B, n]
        own.append(
            (
                every,
                np.broadcast_to(tokens, bottom_caps.shape),
                np.full(bottom_caps.shape, sink_local),
                bottom_caps,
            )
        )

        rows_parts, cols_parts, caps_parts = [], [], []
        if shared:
            s_rows = np.concatenate([part[0] for part in shared])
            s_cols = np.concatenate([part[1] for part in shared])
            s_caps = np.concatenate([part[2] for part in shared])
            rows_parts.append((offsets[:, None] + s_rows).ravel())
            cols_parts.append((offsets[:, None] + s_cols).ravel())
            caps_parts.append(np.broadcast_to(s_caps, (copies, s_caps.size)).ravel())
        for copy, rows, cols, caps in own:
            rows_parts.append((offsets[copy][:, None] + rows).ravel())
            cols_parts.append((offsets[copy][:, None] + cols).ravel())
            caps_parts.append(np.asarray(caps, dtype=np.float64).ravel())
        super_source, super_sink = copies * per, copies * per + 1
        # The super edges have capacity 1: a copy's max flow never exceeds 1 anyway.
        rows_parts += [np.full(copies, super_source), offsets + sink_local]
        cols_parts += [offsets + source_local, np.full(copies, super_sink)]
        caps_parts += [np.ones(copies), np.ones(copies)]
        return _Union(
            np.concatenate(rows_parts).astype(np.int64),
            np.concatenate(cols_parts).astype(np.int64),
            np.concatenate(caps_parts),
            copies,
            per,
        )

    # ----------------------------------------------------------------- solving

    def _solve(
        self,
        lo: int,
        hi: int,
        src: np.ndarray,
        snk: np.ndarray,
        added: tuple[np.ndarray, np.ndarray] | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Max flow of the pairs ``(src[b], snk[b])`` on a subgraph, checked on the full graph.

        See the module docstring; ``added=None`` solves the full graphs.

        Returns:
            ``(cut, flow, unresolved, level)``: per copy ``[B]`` the certified value (a cut
            capacity, meaningful where resolved), a feasible flow value, whether the cut
            crosses edges the subgraph lacks; and the cut's source side ``[B, L-1, n]``.
        """
        union = self._build(lo, hi, src, snk, added)
        top_caps = self.mixed[hi - 1][src]
        bottom_caps = self.mixed[lo][:, snk].T
        residual = union.graph
        lower = np.zeros(union.copies)
        upper = np.full(union.copies, np.inf)
        active = np.ones(union.copies, dtype=bool)
        unresolved = np.zeros(union.copies, dtype=bool)
        level = np.zeros((union.copies, hi - lo - 1, self.n), dtype=bool)
        sink_edges = (union.sinks, np.full(union.copies, union.super_sink))
        clip, scale = None, _SCALE
        for _ in range(_MAX_ROUNDS):
            integral = _integral(residual, clip, scale)
            flow = maximum_flow(integral, union.super_source, union.super_sink).flow
            gained = _edge_values(flow, *sink_edges) / scale
            lower = np.where(active, lower + gained, lower)
            left = _residual(integral, flow)
            inside = _reach(left, union.super_source, union.n_nodes)
            round_level = self._levels(union, inside, hi - lo)
            level[active] = round_level[active]
            in_subgraph = _subgraph_cut(union, inside)
            if added is None:
                in_full = in_subgraph
            else:
                in_full = self._full_cut(lo, hi, union, inside, top_caps, bottom_caps)
            upper = np.where(active, np.minimum(upper, in_full), upper)
            open_gap = upper - lower > FLOW_ATOL
            # The cut crosses full-graph edges the subgraph lacks: it must grow.
            unresolved |= active & open_gap & (in_full - in_subgraph > FLOW_ATOL)
            rounding_only = active & open_gap & ~unresolved
            if clip is None and rounding_only.any():
                routed = _route_deficits(union, left, inside, rounding_only)
                lower = np.where(routed, in_subgraph, lower)
                open_gap = upper - lower > FLOW_ATOL
            active &= ~unresolved & open_gap
            self._check()
            if not active.any():
                return upper, lower, unresolved, level
            # Only rounding is left: solve the residual graph at a finer scale.
            residual = residual - flow * (1.0 / scale)
            _close_copies(residual, union, ~active)
            clip, scale = _refine_scale(float((upper - lower)[active].max()))
        raise RuntimeError(  # pragma: no cover - each round shrinks the gap ~1e6-fold
            f"max-flow refinement did not converge: gap {(upper - lower).max():.3g}"
        )

    def _levels(self, union: _Union, inside: np.ndarray, depth: int) -> np.ndarray:
        """Source side per copy and level ``[B, L-1, n]`` from the union node mask."""
        nodes = inside[: union.copies * union.per].reshape(union.copies, union.per)
        return nodes[:, : (depth - 1) * self.n].reshape(union.copies, depth - 1, self.n)

    def _full_cut(
        self,
        lo: int,
        hi: int,
        union: _Union,
        inside: np.ndarray,
        top_caps: np.ndarray,
        bottom_caps: np.ndarray,
    ) -> np.ndarray:
        """Full-graph capacity ``[B]`` of each copy's source side ``inside``.

        Summed layer by layer from the dense matrices, so it does not depend on how sparse
        the solved subgraph was. Layers whose upper side is empty or whose lower side is
        complete contribute nothing and are skipped; that covers the common certified case
        (everything but the sink on the source side) without touching the matrices.
        """
        depth = hi - lo
        level = self._levels(union, inside, depth)
        total = (top_caps * ~level[:, depth - 2]).sum(axis=1)
        total += (bottom_caps * level[:, 0]).sum(axis=1)
        for m, q in enumerate(range(lo + 1, hi - 1)):
            upper_side, lower_side = level[:, m + 1], level[:, m]
            busy = np.flatnonzero(upper_side.any(axis=1) & ~lower_side.all(axis=1))
            for b in busy:
                # A row-subset sum, not a matrix product: tiny BLAS calls are slow here
                # (thread start-up dominates on small machines).
                leaving = self.mixed[q][upper_side[b]].sum(axis=0)
                total[b] += leaving[~lower_side[b]].sum()
        # A copy whose source was not reached is cut at its super edge (capacity 1).
        source_in = inside[: union.copies * union.per].reshape(union.copies, union.per)[
            :, union.per - 2
        ]
        return np.where(source_in, total, 1.0)
