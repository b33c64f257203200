"""Chart layout in pixels: how much room a label, a bar and a legend take, which axis labels
fit, and how one token's bars are laid out in a column of a given width.

Pure functions on numbers; nothing here draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

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
