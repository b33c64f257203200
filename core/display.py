"""Display maths shared by the chart builders and the pages: colour domains, label thinning,
bar layouts, sentence-pair segments and a selection that never lands on a hidden token.

Pure functions on numbers and `core.tokens.Token` lists; nothing here draws.

Colour scales (`ScaleMode`):

* ``"chart"``: 0 to this chart's own maximum (the most contrast inside one chart, but two charts
  side by side are not comparable),
* ``"shared"``: 0 to a maximum the caller computed over every compared chart with
  :func:`shared_max` (the default for comparisons),
* ``"fixed"``: 0 to 1, the whole range of an attention weight (near-uniform attention then
  looks cool, as it should).

Signed data (differences) uses the same modes symmetrically around 0.

Also what the pages draw from a method's scores (`layer_view`, `token_bars`, …): shaping that
used to live in page scripts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import pandas as pd

from core.methods import MethodResult
from core.predictions import Prediction
from core.tokens import Token, word_groups
from core.transforms import mean_of_heads, select_heads
from core.views import block_labels, pool_keys

ScaleMode = Literal["chart", "shared", "fixed"]
SCALE_MODES: tuple[str, ...] = get_args(ScaleMode)

LABEL_PX = 12
"""px along an axis one token label needs (10 px font plus a pixel either side)."""
LABEL_FONT_SIZE = 10
BAR_PX = 22
"""px per bar (or per row of grouped bars): room for a label beside every bar."""
AXIS_LABEL_PX = 110
"""Widest token label on an axis; longer ones end in an ellipsis (the tooltip has all)."""
LEGEND_PX = 90
"""A vertical gradient legend with its two-line title."""
MIN_PLOT_PX = 120


# --------------------------------------------------------------------------- colour scales


SCALE_WORDS = {"chart": "this chart", "shared": "shared", "fixed": "fixed"}
"""How a legend or axis title names each scale mode."""


def shared_max(matrices: Iterable[np.ndarray], *, absolute: bool = False) -> float:
    """Largest finite value over all `matrices` (any shapes), for ``scale="shared"``.

    `absolute` takes the largest magnitude instead (differences, drawn symmetric around 0).
    Returns 1.0 when there is no positive finite value, so a domain is never empty.
    """
    best = 0.0
    for matrix in matrices:
        values = np.asarray(matrix, dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size:
            best = max(best, float(np.abs(values).max() if absolute else values.max()))
    return best if best > 0 else 1.0


def check_scale(scale: str, shared: float | None) -> None:
    """Raise ValueError for an unknown mode, or ``"shared"`` without a usable maximum."""
    if scale not in SCALE_MODES:
        raise ValueError(f"scale must be one of {SCALE_MODES}, got {scale!r}")
    if scale == "shared" and (shared is None or not math.isfinite(shared) or shared <= 0):
        raise ValueError("scale='shared' needs a positive shared_max (see core.display.shared_max)")


def value_domain(
    values: np.ndarray,
    scale: ScaleMode,
    *,
    shared: float | None = None,
    diverging: bool = False,
) -> tuple[float, float]:
    """The colour (or bar-length) domain for `values` under `scale`.

    Non-negative data gets ``(0, top)``; `diverging` data ``(-top, top)``. `top` is this chart's
    largest value (magnitude), `shared`, or 1 for ``"fixed"``.
    """
    check_scale(scale, shared)
    if scale == "fixed":
        top = 1.0
    elif scale == "shared":
        top = float(shared)  # type: ignore[arg-type]  # checked above
    else:
        top = shared_max([values], absolute=diverging)
    return (-top, top) if diverging else (0.0, top)


def format_bound(value: float) -> str:
    """A scale bound for a legend: 2 significant digits, no exponent for attention sizes."""
    if value == 1.0:
        return "1"
    return f"{value:.2g}" if abs(value) >= 1e-3 else f"{value:.1e}"


def scale_title(
    value_label: str, scale: ScaleMode, domain: tuple[float, float], *, diverging: bool = False
) -> list[str]:
    """Two-line legend title saying what the colours span, e.g. ``["attention", "0–1 fixed"]``.

    Two lines keep a vertical legend narrow.
    """
    top = format_bound(domain[1])
    span = f"±{top}" if diverging else f"0–{top}"
    return [value_label, f"{span} {SCALE_WORDS[scale]}"]


def scale_caption(
    value_label: str, scale: ScaleMode, domain: tuple[float, float], *, diverging: bool = False
) -> str:
    """`scale_title` on one line, for an axis: ``"attention (0–1 fixed)"``."""
    name, span = scale_title(value_label, scale, domain, diverging=diverging)
    return f"{name} ({span})"


# --------------------------------------------------------------------------- axis labels


@dataclass(frozen=True)
class AxisPlan:
    """How an axis of `n` positions is drawn in `length` px.

    `values` are the positions that get a label (every `step`-th, always including the first);
    `note` says what was thinned, or is "" when every position is labelled.
    """

    length: int
    values: list[int]
    step: int
    note: str


def plan_axis(n: int, length: int, *, what: str = "token") -> AxisPlan:
    """Label every position when `length / n` px leaves `LABEL_PX` per label, else every step-th."""
    if n < 1:
        raise ValueError(f"an axis needs at least one position, got {n}")
    step = max(1, math.ceil(LABEL_PX * n / max(1, length)))
    note = ""
    if step > 1:
        note = f"Every {_ordinal(step)} {what} labelled ({n} in {length} px); hover for the rest."
    return AxisPlan(int(length), list(range(0, n, step)), step, note)


def _ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def heatmap_side(n: int, available: int | None) -> int:
    """px of a heatmap axis with `n` cells: 22 px a cell within 220..680, capped by `available`.

    `available` is what the column leaves for the plot once labels and legend are placed; a
    very narrow column still gets `MIN_PLOT_PX`, and the page stacks charts below that.
    """
    side = int(min(680, max(220, BAR_PX * n)))
    if available is not None:
        side = max(MIN_PLOT_PX, min(side, int(available)))
    return side


def heatmap_plot_width(column_width: int, *, legend_below: bool) -> int:
    """px left for a heatmap's cells in a column of `column_width` px."""
    # Beside the labels: the axis title and padding (≈ 50 px); beside the plot: the legend,
    # whose scale line ("0–0.33 this chart") runs ≈ 40 px past its bar (measured in Chromium).
    reserved = AXIS_LABEL_PX + 50 + (0 if legend_below else LEGEND_PX + 40)
    return max(MIN_PLOT_PX, int(column_width) - reserved)


LEGEND_BELOW_PX = 520
"""Columns narrower than this get the colour legend under the chart instead of beside it."""


# --------------------------------------------------------------------------- token bars


@dataclass(frozen=True)
class BarPlan:
    """Layout of one token's attention bars.

    `orientation` is "vertical" (tokens along x, every one labelled) when the column has
    `LABEL_PX` per token, else "horizontal" (tokens down y, `BAR_PX` a row). `positions` are
    the token positions drawn, in input order: all of them, or the `top_n` with the most
    attention either way (the selected token always among them). `note` says what was left out.
    """

    orientation: Literal["vertical", "horizontal"]
    positions: list[int]
    height: int
    note: str


BAR_AXIS_PX = 60
"""The value axis's labels and title beside vertical token bars."""


def bar_plot_width(column_width: int, *, legend: bool) -> int:
    """px left for the bars themselves in a column of `column_width` px: the column less the
    value axis and, when a colour legend sits beside the bars, `LEGEND_PX`."""
    reserved = BAR_AXIS_PX + (LEGEND_PX if legend else 0)
    return max(MIN_PLOT_PX, int(column_width) - reserved)


def plan_token_bars(
    outgoing: np.ndarray,
    incoming: np.ndarray | None,
    selected: int | None,
    column_width: int,
    *,
    legend: bool,
    top_n: int = 30,
    vertical_height: int = 220,
) -> BarPlan:
    """Choose vertical bars, horizontal bars, or the `top_n` strongest tokens (`[n]` inputs).

    `column_width` is the whole column the chart fills; `legend` says whether a colour legend
    sits beside the bars, in which case the plot is planned without it (`bar_plot_width`):
    vertical bars are chosen only while every label still gets `LABEL_PX`.
    """
    out = np.asarray(outgoing, dtype=np.float64).ravel()
    n = out.shape[0]
    if top_n < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    if column_width < 1:
        raise ValueError(f"column_width must be >= 1 px, got {column_width}")
    plot = bar_plot_width(column_width, legend=legend)
    if n * LABEL_PX <= plot:
        return BarPlan("vertical", list(range(n)), vertical_height, "")
    if n <= top_n:
        return BarPlan("horizontal", list(range(n)), n * BAR_PX, "")
    strength = np.nan_to_num(out, nan=0.0)
    if incoming is not None:
        inc = np.nan_to_num(np.asarray(incoming, dtype=np.float64).ravel(), nan=0.0)
        strength = np.maximum(strength, inc)
    # Stable order: equal strengths keep the earlier token.
    ranked = [int(i) for i in np.argsort(-strength, kind="stable")]
    chosen = set(ranked[:top_n])
    if selected is not None and selected not in chosen:
        chosen.discard(ranked[top_n - 1])
        chosen.add(int(selected))
    positions = sorted(chosen)
    note = f"Top {top_n} of {n} tokens by attention either way; the heatmap has all."
    return BarPlan("horizontal", positions, top_n * BAR_PX, note)


# --------------------------------------------------------------------------- pairs, selection


def segment_b_start(tokens: Sequence[Token], groups: Sequence[Sequence[int]]) -> int | None:
    """Display unit where the second sentence (segment B) of a pair starts, or None.

    `groups` are the input positions of each display unit (``DisplayMatrix.groups``); special
    tokens without a segment do not count, so B starts at its first word, not at a separator.
    """
    for unit, group in enumerate(groups):
        if any(tokens[i].segment == 1 and not tokens[i].is_special for i in group):
            return unit
    return None


def is_shown(token: Token, *, hide_special: bool) -> bool:
    """Whether `token` has a display unit of its own under the display options.

    Merging words keeps every position inside some unit, so only hiding can hide a token.
    """
    return not (hide_special and token.is_special)


def first_shown_token(
    tokens: Sequence[Token], hide_special: bool, merge_words: bool = False
) -> int:
    """Input position of the first token the view shows: the default selection.

    With `merge_words` it is the first position of that word. When every token is special,
    hiding is not applied (as in `core.views.prepare_display`), so 0.
    """
    tokens = list(tokens)
    if not tokens:
        raise ValueError("no tokens")
    shown = [t.index for t in tokens if is_shown(t, hide_special=hide_special)]
    if not shown:
        return tokens[0].index
    first = shown[0]
    if merge_words:
        group = next(g for g in word_groups(tokens) if first in g)
        return group[0]
    return first


def shown_selection(
    tokens: Sequence[Token], position: int, *, hide_special: bool, merge_words: bool = False
) -> int:
    """`position` if the view shows it, else the nearest shown token after it (or before it).

    Keeps a selection (from the URL or a click) on a token the charts draw, so the bars panel
    never turns into "pick a token that is shown".
    """
    tokens = list(tokens)
    if not 0 <= position < len(tokens):
        return first_shown_token(tokens, hide_special, merge_words)
    if is_shown(tokens[position], hide_special=hide_special) or all(
        not is_shown(t, hide_special=hide_special) for t in tokens
    ):
        return position
    after = [t.index for t in tokens[position + 1 :] if is_shown(t, hide_special=hide_special)]
    before = [t.index for t in tokens[:position] if is_shown(t, hide_special=hide_special)]
    return after[0] if after else before[-1]


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


# ---------------------------------------------------------------- corpus page
def corpus_head_rows(head_table: pd.DataFrame, statistics: Sequence[str]) -> pd.DataFrame:
    """The Corpus page's table from `CorpusResult.head_table`: one row per layer × head.

    Columns: `layer, head, labels, sentences` (how many sentences were measured), then for each
    statistic `s` its corpus mean and `s ±`, half the width of its 95 % interval (NaN below two
    sentences). Numbers stay numbers, so the table sorts by any of them.
    """
    missing = [s for s in statistics if s not in head_table.columns]
    if missing:
        raise ValueError(f"the head table has no statistics {missing}")
    rows = pd.DataFrame(
        {
            "layer": head_table["layer"].to_numpy(),
            "head": head_table["head"].to_numpy(),
            "labels": head_table["labels"].to_numpy(),
        }
    )
    counts = [head_table[f"{s}_n"].to_numpy() for s in statistics]
    rows["sentences"] = np.max(counts, axis=0) if counts else 0
    for name in statistics:
        rows[name] = head_table[name].to_numpy()
        rows[f"{name} ±"] = (head_table[f"{name}_high"] - head_table[f"{name}_low"]).to_numpy() / 2
    return rows


def corpus_example_rows(
    examples: pd.DataFrame, token_labels: Sequence[Sequence[str]]
) -> pd.DataFrame:
    """The examples behind a claim (`CorpusResult.examples`) with their token pair spelled out.

    `token_labels[i]` are the token texts of example `i`'s sentence. Columns: `rank, value,
    sentence, pair` ("query → key", "" when the statistic has no strongest pair there).
    """
    if len(token_labels) != len(examples):
        raise ValueError(f"{len(token_labels)} token lists for {len(examples)} examples")
    pairs = []
    for (query, key), labels in zip(
        examples[["query", "key"]].itertuples(index=False, name=None), token_labels, strict=True
    ):
        inside = 0 <= query < len(labels) and 0 <= key < len(labels)
        pairs.append(f"{query}: {labels[query]} → {key}: {labels[key]}" if inside else "")
    return pd.DataFrame(
        {
            "rank": examples["rank"].to_numpy() + 1,
            "value": examples["value"].to_numpy(),
            "sentence": examples["sentence"].to_numpy(),
            "pair": pairs,
        }
    )
