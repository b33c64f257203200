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
* ``L >= 3``, blocks of at least ``_HUB_MIN_SOURCES`` sources on stacks of depth >= 4:
  hub certificates first (:func:`_hub_certify`): a flow crosses a middle level once, so
  one max flow per source into a distribution over that level and one per sink out of it
  bound every pair of the block from below; pairs whose bound reaches the sink's explicit
  cut are settled without a max flow of their own. That settles most pairs of
  softmax-like attention at deep layers (the previous benchmark's inputs) and a share of
  real attention's top layers; each hub is tried on a sample of sinks first, so it costs
  little where it settles nothing (real attention at shallow layers).
* ``L >= 3``, every other pair: one max flow per pair, by push-relabel compiled with
  numba. On real attention no cheap bound certifies most pairs (measured: min cuts differ
  from pair to pair, so cuts found for one pair rarely bound another), and a pair's flow
  differs too much from its neighbour's for a warm start to pay (measured: re-routing the
  previous sink's flow cost more than starting afresh).

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

import contextvars
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

__all__ = ["FLOW_ATOL", "SOLVER_THREADS", "max_flows"]

# Certified absolute error of every unnormalised flow value. A row-normalised value is
# then within (n + 1) * FLOW_ATOL / rowsum of exact, and rowsum >= 1.
FLOW_ATOL = 1e-9
_SCALE = float(2**60)
# Seconds of solver work between two calls of ``report`` (progress and Stop).
_SLICE_SECONDS = 0.1
# Solver threads (each holds its own flow state: about 25 bytes per inner edge).
_MAX_WORKERS = 2
SOLVER_THREADS: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "SOLVER_THREADS", default=None
)
"""Most solver threads for flows computed in the current context (None: `_MAX_WORKERS`); set
with `core.flow.solver_threads`. A context variable, not a global: a server's setting for
one request leaves every other request and a notebook alone."""
# Hub certificates (see _hub_certify): stacks of at least this depth (shallower legs
# would be as costly as the pairs) and blocks of at least this many sources (a hub costs
# one max flow per source and per sink; measured on real attention, one row at 512 tokens:
# 7-11 CPU s of legs for 70 % of the pairs, slower than solving them); the tokens with the
# largest in-capacity tried as single-node hubs; sinks a hub is tried on first, and the
# share of those it must settle to be used for all.
_HUB_MIN_DEPTH = 4
_HUB_MIN_SOURCES = 8
_HUB_TOKENS = 2
_HUB_SAMPLE = 8
_HUB_MIN_SHARE = 0.25


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
        fwd_m = level - 2  # matrix of the forward arcs (level >= 2)
        fwd_base = (level - 2) * n
        back_base = level * n
        has_back = level <= levels - 2
        while ex[v] > 0:
            a = cur[v]
            if a >= n_arcs:
                # Relabel: one more than the lowest neighbour with residual capacity.
                best = INF
                if level == 1:
                    if rt[i] > 0:
                        best = 0
                else:
                    for b in range(n):
                        if R[fwd_m, i, b] > 0 and d[fwd_base + b] < best:
                            best = d[fwd_base + b]
                if has_back:
                    for b in range(n):
                        if FT[level - 1, i, b] > 0 and d[back_base + b] < best:
                            best = d[back_base + b]
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
            target = d[v] - 1
            if a < n_fwd:
                if level == 1:
                    if rt[i] > 0 and target == 0:
                        delta = min(ex[v], rt[i])
                        rt[i] -= delta
                        ex[v] -= delta
                        ex[N] += delta
                        if ex[N] >= enough:
                            return ntouch
                        if ex[v] == 0:
                            break
                    a = 1
                else:
                    # Forward arcs: scan for admissible ones without leaving the loop.
                    # The push below is written out again for backward arcs on purpose: one
                    # shared `@njit(inline="always")` helper made a full 128-token flow on
                    # MiniLM 15-25 % slower (6.1-7.0 s -> 7.3-8.5 s, 2026-12-01).
                    while a < n:
                        w = fwd_base + a
                        r = R[fwd_m, i, a]
                        if r > 0 and d[w] == target:
                            delta = min(ex[v], r)
                            if not dirty[fwd_m, i, a]:
                                dirty[fwd_m, i, a] = True
                                touched[ntouch] = (fwd_m * n + i) * n + a
                                ntouch += 1
                            R[fwd_m, i, a] = r - delta
                            FT[fwd_m, a, i] += delta
                            ex[v] -= delta
                            if ex[w] == 0:
                                nxt[w] = head[target]
                                head[target] = w
                                if target > top:
                                    top = target
                            ex[w] += delta
                            if ex[v] == 0:
                                break
                        a += 1
                    if ex[v] == 0:
                        cur[v] = a
                        break
                cur[v] = a
                continue
            # Backward arcs: return flow along edges into this node.
            k = a - n_fwd
            while k < n:
                w = back_base + k
                r = FT[level - 1, i, k]
                if r > 0 and d[w] == target:
                    delta = min(ex[v], r)
                    FT[level - 1, i, k] = r - delta
                    R[level - 1, k, i] += delta
                    ex[v] -= delta
                    if ex[w] == 0:
                        nxt[w] = head[target]
                        head[target] = w
                        if target > top:
                            top = target
                    ex[w] += delta
                    if ex[v] == 0:
                        break
                k += 1
            cur[v] = k + n_fwd
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
            self.bound = _sink_bound(self.mixed)
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
        report: called with the number of pairs done so far (never decreasing), during
            the hub certificates (the pairs they settled so far, as their leg flows
            progress) and after every slice of about ``_SLICE_SECONDS`` of solver
            work; raising from it stops the computation.

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
    out = np.full((sources.size, sinks.size), np.nan)
    pending = np.ones(out.shape, dtype=bool)
    if depth >= _HUB_MIN_DEPTH and sources.size >= _HUB_MIN_SOURCES and sinks.size >= 2:
        _hub_certify(mixed, sources, sinks, out, pending, report)
    certified = out.size - int(pending.sum())
    if report is not None and certified:
        report(certified)
    rows, cols = np.nonzero(pending)
    value = _solve_pairs_threaded(
        mixed,
        sources[rows],
        sinks[cols],
        None if report is None else (lambda done: report(certified + done)),
    )
    out[rows, cols] = value
    return out


def _solve_pairs_threaded(
    mixed: np.ndarray,
    src: np.ndarray,
    snk: np.ndarray,
    report: Callable[[int], None] | None,
) -> np.ndarray:
    """Certified max flows ``[P]`` of the pairs ``(src[p], snk[p])``, one by one (L >= 3)."""
    value = np.zeros(src.size)
    upper = np.zeros(src.size)
    if src.size == 0:
        return value
    # The kernel releases the GIL, so each thread with its own state uses its own core;
    # pairs are independent. Threads take small chunks of pairs from a shared counter
    # (no thread waits for a slower one), while this thread reports progress every
    # _SLICE_SECONDS and, if ``report`` raises, lets the workers finish their chunk only.
    cap = SOLVER_THREADS.get() or _MAX_WORKERS
    workers = max(1, min(cap, os.cpu_count() or 1, src.size))
    solvers = [_PairSolver(mixed)]
    solvers += [_PairSolver(mixed, share=solvers[0]) for _ in range(workers - 1)]
    lock = threading.Lock()
    changed = threading.Condition(lock)
    state = {"next": 0, "done": 0, "stop": False}

    def work(solver: _PairSolver) -> None:
        chunk = 1
        while True:
            with lock:
                start = state["next"]
                if state["stop"] or start >= src.size:
                    return
                stop = min(src.size, start + chunk)
                state["next"] = stop
            began = time.perf_counter()
            solver.solve(src, snk, value, upper, start, stop)
            per_pair = (time.perf_counter() - began) / (stop - start)
            # Chunks of about a tenth of a slice: short enough to balance the threads
            # and to stop soon, long enough that taking them costs nothing.
            chunk = max(1, min(4 * chunk, int(_SLICE_SECONDS / 10 / max(per_pair, 1e-7))))
            with changed:
                state["done"] += stop - start
                changed.notify()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(work, solver) for solver in solvers]
        try:
            reported, deadline = 0, time.perf_counter() + _SLICE_SECONDS
            while True:
                with changed:
                    # Woken by every finished chunk; report once per slice and at the end.
                    left = deadline - time.perf_counter()
                    if state["done"] < src.size and left > 0:
                        changed.wait(left)
                    done = state["done"]
                if done < src.size and all(future.done() for future in futures):
                    break  # a worker failed: its exception is raised below
                if done < src.size and time.perf_counter() < deadline:
                    continue
                deadline = time.perf_counter() + _SLICE_SECONDS
                if report is not None and done > reported:
                    report(done)
                    reported = done
                if done >= src.size:
                    break
        finally:
            with lock:
                state["stop"] = True
            for future in futures:
                future.result()
    gap = upper - value
    if not np.all(gap <= FLOW_ATOL):
        worst = int(np.argmax(gap))
        raise RuntimeError(  # pragma: no cover - the integral flow is exact
            f"max flow of pair ({src[worst]}, {snk[worst]}) not certified: gap {gap[worst]:.3g}"
        )
    return value


# ----------------------------------------------------------------------------- hubs


def _sink_bound(mixed: np.ndarray) -> np.ndarray:
    """Cut bound per sink ``[n]``: ``min(1, sum_k min(A_1[k, j], colsum(A_2)[k]))``.

    Explicit cuts: the source's edges (capacity 1), or per level-1 node the cheaper of its
    edge into the sink and all its in-edges. Valid for stacks of depth >= 2.
    """
    in_capacity = mixed[1].sum(axis=0)
    into_sink = np.minimum(mixed[0], in_capacity[:, None]).sum(axis=0)
    return np.minimum(1.0, into_sink)


def _hub_certify(
    mixed: np.ndarray,
    sources: np.ndarray,
    sinks: np.ndarray,
    out: np.ndarray,
    pending: np.ndarray,
    report: Callable[[int], None] | None = None,
) -> None:
    """Settle pairs through hubs: fills ``out`` ``[I, J]`` and clears ``pending`` there.

    A flow crosses the middle level ``h`` exactly once, and the stack below ``h`` shares
    no edge with the stack above. So if the source can deliver ``u`` to level ``h`` and
    the sink can absorb ``w`` from it, ``lambda >= sum(min(u, w))``. For a distribution
    ``z`` over level ``h`` (uniform, or one token with a large in-capacity), the up leg
    is one max flow from each source into ``z`` (capacity ``z_k`` out of node ``k``) and
    the down leg one max flow from ``z`` to each sink; ``x = min(u, w)`` gives
    ``lambda >= sum(u) + sum(w) - sum(z)``. Where that reaches the sink's cut bound
    (:func:`_sink_bound`), the pair is settled: ``|I| + |J|`` half-depth max flows instead
    of ``|I| * |J|`` full ones. Softmax-like attention that spreads its weight (the
    previous benchmark's inputs, deep layers) is settled almost entirely this way; real
    attention at shallow layers hardly ever, so each hub is first tried on a sample of
    sinks and skipped unless it settles a fair share of them.
    """
    depth, n, _ = mixed.shape
    hub_level = depth // 2
    bound = _sink_bound(mixed)[sinks]

    def tick(_legs_done: int) -> None:
        # The legs' own slices pass through here, so progress and Stop reach the caller
        # during this stage too; the count is the pairs settled so far (never decreasing).
        if report is not None:
            report(out.size - int(pending.sum()))

    in_capacity = mixed[hub_level].sum(axis=0)  # into the level-`hub_level` nodes
    tokens = np.argsort(-in_capacity, kind="stable")[:_HUB_TOKENS]
    hubs = [np.full(n, 1.0 / n)]
    for token in tokens:
        single = np.zeros(n)
        single[token] = 1.0
        hubs.append(single)
    for hub in hubs:
        rows = np.flatnonzero(pending.any(axis=1))
        cols = np.flatnonzero(pending.any(axis=0))
        if rows.size == 0:
            return
        up = _hub_leg_up(mixed, hub_level, hub, sources[rows], tick)  # [R]
        # Try the hub on a few sinks first: if it settles few of them, its down legs
        # (one max flow per sink) would cost more than they save.
        sample = cols[np.linspace(0, cols.size - 1, min(cols.size, _HUB_SAMPLE)).astype(int)]
        down = _hub_leg_down(mixed, hub_level, hub, sinks[sample], tick)  # [S]
        hit = up[:, None] + down[None, :] - hub.sum() >= bound[sample][None, :] - FLOW_ATOL
        if hit.mean() < _HUB_MIN_SHARE:
            continue
        rest = np.setdiff1d(cols, sample)
        lower = np.empty(cols.size)
        lower[np.searchsorted(cols, sample)] = down
        lower[np.searchsorted(cols, rest)] = _hub_leg_down(mixed, hub_level, hub, sinks[rest], tick)
        via_hub = up[:, None] + lower[None, :] - hub.sum()  # [R, C]
        block = np.ix_(rows, cols)
        newly = pending[block] & (via_hub >= bound[cols][None, :] - FLOW_ATOL)
        # The flow through the hub is feasible; the bound is a cut at most FLOW_ATOL above.
        settled = np.minimum(via_hub, bound[cols][None, :])
        out[block] = np.where(newly, settled, out[block])
        pending[block] &= ~newly


def _hub_leg_up(
    mixed: np.ndarray,
    hub_level: int,
    hub: np.ndarray,
    sources: np.ndarray,
    report: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Max flow ``[R]`` from each top-level source into level ``hub_level``, node ``k``
    passing on at most ``hub[k]``: the stack above the hub with one extra bottom matrix
    whose column 0 is ``hub``."""
    n = mixed.shape[-1]
    into = np.zeros((1, n, n))
    into[0, :, 0] = hub
    stack = np.concatenate([into, mixed[hub_level:]])
    return max_flows(stack, sources, np.zeros(1, dtype=np.int64), report)[:, 0]


def _hub_leg_down(
    mixed: np.ndarray,
    hub_level: int,
    hub: np.ndarray,
    sinks: np.ndarray,
    report: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Max flow ``[S]`` from supplies ``hub`` at level ``hub_level`` to each sink: the stack
    below the hub with one extra top matrix whose row 0 is ``hub``."""
    n = mixed.shape[-1]
    out_of = np.zeros((1, n, n))
    out_of[0, 0, :] = hub
    stack = np.concatenate([mixed[:hub_level], out_of])
    return max_flows(stack, np.zeros(1, dtype=np.int64), sinks, report)[0]


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
