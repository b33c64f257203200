"""What the head view ships to the browser: one layer's lines, pruned, rounded, compact.

Pure and Streamlit-free, so it is tested without a browser. The component
(:mod:`ui.head_view.component`) sends :func:`payload_json` of :func:`build_payload` as is.

Every head of the layer is shipped, so toggling, isolating and hovering need no server round
trip. A line (query ``q`` on the left, key ``k`` on the right) of a head is kept when it is
among the ``top_k`` strongest of its query's row *or* of its key's column (so hovering a token
on either side shows its strongest lines) and its weight is at least ``threshold``: below
that its opacity would be under one percent of full and invisible anyway. Weights travel as
integers in thousandths (``round(w * 1000)``), a line per ``q, k, w`` triple.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.errors import InvalidAttentionError, InvalidSelectionError
from core.tokens import PIECE_MARKER
from ui.payload_checks import one_layer, optional_index, segment_start, token_labels

DEFAULT_TOP_K = 8
DEFAULT_THRESHOLD = 0.01
WEIGHT_SCALE = 1000  # weights are shipped as integers in units of 1 / WEIGHT_SCALE
PAYLOAD_VERSION = 1


def build_payload(
    attention: Any,
    left_tokens: Sequence[str],
    right_tokens: Sequence[str] | None = None,
    *,
    heads: Sequence[int] | None = None,
    selected: int | None = None,
    colour_scale_max: float | None = None,
    colour_scale_name: str = "fixed scale",
    causal: bool = False,
    segment_b_start: int | None = None,
    piece_marks: Sequence[bool] | tuple[Sequence[bool], Sequence[bool]] | None = None,
    top_k: int = DEFAULT_TOP_K,
    threshold: float = DEFAULT_THRESHOLD,
    single: str | None = None,
) -> dict[str, Any]:
    """The browser's data for one layer of attention.

    `attention` is ``[heads, queries, keys]`` (one layer); queries are `left_tokens`, keys are
    `right_tokens` (cross attention) or the same tokens again (self attention, the default).
    `heads` lists the heads shown at first (all when ``None``; every head is listed and
    shipped either way). `selected` is a query index whose lines are highlighted.
    `colour_scale_max` is the weight drawn at full opacity (``None``: this layer's maximum);
    `colour_scale_name` says what that maximum is, in the note.
    `causal` drops lines to later tokens. `segment_b_start` is the first token of sentence B
    of a pair. `piece_marks` flags the tokens that continue the previous token's word (a
    sequence per side for cross attention, or one for both sides). `single` names the one
    matrix of a method without heads (e.g. "rollout"): the browser then draws no head legend
    (one chip "0" meant nothing). The returned dict's keys are short on purpose: it is sent on
    every run.
    """
    weights = _validated_attention(attention)
    if single is not None and weights.shape[0] != 1:
        raise InvalidSelectionError(
            f"A method without heads has one matrix per layer, not {weights.shape[0]}."
        )
    n_heads, n_queries, n_keys = weights.shape
    left = token_labels(left_tokens, n_queries, "left_tokens", "queries")
    cross = right_tokens is not None
    if cross:
        right = token_labels(right_tokens, n_keys, "right_tokens", "keys")
        if causal:
            raise InvalidSelectionError(
                "Cross attention has no causal mask: causal=True applies to self attention only."
            )
    else:
        if n_queries != n_keys:
            raise InvalidAttentionError(
                f"Self attention must be square, but it has {n_queries} queries and {n_keys} "
                "keys: pass the keys' tokens as right_tokens for cross attention."
            )
        right = left
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
        raise InvalidSelectionError(f"top_k must be a whole number of at least 1, not {top_k!r}.")
    threshold = float(threshold)
    if not 0 <= threshold < 1:
        raise InvalidSelectionError(f"threshold must be in [0, 1), not {threshold}.")

    shown = _validated_heads(heads, n_heads)
    chosen = optional_index(selected, n_queries, "selected token")
    segment = segment_start(segment_b_start, n_queries)
    left_marks, right_marks = _validated_piece_marks(piece_marks, n_queries, n_keys, cross)

    if causal:
        # Later keys get nothing, whatever the array holds (e.g. rounding in a stored result).
        weights = np.where(np.tril(np.ones((n_queries, n_keys), dtype=bool)), weights, 0.0)
    layer_max = float(weights.max()) if weights.size else 0.0
    if colour_scale_max is None:
        scale_max, scale_kind = (layer_max if layer_max > 0 else 1.0), "layer"
    else:
        scale_max = float(colour_scale_max)
        if not np.isfinite(scale_max) or scale_max <= 0:
            raise InvalidSelectionError(
                f"colour_scale_max must be a positive number, not {colour_scale_max!r}."
            )
        scale_kind = "fixed"

    kept = strongest_lines(weights, int(top_k), threshold)
    edges = []
    total_kept = 0
    for head in range(n_heads):
        queries, keys = np.nonzero(kept[head])
        values = weights[head, queries, keys].astype(np.float64)
        milli = np.rint(values * WEIGHT_SCALE).astype(np.int64)
        # A weight that rounds to 0 would be an invisible line: not worth its bytes.
        visible = milli > 0
        queries, keys, milli = queries[visible], keys[visible], milli[visible]
        total_kept += len(milli)
        edges.append(np.stack([queries, keys, milli], axis=1).ravel().tolist())

    return {
        "v": PAYLOAD_VERSION,
        "left": left,
        "right": right if cross else None,
        "heads": n_heads,
        "single": single,
        "shown": shown,
        "sel": chosen,
        "max": round(scale_max, 4),
        "scale": scale_kind,
        "causal": bool(causal),
        "segB": segment,
        "pieces": left_marks,
        # The same marker as every other view's labels ("##woman"), drawn before the piece.
        "marker": PIECE_MARKER,
        "rpieces": right_marks if cross else None,
        "topK": int(top_k),
        "thr": threshold,
        "ws": WEIGHT_SCALE,
        "edges": edges,
        "note": _note(
            int(top_k),
            threshold,
            total_kept,
            n_heads * n_queries * n_keys,
            scale_max,
            scale_kind if colour_scale_max is None else colour_scale_name,
            causal,
        ),
    }


def payload_json(payload: dict[str, Any]) -> str:
    """Compact JSON (no spaces) of a :func:`build_payload` result."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def strongest_lines(weights: np.ndarray, top_k: int, threshold: float) -> np.ndarray:
    """Which lines to draw: ``[heads, queries, keys]`` booleans.

    A line is kept when it is among the `top_k` largest of its row (the query's outgoing
    lines) or of its column (the key's incoming lines) within its head, and its weight is at
    least `threshold` (and above zero). Lines tied with the k-th largest are all kept.
    """
    _, n_queries, n_keys = weights.shape
    keep = np.zeros(weights.shape, dtype=bool)
    # np.partition on values is several times faster than argpartition at 512 tokens; the
    # k-th largest value of each row/column is the cut.
    if top_k >= n_keys:
        keep[:] = True
    else:
        row_cut = -np.partition(-weights, top_k - 1, axis=2)[:, :, top_k - 1 : top_k]
        keep |= weights >= row_cut
    if top_k >= n_queries:
        keep[:] = True
    else:
        columns = np.ascontiguousarray(weights.transpose(0, 2, 1))
        column_cut = -np.partition(-columns, top_k - 1, axis=2)[:, :, top_k - 1]
        keep |= weights >= column_cut[:, None, :]
    return keep & (weights >= threshold) & (weights > 0)


def _note(
    top_k: int,
    threshold: float,
    kept: int,
    total: int,
    scale_max: float,
    scale_kind: str,
    causal: bool,
) -> str:
    scale = (
        f"full opacity at {scale_max:.3g} (this layer's maximum)"
        if scale_kind == "layer"
        else f"full opacity at {scale_max:.3g} ({scale_kind})"
    )
    causal_note = " No lines to later tokens (causal)." if causal else ""
    return (
        f"Lines: the {top_k} strongest per token and head, weight ≥ {threshold:g} "
        f"({kept:,} of {total:,}). Opacity ∝ weight, {scale}.{causal_note}"
    )


def _validated_attention(attention: Any) -> np.ndarray:
    weights = one_layer(attention, "The head view")
    if not np.all(np.isfinite(weights)):
        raise InvalidAttentionError("The attention holds NaN or infinite values.")
    if np.any(weights < 0):
        raise InvalidAttentionError(
            "The attention holds negative weights, which a line's opacity cannot show."
        )
    return weights


def _validated_heads(heads: Sequence[int] | None, n_heads: int) -> list[int]:
    if heads is None:
        return list(range(n_heads))
    shown = sorted({optional_index(head, n_heads, "head") for head in heads})
    return [head for head in shown if head is not None]


def _validated_piece_marks(
    piece_marks: Any, n_queries: int, n_keys: int, cross: bool
) -> tuple[list[int] | None, list[int] | None]:
    if piece_marks is None:
        return None, None
    pair = (
        cross
        and len(piece_marks) == 2
        and all(isinstance(side, Sequence | np.ndarray) for side in piece_marks)
    )
    left_marks, right_marks = piece_marks if pair else (piece_marks, None)

    def side(marks: Any, length: int, name: str) -> list[int] | None:
        if marks is None:
            return None
        flags = [int(bool(mark)) for mark in marks]
        if len(flags) != length:
            raise InvalidSelectionError(
                f"piece_marks for the {name} has {len(flags)} entries for {length} tokens."
            )
        return flags

    left = side(left_marks, n_queries, "left side")
    right = side(right_marks, n_keys, "right side") if cross else left
    return left, right
