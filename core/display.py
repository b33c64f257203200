"""What the pages draw, shaped from results: head choice, windows, bars, exports, word lists.

The page scripts only lay out; every number they show is prepared here (UI-free and tested in
tests/core/test_display.py). Shapes: `[layers, heads, q, k]` for attention, `[q, k]` for one
matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.methods import MethodResult
from core.predictions import Prediction
from core.tokens import Token, word_groups
from core.transforms import mean_of_heads, select_heads
from core.views import block_labels, pool_keys

Head = int | str
"""A head's number, "mean" (the mean of a layer's heads) or "all" (every head, as lines)."""


def head_matrix(attentions: np.ndarray, layer: int, head: Head) -> np.ndarray:
    """`[q, k]` of one head of `attentions` `[layers, heads, q, k]`, or the layer's mean."""
    if isinstance(head, int):
        return select_heads(attentions, layer, [head])[0]
    return mean_of_heads(attentions, layer)


@dataclass(frozen=True)
class LayerView:
    """One layer of a method's scores as the Attention page shows it.

    `matrix` `[q, k]` is the heatmap; `lines` `[h, q, k]` and `line_heads` the line view's
    heads (all heads for "all", else the one matrix); `what` names it for titles.
    """

    matrix: np.ndarray
    lines: np.ndarray
    line_heads: list[int]
    what: str


def layer_view(scores: MethodResult, layer: int, head: Head, stack_label: str = "") -> LayerView:
    """The heatmap and line-view data of `layer` of `scores` for head choice `head`.

    Methods without heads (rollout, flow) ignore `head`; `stack_label` is prefixed to `what`
    for models with several stacks (e.g. "cross attention …").
    """
    if scores.per_head is None:
        matrix = scores.layer_matrix(layer)
        what = f"{scores.method} after layer {layer}"
        lines, heads = matrix[None], [0]
    elif head == "all":
        matrix = scores.layer_matrix(layer)
        lines, heads = scores.per_head[layer], list(range(scores.per_head.shape[1]))
        what = f"layer {layer}, all heads (heatmap shows their mean)"
    elif isinstance(head, int):
        matrix = scores.layer_matrix(layer, head)
        lines, heads = matrix[None], [head]
        what = f"layer {layer}, head {head}"
    else:
        matrix = scores.layer_matrix(layer)
        lines, heads = matrix[None], [0]
        what = f"layer {layer}, mean of {scores.per_head.shape[1]} heads"
    if stack_label:
        what = f"{stack_label.lower()} {what}"
    return LayerView(matrix=matrix, lines=lines, line_heads=heads, what=what)


def layer_export(scores: MethodResult, layer: int) -> tuple[np.ndarray, list[int], list[int]]:
    """`(array [1, heads, q, k], layer_ids, head_ids)` exporting one layer of `scores`.

    Methods with heads export every head of the layer; the others their one matrix (head 0).
    """
    if scores.per_head is not None:
        heads = scores.per_head.shape[1]
        return scores.per_head[layer : layer + 1], [layer], list(range(heads))
    return scores.layer_matrix(layer)[None, None], [layer], [0]


def colour_domain(scale: str, matrices: Sequence[np.ndarray]) -> tuple[float, float] | None:
    """The colour domain of charts drawn together under colour scale `scale`.

    "chart": None (each chart to its own maximum); "fixed": 0–1; "shared": 0 to the largest
    value of any of `matrices` (NaN cells left out), so compared charts read alike.
    """
    if scale == "fixed":
        return (0.0, 1.0)
    if scale == "shared":
        finite = [float(np.nanmax(m)) for m in matrices if m.size and not np.isnan(m).all()]
        top = max(finite, default=1.0)
        return (0.0, top if top > 0 else 1.0)
    return None


def token_bars(
    matrix: np.ndarray, selected: int, empty: np.ndarray | None = None, *, square: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """The selected unit's row (`[k]`, what it attends to) and column (`[q]`, who attends to
    it; None for cross attention), with cells a causal model cannot see as NaN."""
    outgoing = np.asarray(matrix[selected], dtype=np.float64)
    incoming = np.asarray(matrix[:, selected], dtype=np.float64) if square else None
    if empty is not None:
        outgoing = np.where(empty[selected], np.nan, outgoing)
        if incoming is not None:
            incoming = np.where(empty[:, selected], np.nan, incoming)
    return outgoing, incoming


@dataclass(frozen=True)
class LineWindow:
    """The line view's slice of a long input: weights `[h, w, w]`, labels, selected row."""

    weights: np.ndarray
    labels: list[str]
    selected: int | None
    note: str


def line_window(
    weights: np.ndarray,
    labels: Sequence[str],
    selected: int | None,
    rows: tuple[int, int] | None,
) -> LineWindow:
    """The line view of `weights` `[h, n, n]` limited to the detail window `rows` (or whole).

    A long input draws the detail window's tokens only (thousands of rows of text would not be
    readable); labels then carry their positions.
    """
    if rows is None:
        return LineWindow(np.asarray(weights), list(labels), selected, "")
    start, stop = rows
    inside = selected is not None and start <= selected < stop
    return LineWindow(
        weights=np.asarray(weights)[:, start:stop, start:stop],
        labels=[f"{i}·{labels[i]}" for i in range(start, stop)],
        selected=selected - start if inside else None,
        note=f" Tokens {start}–{stop - 1} (the detail window) only.",
    )


def replaceable_words(tokens: Sequence[Token]) -> dict[int, str]:
    """`{word_index: word}` of the first text's words (a replacement's candidates), in order."""
    words: dict[int, str] = {}
    for group in word_groups(list(tokens)):
        first = tokens[group[0]]
        if first.is_special or first.segment != 0 or first.word_index is None:
            continue
        words[first.word_index] = "".join(tokens[i].text for i in group)
    return words


def maskable_positions(tokens: Sequence[Token]) -> list[int]:
    """Positions a visitor may mask: every token that is not special."""
    return [token.index for token in tokens if not token.is_special]


def prediction_rows(
    positions: Sequence[int], predictions: Sequence[Sequence[Prediction]]
) -> list[dict[str, object]]:
    """One row per (mask, rank) for the predictions export."""
    return [
        {"mask": m + 1, "position": pos, "rank": r + 1, "token": p.token, "score": p.score}
        for m, (pos, ranked) in enumerate(zip(positions, predictions, strict=False))
        for r, p in enumerate(ranked)
    ]


def mask_profile(
    attentions: np.ndarray, position: int, labels: Sequence[str], limit: int, blocks: int
) -> tuple[np.ndarray, list[str]]:
    """How `position` attends in every layer and head: `[layers, heads, k]` and key labels.

    Beyond `limit` keys they are averaged into at most `blocks` blocks (one cell per head and
    key would be 70,000 cells at 512 tokens).
    """
    profile = np.asarray(attentions[:, :, position, :])
    if len(labels) <= limit:
        return profile, list(labels)
    return pool_keys(profile, blocks), block_labels(labels, blocks)


def generated_rows(
    attentions: np.ndarray, tokens: Sequence[Token], start: int, layer: int, head: Head
) -> tuple[np.ndarray, list[str], list[str]]:
    """What each generated token attends to in the prompt: `[generated, prompt]` and labels.

    `attentions` `[layers, heads, n, n]` of prompt + continuation; the prompt is `tokens[:start]`.
    """
    matrix = head_matrix(attentions, layer, head if isinstance(head, int) else "mean")
    rows = [f"{i}·{t.text}" for i, t in enumerate(tokens[start:], start=1)]
    return matrix[start:, :start], rows, [t.text for t in tokens[:start]]
