"""Attention rollout (Abnar & Zuidema, 2020) and the input checks it shares with flow.

Conventions used throughout ``core.rollout`` and ``core.flow``:

* ``attentions`` is an array ``[layers, heads, n, n]``; ``attentions[l, h, i, j]`` is the
  weight that query ``i`` of layer ``l`` puts on key ``j``, so every row sums to 1.
* Per layer the chosen heads are averaged, ``W_l = mean_h attentions[l, h]`` ``[n, n]``.
* The residual connection is modelled as ``A_l = (W_l + I) / rowsum(W_l + I)``, which is
  ``0.5 * W_l + 0.5 * I`` when the rows of ``W_l`` sum to 1.
* Rollout: ``R_1 = A_1``, ``R_l = A_l @ R_{l-1}``; ``R_l[i, j]`` is the share of position
  ``i`` after layer ``l`` that comes from input token ``j``.

This module has no UI dependency; it only needs numpy. Its errors are ``AtlasError`` (a
``ValueError``) so the pages show them as messages.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.errors import InvalidAttentionError, InvalidSelectionError

__all__ = [
    "ROW_SUM_ATOL",
    "InvalidAttentionError",
    "InvalidSelectionError",
    "attention_rollout",
    "check_indices",
    "residual_attention",
    "row_sum_tolerance",
    "validate_attentions",
]

# Real models return float32 attention whose rows sum to 1 only up to ~1e-6; 1e-3 still
# catches arrays that are not attention at all (logits, unnormalised scores, a transpose).
ROW_SUM_ATOL = 1e-3

# Weights a model computed in half precision are each rounded to it (unit roundoff 2^-8 for
# bfloat16, 2^-11 for float16), so a row's sum can be off by up to that much: a bf16 model's
# rows sum to e.g. 0.997343. Twice the roundoff, never less than ROW_SUM_ATOL, still refuses
# logits and unnormalised scores.
_ROW_SUM_ATOL_BY_DTYPE = {"bfloat16": 2 * 2.0**-8, "float16": 2 * 2.0**-11}


def row_sum_tolerance(dtype: object) -> float:
    """How far from 1 a row of attention computed in `dtype` may sum (torch or NumPy dtype,
    or its name): :data:`ROW_SUM_ATOL` for float32/64, more for half precision."""
    name = str(dtype).removeprefix("torch.")
    return max(ROW_SUM_ATOL, _ROW_SUM_ATOL_BY_DTYPE.get(name, ROW_SUM_ATOL))


def validate_attentions(attentions: np.ndarray, *, atol: float | None = None) -> np.ndarray:
    """Check that ``attentions`` is a ``[layers, heads, n, n]`` row-stochastic array.

    Args:
        attentions: array-like ``[layers, heads, n, n]`` of non-negative weights whose rows
            (last axis) sum to 1 within ``atol``.
        atol: allowed deviation of a row sum from 1; default :data:`ROW_SUM_ATOL`. Weights
            a model computed in half precision need :func:`row_sum_tolerance` of its dtype.

    Returns:
        The input as a floating-point ndarray ``[layers, heads, n, n]``. The dtype is kept
        (float32 stays float32) so a large input is not copied just to be checked.

    Raises:
        InvalidAttentionError: wrong rank, non-square maps, an empty axis, NaN or infinite
            values, negative values, or rows that do not sum to 1.
    """
    try:
        arr = np.asarray(attentions)
    except Exception as exc:  # ragged nested lists and the like
        raise InvalidAttentionError(f"attentions could not be read as an array: {exc}") from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise InvalidAttentionError(f"attentions must hold real numbers, got dtype {arr.dtype}.")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if arr.ndim != 4:
        raise InvalidAttentionError(
            f"attentions must have 4 dimensions [layers, heads, n, n], got {arr.ndim} "
            f"with shape {tuple(arr.shape)}."
        )
    layers, heads, n_q, n_k = arr.shape
    if n_q != n_k:
        raise InvalidAttentionError(
            f"each attention map must be square (queries = keys), got {n_q} x {n_k}."
        )
    if layers == 0 or heads == 0 or n_q == 0:
        raise InvalidAttentionError(
            f"attentions must not be empty, got shape {tuple(arr.shape)} "
            "(need at least 1 layer, 1 head and 1 token)."
        )
    # One reduction instead of a full boolean mask: min() is NaN if any NaN is present.
    smallest = float(arr.min())
    if np.isnan(smallest):
        raise InvalidAttentionError("attentions contain NaN values.")
    if smallest < 0:
        raise InvalidAttentionError(
            f"attention weights must be non-negative, found {smallest:.3g}."
        )
    row_sums = arr.sum(axis=-1, dtype=np.float64)
    if not np.all(np.isfinite(row_sums)):
        raise InvalidAttentionError("attentions contain infinite values.")
    deviation = np.abs(row_sums - 1.0)
    worst = np.unravel_index(int(np.argmax(deviation)), deviation.shape)
    if deviation[worst] > (ROW_SUM_ATOL if atol is None else atol):
        layer, head, row = (int(x) for x in worst)
        raise InvalidAttentionError(
            "every attention row must sum to 1 (softmax output); layer "
            f"{layer}, head {head}, query {row} sums to {row_sums[worst]:.6g}. "
            "Pass attention probabilities, not logits."
        )
    return arr


def check_indices(values: Sequence[int] | np.ndarray, size: int, what: str) -> np.ndarray:
    """Return ``values`` as a sorted int array ``[k]`` after range and duplicate checks."""
    try:
        idx = np.asarray(values)
    except Exception as exc:
        raise InvalidSelectionError(f"{what} must be a sequence of integers: {exc}") from exc
    if idx.ndim != 1:
        raise InvalidSelectionError(f"{what} must be a flat sequence of integers.")
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        raise InvalidSelectionError(f"{what} must contain integers, got dtype {idx.dtype}.")
    idx = idx.astype(np.int64)
    bad = idx[(idx < 0) | (idx >= size)]
    if bad.size:
        raise InvalidSelectionError(
            f"{what} index {int(bad[0])} is out of range; valid indices are 0..{size - 1}."
        )
    if np.unique(idx).size != idx.size:
        raise InvalidSelectionError(f"{what} contains duplicate indices.")
    return np.sort(idx)


def residual_attention(
    attentions: np.ndarray,
    heads: Sequence[int] | None = None,
    ignore_tokens: Sequence[int] | None = None,
    n_layers: int | None = None,
    *,
    validated: bool = False,
    atol: float | None = None,
) -> np.ndarray:
    """Per-layer transition matrices ``A_l`` with the residual connection mixed in.

    Steps, per layer ``l``:

    1. ``W_l`` = mean over the selected ``heads`` of ``attentions[l, h]`` ``[n, n]``.
    2. If ``ignore_tokens`` is given, the *key columns* of those positions are set to 0 in
       ``W_l`` and every row is rescaled to sum to 1 again, i.e. each query's attention is
       redistributed over the remaining keys in proportion to what it already had. A row
       that put all of its weight on ignored keys becomes all zeros. The ignored positions
       stay in the graph as queries and keep their residual path, so they still appear in
       the output, but no other position draws anything from them.
    3. ``A_l = (W_l + I) / rowsum(W_l + I)``: half residual, half attention for a normal
       row; a row emptied in step 2 keeps only its residual (``A_l[i] = e_i``).

    Args:
        attentions: ``[layers, heads, n, n]`` row-stochastic attention.
        heads: head indices to average (default: all heads).
        ignore_tokens: token positions whose key columns are removed (default: none).
        n_layers: only build the first ``n_layers`` layers (default: all).
        validated: skip :func:`validate_attentions` (the caller already ran it).
        atol: row-sum tolerance for :func:`validate_attentions` (see
            :func:`row_sum_tolerance`).

    Returns:
        float64 array ``[n_layers, n, n]``; entry ``l`` is ``A_{l+1}``. Rows sum to 1.

    Raises:
        InvalidAttentionError: see :func:`validate_attentions`.
        InvalidSelectionError: bad ``heads`` or ``ignore_tokens``.
    """
    arr = attentions if validated else validate_attentions(attentions, atol=atol)
    layers, n_heads, n, _ = arr.shape
    n_layers = layers if n_layers is None else n_layers
    if heads is None:
        per_layer = arr[:n_layers].mean(axis=1, dtype=np.float64)
    else:
        head_idx = check_indices(heads, n_heads, "heads")
        if head_idx.size == 0:
            raise InvalidSelectionError("heads must select at least one head.")
        # Index per layer so only the selected heads are ever materialised.
        per_layer = np.stack(
            [arr[layer, head_idx].mean(axis=0, dtype=np.float64) for layer in range(n_layers)]
        )
    if ignore_tokens is not None:
        ignored = check_indices(ignore_tokens, n, "ignore_tokens")
        if ignored.size:
            per_layer[:, :, ignored] = 0.0
            totals = per_layer.sum(axis=-1, keepdims=True)
            np.divide(per_layer, totals, out=per_layer, where=totals > 0)
    diagonal = np.arange(n)
    per_layer[:, diagonal, diagonal] += 1.0
    per_layer /= per_layer.sum(axis=-1, keepdims=True)
    return per_layer


def attention_rollout(
    attentions: np.ndarray,
    heads: Sequence[int] | None = None,
    ignore_tokens: Sequence[int] | None = None,
    *,
    atol: float | None = None,
) -> np.ndarray:
    """Attention rollout for every layer.

    ``R_1 = A_1`` and ``R_l = A_l @ R_{l-1}`` with ``A_l`` from :func:`residual_attention`
    (the newer layer multiplies on the left).

    Args:
        attentions: ``[layers, heads, n, n]`` row-stochastic attention.
        heads: head indices to average per layer (default: all heads).
        ignore_tokens: token positions whose key columns are removed before mixing in the
            residual; see :func:`residual_attention` for the exact rule.
        atol: row-sum tolerance (see :func:`row_sum_tolerance`).

    Returns:
        float64 array ``[layers, n, n]``; entry ``l`` is ``R_{l+1}``, and
        ``out[l, i, j]`` is the share of position ``i`` after layer ``l + 1`` that comes
        from input token ``j``. Every row sums to 1.

    Raises:
        InvalidAttentionError: malformed attentions (see :func:`validate_attentions`).
        InvalidSelectionError: bad ``heads`` or ``ignore_tokens``.
    """
    mixed = residual_attention(attentions, heads=heads, ignore_tokens=ignore_tokens, atol=atol)
    out = np.empty_like(mixed)
    out[0] = mixed[0]
    for layer in range(1, mixed.shape[0]):
        np.matmul(mixed[layer], out[layer - 1], out=out[layer])
    return out
