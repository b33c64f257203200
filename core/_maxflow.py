"""Exact maximum-flow values on the layered attention graph (the engine behind core.flow).

Graph of a stack of ``L`` transition matrices ``A_1 .. A_L`` (each ``[n, n]``, rows sum
to 1): nodes ``(l, i)`` for ``l = 0..L``; for ``l >= 1`` an edge ``(l, i) -> (l-1, j)`` of
capacity ``A_l[i, j]``. ``lambda(i, j)`` is the max-flow value from ``(L, i)`` to
``(0, j)``. Only row ``i`` of ``A_L`` and column ``j`` of ``A_1`` matter at the ends: other
top nodes are unreachable and other input nodes are dead ends.

Contract of :func:`max_flows` (the documented internal contract the tests check): every
value is a feasible flow of the real-valued graph and lies at most :data:`FLOW_ATOL` below
the capacity of a cut of that graph, so within ``FLOW_ATOL`` of the exact max flow; and
``report`` is called between slices of work, so raising from it cancels.

How:

* ``L == 1``: the only path is one edge, ``lambda = A_1[i, j]``.
* ``L == 2``: the paths ``(2,i) -> (1,m) -> (0,j)`` are edge-disjoint, so
  ``lambda = sum_m min(A_2[i, m], A_1[m, j])``, vectorised over all pairs.
* ``L >= 3``: one max flow per pair, by push-relabel compiled with numba. On real
  attention no cheap bound certifies most pairs (measured: the old hub and subgraph
  certificates settled few pairs and each fallback paid Python and scipy set-up), and a
  pair's flow differs too much from its neighbour's for a warm start to pay (measured:
  re-routing the previous sink's flow cost more than starting afresh).

  - Integers: capacities are ``floor(A * 2**60)``. Flow never exceeds the source's
    out-capacity (``2**60``), so int64 cannot overflow, and the integral max flow is
    exact; it is a feasible flow of the real graph (capacities were rounded down).
  - The level labelling ``d(l, i) = l`` is valid for every pair, so a pair starts without
    a breadth-first search; the highest active label is discharged first; the gap
    heuristic parks excess that can no longer reach the sink. At the end the parked
    nodes and the source are the source side of a minimum cut.
  - Certificate: that cut's real capacity, summed from the dense matrices, exceeds the
    flow by less than ``2**-60`` per cut edge (the rounding), far below ``FLOW_ATOL``; it
    is computed for every pair and checked, so a solver bug cannot go unnoticed.
  - Early stop: an explicit cut per sink, ``min(1, sum_k min(A_1[k, j], colsum(A_2)[k]))``
    (per level-1 node its edge into the sink or all its in-edges; or the source's edges),
    is what deep layers' flows usually reach. Once the sink holds that much (less
    ``FLOW_ATOL / 2``), the pair stops: that cut is its certificate.
  - Between pairs only the edges a pair touched are reset, so the dense state is built
    once per stack.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

__all__ = ["FLOW_ATOL", "max_flows"]

# Certified absolute error of every unnormalised flow value. A row-normalised value is
# then within (n + 1) * FLOW_ATOL / rowsum of exact, and rowsum >= 1.
FLOW_ATOL = 1e-9
_SCALE = float(2**60)
# Seconds of solver work between two calls of ``report`` (progress and Stop).
_SLICE_SECONDS = 0.1
# Solver threads (each holds its own flow state: about 25 bytes per inner edge).
_MAX_WORKERS = 2


# ----------------------------------------------------------------------------- kernel
# Node ids: level l = 1..L-1, token i -> (l - 1) * n + i; the sink is node N = (L-1) * n.
# The source is not a node: its edges are saturated at the start and never pushed back.
# Inner matrix m = 0..L-3 is A_{m+2}: edges from level m + 2 down to level m + 1.
# Labels run 0..N; N + 1 means parked (cannot reach the sink).


@njit(cache=True, nogil=True)
def _discharge_all(R, FT, rt, dirty, touched, ex, d, cur, head, nxt, count, enough):
    """Push-relabel from the initial preflow until no node that can reach the sink has
    excess, or the sink holds ``enough`` (a known cut's capacity: nothing more can come);
    returns the number of inner edges it touched (listed in ``touched``)."""
    n = rt.shape[0]
    levels = R.shape[0] + 2
    N = (levels - 1) * n
    INF = N + 1
    for b in range(INF + 1):
        head[b] = -1
        count[b] = 0
    # The level labelling d(l, i) = l is valid for every pair: no search needed to start.
    for v in range(N):
        d[v] = v // n + 1
        cur[v] = 0
        count[d[v]] += 1
    d[N] = 0
    top = 0
    for v in range(N):
        if ex[v] > 0:
            nxt[v] = head[d[v]]
            head[d[v]] = v
            top = max(top, d[v])
    ntouch = 0
    while top > 0:
        v = head[top]
        if v == -1:
            top -= 1
            continue
        head[top] = nxt[v]
        if d[v] != top or ex[v] == 0:
            continue
        level = v // n + 1
        i = v - (level - 1) * n
        # Arcs: forward to every token of the level below (from level 1: the sink only),
        # then backward along every edge into this node that carries flow.
        n_fwd = 1 if level == 1 else n
        n_arcs = n_fwd + (n if level <= levels - 2 else 0)
        while ex[v] > 0:
            a = cur[v]
            if a >= n_arcs:
                # Relabel: one more than the lowest neighbour with residual capacity.
                best = INF
                for b in range(n_arcs):
                    if b < n_fwd:
                        if level == 1:
                            r, w = rt[i], N
                        else:
                            r, w = R[level - 2, i, b], (level - 2) * n + b
                    else:
                        r, w = FT[level - 1, i, b - n_fwd], level * n + b - n_fwd
                    if r > 0 and d[w] < best:
                        best = d[w]
                old = d[v]
                count[old] -= 1
                if count[old] == 0:
                    # Gap: no node has label `old`, so nothing above it reaches the sink.
                    for u in range(N):
                        if old < d[u] < INF:
                            count[d[u]] -= 1
                            d[u] = INF
                    d[v] = INF
                    break
                if best + 1 >= INF:
                    d[v] = INF  # no residual path to the sink: park the excess
                    break
                d[v] = best + 1
                count[d[v]] += 1
                cur[v] = 0
                continue
            if a < n_fwd:
                k = a
                if level == 1:
                    r, w = rt[i], N
                else:
                    r, w = R[level - 2, i, k], (level - 2) * n + k
            else:
                k = a - n_fwd
                r, w = FT[level - 1, i, k], level * n + k
            if r > 0 and d[v] == d[w] + 1:
                delta = min(ex[v], r)
                if a >= n_fwd:
                    FT[level - 1, i, k] -= delta
                    R[level - 1, k, i] += delta
                elif level == 1:
                    rt[i] -= delta
                else:
                    m = level - 2
                    if not dirty[m, i, k]:
                        dirty[m, i, k] = True
                        touched[ntouch] = (m * n + i) * n + k
                        ntouch += 1
                    R[m, i, k] -= delta
                    FT[m, k, i] += delta
                ex[v] -= delta
                if w != N and ex[w] == 0:
                    nxt[w] = head[d[w]]
                    head[d[w]] = w
                    top = max(top, d[w])
                ex[w] += delta
                if w == N and ex[N] >= enough:
                    return ntouch
                if ex[v] == 0:
                    break
            cur[v] = a + 1
    return ntouch


@njit(cache=True, nogil=True)
def _cut_capacity(mixed, s, t, d, parked):
    """Real capacity of the cut whose source side is the source and the parked nodes."""
    levels, n, _ = mixed.shape
    total = 0.0
    for k in range(n):
        if d[(levels - 2) * n + k] < parked:
            total += mixed[levels - 1, s, k]
        if d[k] >= parked:
            total += mixed[0, k, t]
    for level in range(2, levels):
        for i in range(n):
            if d[(level - 1) * n + i] >= parked:
                for k in range(n):
                    if d[(level - 2) * n + k] < parked:
                        total += mixed[level - 1, i, k]
    return total


@njit(cache=True, nogil=True)
def _solve_pairs(mixed, caps, bound, tol, R, FT, rt, dirty, touched, ex, d, cur, head, nxt, count,
                 src, snk, value, upper, start, stop):  # fmt: skip
    """Solve pairs ``start..stop-1`` into ``value`` (flow) and ``upper`` (cut capacity)."""
    levels, n, _ = mixed.shape
    N = (levels - 1) * n
    for p in range(start, stop):
        s, t = src[p], snk[p]
        ex[:] = 0
        for k in range(n):
            # The source's edges start saturated (it is never pushed back to).
            ex[(levels - 2) * n + k] = caps[levels - 1, s, k]
            rt[k] = caps[0, k, t]
        # Stop as soon as the flow is within tol of the explicit cut bound bound[t].
        enough = np.int64(np.ceil((bound[t] - tol) * _SCALE))
        ntouch = _discharge_all(R, FT, rt, dirty, touched, ex, d, cur, head, nxt, count, enough)
        value[p] = ex[N] / _SCALE
        if ex[N] >= enough:
            upper[p] = bound[t]
        else:
            upper[p] = _cut_capacity(mixed, s, t, d, N + 1)
        # Undo: only the touched edges differ from the pristine capacities.
        for x in range(ntouch):
            c = touched[x]
            m, i, k = c // (n * n), (c // n) % n, c % n
            R[m, i, k] = caps[m + 1, i, k]
            FT[m, k, i] = 0
            dirty[m, i, k] = False


class _PairSolver:
    """Reusable state for :func:`_solve_pairs` on one stack ``mixed`` ``[L, n, n]``, L >= 3."""

    def __init__(self, mixed: np.ndarray, share: _PairSolver | None = None) -> None:
        levels, n, _ = mixed.shape
        if share is not None:
            # Read-only inputs are shared between threads; only the flow state is per solver.
            self.mixed, self.caps, self.bound = share.mixed, share.caps, share.bound
        else:
            self.mixed = np.ascontiguousarray(mixed, dtype=np.float64)
            # Exact: scaling by a power of two, then flooring, never exceeds the real
            # capacity.
            self.caps = np.floor(self.mixed * _SCALE).astype(np.int64)
            # A cut per sink: per level-1 node, its edge into the sink or all its
            # in-edges; or the source's edges (capacity 1). Deep stacks' flows often meet it.
            in_capacity = self.mixed[1].sum(axis=0)
            into_sink = np.minimum(self.mixed[0], in_capacity[:, None]).sum(axis=0)
            self.bound = np.minimum(1.0, into_sink)
        n_nodes = (levels - 1) * n
        self.R = self.caps[1 : levels - 1].copy()  # residual of inner edges [L-2, n, n]
        self.FT = np.zeros_like(self.R)  # flow, indexed [matrix, head, tail]
        self.rt = np.zeros(n, dtype=np.int64)  # residual of the edges into the sink
        self.dirty = np.zeros(self.R.shape, dtype=bool)
        self.touched = np.zeros(max(1, self.R.size), dtype=np.int64)
        self.ex = np.zeros(n_nodes + 1, dtype=np.int64)
        self.d = np.zeros(n_nodes + 1, dtype=np.int64)
        self.cur = np.zeros(n_nodes, dtype=np.int64)
        self.head = np.full(n_nodes + 2, -1, dtype=np.int64)
        self.nxt = np.full(n_nodes, -1, dtype=np.int64)
        self.count = np.zeros(n_nodes + 2, dtype=np.int64)

    def solve(
        self,
        src: np.ndarray,
        snk: np.ndarray,
        value: np.ndarray,
        upper: np.ndarray,
        start: int,
        stop: int,
    ) -> None:
        """Pairs ``start..stop-1`` of ``(src, snk)``: flows into ``value``, cuts into ``upper``."""
        _solve_pairs(
            self.mixed, self.caps, self.bound, FLOW_ATOL / 2, self.R, self.FT, self.rt,
            self.dirty, self.touched, self.ex, self.d, self.cur, self.head, self.nxt,
            self.count, src, snk, value, upper, start, stop,
        )  # fmt: skip


# ----------------------------------------------------------------------------- public


def max_flows(
    mixed: np.ndarray,
    sources: np.ndarray,
    sinks: np.ndarray,
    report: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Max-flow values ``[I, J]`` from top-level ``sources`` to input-token ``sinks``.

    Args:
        mixed: ``[L, n, n]`` float64 transition matrices ``A_1 .. A_L`` (entry ``q`` is
            ``A_{q+1}``), rows summing to 1, ``L >= 1``.
        sources: token indices ``[I]`` at level ``L``.
        sinks: token indices ``[J]`` at level 0.
        report: called with the number of pairs done so far, after every slice of about
            ``_SLICE_SECONDS`` of solver work; raising from it stops the computation.

    Returns:
        float64 ``[I, J]``; each value is a feasible flow within :data:`FLOW_ATOL` of the
        max flow (see the module docstring).

    Raises:
        RuntimeError: a value could not be certified (a solver bug, never expected).
    """
    mixed = np.ascontiguousarray(mixed, dtype=np.float64)
    sources = np.asarray(sources, dtype=np.int64)
    sinks = np.asarray(sinks, dtype=np.int64)
    depth = mixed.shape[0]
    if depth == 1:
        return mixed[0][np.ix_(sources, sinks)].copy()
    if depth == 2:
        return _two_layer(mixed, sources, sinks)
    src = np.repeat(sources, sinks.size)
    snk = np.tile(sinks, sources.size)
    value = np.zeros(src.size)
    upper = np.zeros(src.size)
    # The kernel releases the GIL, so a second thread with its own state uses a second
    # core; pairs are independent.
    workers = max(1, min(_MAX_WORKERS, os.cpu_count() or 1, src.size))
    solvers = [_PairSolver(mixed)]
    solvers += [_PairSolver(mixed, share=solvers[0]) for _ in range(workers - 1)]
    done, batch = 0, 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while done < src.size:
            bounds = [
                (min(src.size, done + w * batch), min(src.size, done + (w + 1) * batch))
                for w in range(workers)
            ]
            began = time.perf_counter()
            list(
                pool.map(
                    lambda job: job[0].solve(src, snk, value, upper, *job[1]),
                    zip(solvers, bounds, strict=True),
                )
            )
            stop = bounds[-1][1]
            per_pair = (time.perf_counter() - began) / (stop - done) * workers
            # Size the next slice to about _SLICE_SECONDS so progress and Stop stay
            # responsive.
            batch = max(1, min(4 * batch, int(_SLICE_SECONDS / max(per_pair, 1e-7))))
            done = stop
            if report is not None:
                report(done)
    gap = upper - value
    if not np.all(gap <= FLOW_ATOL):
        worst = int(np.argmax(gap))
        raise RuntimeError(  # pragma: no cover - the integral flow is exact
            f"max flow of pair ({src[worst]}, {snk[worst]}) not certified: gap {gap[worst]:.3g}"
        )
    return value.reshape(sources.size, sinks.size)


def _two_layer(mixed: np.ndarray, sources: np.ndarray, sinks: np.ndarray) -> np.ndarray:
    """``sum_m min(A_2[i, m], A_1[m, j])`` ``[I, J]``: two-edge paths are disjoint."""
    n = mixed.shape[-1]
    top = mixed[1][sources]  # [I, n]
    bottom = mixed[0][:, sinks]  # [n, J]
    out = np.empty((sources.size, sinks.size))
    # Bound the [chunk, n, J] temporary to a few tens of MB.
    chunk = max(1, 4_000_000 // max(1, n * sinks.size))
    for start in range(0, sources.size, chunk):
        part = top[start : start + chunk, :, None]
        out[start : start + chunk] = np.minimum(part, bottom[None]).sum(axis=1)
    return out
