"""Attention flow (Abnar & Zuidema, 2020), computed exactly.

Graph: nodes ``(l, i)`` for ``l = 0..L`` (``l = 0`` are the input tokens) and, for
``l >= 1``, an edge ``(l, i) -> (l-1, j)`` with capacity ``A_l[i, j]``, where ``A_l`` is
the head-averaged attention with the residual mixed in (see
:func:`core.rollout.residual_attention`). ``F_L[i, j]`` is the maximum-flow value from
``(L, i)`` to ``(0, j)``; each row is then divided by its sum.

Every unnormalised max-flow value is certified to lie within :data:`FLOW_ATOL` (1e-9) of
the exact one: the solver returns a feasible flow at most that far below the capacity of a
cut. How it gets there quickly is described in :mod:`core._maxflow`.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from core._maxflow import FLOW_ATOL, SOLVER_THREADS, max_flows
from core.errors import ComputationCancelled, FlowCancelled
from core.rollout import (
    InvalidSelectionError,
    check_indices,
    residual_attention,
    validate_attentions,
)

__all__ = [
    "FLOW_ATOL",
    "FLOW_MAX_TOKENS",
    "FULL_FLOW_DEFAULT_MAX_TOKENS",
    "ComputationCancelled",
    "FlowCancelled",
    "attention_flow",
    "full_flow_is_fast",
    "solver_threads",
    "warm_up",
]

# Longest input whose full n x n flow stays within the 10 s target at every layer of the
# embedded 6-layer model on real text (bench/RESULTS.md, flow section): on the 2-core VM with
# nothing else running, a full 128 x 128 took at most 9.3 s (code, layer index 4; five kinds
# of text, layer indices 3-5), and 256 x 256 up to 114 s, which misses. A page offers the
# full matrix by default up to here and chosen rows beyond.
FULL_FLOW_DEFAULT_MAX_TOKENS = 128

# The longest input flow is computed for at all, even for one chosen row at one layer. A pair
# costs about (layers - 1) * n² arc visits, so a row about layers * n³: measured 0.6-3.3 s per
# row at 512 tokens on MiniLM's layers 2-5 on two quiet cores (bench/RESULTS.md, flow), that is
# ≈ 5-26 s at 1,024 and ≈ 40-210 s per row at 2,048 (n³), beyond what a page waits for; at
# 4,096 ≈ 5-28 minutes per row. Longer texts: flow of a window of the text (fewer tokens).
FLOW_MAX_TOKENS = 1024


def _layer_index(layer: int, layers: int) -> int:
    """0-based layer index from a possibly negative ``layer``; raises if out of range."""
    if isinstance(layer, bool):
        raise InvalidSelectionError("layer must be an integer, got a bool.")
    try:
        index = operator.index(layer)
    except TypeError as exc:
        raise InvalidSelectionError(
            f"layer must be an integer, got {type(layer).__name__}."
        ) from exc
    if not -layers <= index < layers:
        raise InvalidSelectionError(
            f"layer {index} is out of range for a model with {layers} layers "
            f"(valid: {-layers}..{layers - 1})."
        )
    return index % layers


@contextlib.contextmanager
def solver_threads(threads: int) -> Iterator[None]:
    """Compute flows inside the block on at most `threads` threads (default: two).

    For a caller that shares the machine (a server gives each admitted request its share of
    the cores): it holds for the current thread's context only, so other requests, and the
    process, keep their own."""
    if threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    token = SOLVER_THREADS.set(threads)
    try:
        yield
    finally:
        SOLVER_THREADS.reset(token)


def full_flow_is_fast(n: int) -> bool:
    """Whether a full ``n x n`` flow matrix is quick enough to compute by default.

    True up to :data:`FULL_FLOW_DEFAULT_MAX_TOKENS` tokens (measured, see there); longer
    inputs should offer chosen rows, or the full matrix with progress and Stop.
    """
    return 0 <= n <= FULL_FLOW_DEFAULT_MAX_TOKENS


def warm_up() -> None:
    """Compile (or load from numba's cache) the max-flow solver now, on a tiny input.

    The solver is compiled on first use: measured 4.5-10 s the first time on a machine,
    0.2 s from the on-disk cache afterwards (bench/RESULTS.md, flow). A server calls this
    once at start, in a background thread, so that the first flow a visitor asks for does
    not pay it; calling it again, or concurrently with a flow, is harmless (numba compiles
    each kernel once, under its own lock).
    """
    # Three layers: the smallest stack the compiled solver handles (its values are
    # certified inside the solver; a row of a flow matrix sums to 1 after normalising).
    uniform = np.full((3, 1, 3, 3), 1.0 / 3.0)
    out = attention_flow(uniform, layer=2)
    if not np.allclose(out.sum(axis=1), 1.0, rtol=0, atol=1e-12):  # pragma: no cover
        raise RuntimeError("the max-flow solver gave a wrong value on its warm-up input.")


def attention_flow(
    attentions: np.ndarray,
    layer: int = -1,
    rows: Sequence[int] | None = None,
    progress: Callable[[int, int], bool | None] | None = None,
    heads: Sequence[int] | None = None,
    ignore_tokens: Sequence[int] | None = None,
    *,
    atol: float | None = None,
) -> np.ndarray:
    """Attention flow at one layer, row-normalised.

    Args:
        attentions: ``[layers, heads, n, n]`` row-stochastic attention.
        layer: 0-based layer index (negative counts from the end). Index ``l`` uses the
            graph of the first ``l + 1`` layers, i.e. returns ``F_{l+1}``.
        rows: source positions to compute (default: all). Other rows are NaN; each computed
            row still covers all ``n`` input tokens so it can be normalised.
        progress: called as ``progress(done, total)`` while working (``total`` = number of
            (row, token) pairs requested; ``done`` never decreases): once at the start,
            after each slice of about 0.1 s of solver work, and with ``(total, total)`` at
            the end. Returning ``False`` stops the computation and
            raises :class:`FlowCancelled`; any other return value continues.
        heads: head indices to average (default: all).
        ignore_tokens: positions whose key columns are removed before mixing in the
            residual; see :func:`core.rollout.residual_attention` for the exact rule.
        atol: row-sum tolerance (see :func:`core.rollout.row_sum_tolerance`).

    Returns:
        float64 array ``[n, n]``: ``out[i, j]`` is the max flow from position ``i`` at the
        chosen layer to input token ``j``, divided by the sum of row ``i``. Rows not in
        ``rows`` are NaN.

    Raises:
        InvalidAttentionError: malformed attentions.
        InvalidSelectionError: ``layer``, ``rows``, ``heads`` or ``ignore_tokens`` invalid.
        FlowCancelled: ``progress`` returned ``False``.
    """
    arr = validate_attentions(attentions, atol=atol)
    layers, _, n, _ = arr.shape
    top = _layer_index(layer, layers)
    sources = np.arange(n) if rows is None else check_indices(rows, n, "rows")
    mixed = residual_attention(
        arr, heads=heads, ignore_tokens=ignore_tokens, n_layers=top + 1, validated=True
    )

    total = int(sources.size) * n

    def notify(done: int) -> None:
        if progress is not None and progress(done, total) is False:
            raise FlowCancelled(f"attention flow cancelled after {done} of {total} pairs.")

    notify(0)
    values = max_flows(mixed, sources, np.arange(n), report=notify)
    if progress is not None:
        progress(total, total)

    out = np.full((n, n), np.nan)
    # A row sums to >= 1: rollout is a feasible flow to every token at once and its row
    # sums to 1, so no division by zero is possible.
    out[sources] = values / values.sum(axis=1, keepdims=True)
    return out
