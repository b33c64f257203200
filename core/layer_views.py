"""One layer of attention or of a method's scores as the pages draw it: chosen heads or their
mean, the heatmap and line-view data, one layer's export, the selected token's bars and what
generated tokens attend to.

Arrays are `[layers, heads, q, k]` unless said otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import PositionOutOfRangeError
from core.methods import MethodResult
from core.tokens import Token, token_labels


def select_heads(attentions: np.ndarray, layer: int, heads: Sequence[int] | None) -> np.ndarray:
    """Heads of one layer, `[heads, n, n]`; `heads=None` means all of them.

    Negative `layer` counts from the top as in Python indexing.
    """
    layers, num_heads = attentions.shape[:2]
    if not -layers <= layer < layers:
        raise PositionOutOfRangeError(
            f"Layer {layer} does not exist: the model has layers 0 to {layers - 1}."
        )
    chosen = list(range(num_heads)) if heads is None else list(heads)
    bad = [h for h in chosen if not 0 <= h < num_heads]
    if bad or not chosen:
        raise PositionOutOfRangeError(
            f"Head {bad[0] if bad else '(none)'} does not exist: "
            f"the model has heads 0 to {num_heads - 1}."
        )
    return attentions[layer, chosen]


def mean_of_heads(attentions: np.ndarray, layer: int) -> np.ndarray:
    """Average of all heads of one layer, `[n, n]`."""
    return select_heads(attentions, layer, None).mean(axis=0)


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


def generated_rows(
    attentions: np.ndarray, tokens: Sequence[Token], start: int, layer: int, head: Head
) -> tuple[np.ndarray, list[str], list[str]]:
    """What each generated token attends to in the prompt: `[generated, prompt]` and labels
    (word pieces marked, `core.tokens.token_labels`).

    `attentions` `[layers, heads, n, n]` of prompt + continuation; the prompt is `tokens[:start]`.
    """
    matrix = head_matrix(attentions, layer, head if isinstance(head, int) else "mean")
    # Word pieces marked as in every other view ("##ing"), across prompt and continuation.
    labels = token_labels(tokens, "marked")
    rows = [f"{i}·{label}" for i, label in enumerate(labels[start:], start=1)]
    return matrix[start:, :start], rows, labels[:start]
