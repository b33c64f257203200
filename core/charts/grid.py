"""All layers x heads as one grid of small heatmaps (pooled by `core.pooling.pool_matrix`)."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from core.chart_layout import LABEL_PX, LEGEND_PX
from core.charts._common import (
    PAD,
    SEQUENTIAL_SCHEME,
    add_params,
    check_labels,
    labels_param,
    point_selection,
    round_sig,
)
from core.charts._raster import png_data_url
from core.scales import ScaleMode, scale_title, value_domain

GRID_AXIS_PX = 40
"""The layer axis (title and numbers) left of the thumbnails."""
GRID_LEGEND_PX = LEGEND_PX + 20
"""The legend beside the grid, with room for its longest title line."""


def thumbnail_gap(side: int) -> int:
    """px between thumbnails of `side` px."""
    return max(3, side // 6)


def grid_width(m: int, px_per_cell: int, heads: int) -> int:
    """px of `heads` thumbnails of `m` cells at `px_per_cell`, with their gaps."""
    side = m * px_per_cell
    return heads * (side + thumbnail_gap(side))


def largest_thumbnail(heads: int, max_width: int) -> int:
    """Most cells a thumbnail's side may have for `head_grid` to fit `max_width` px.

    At one pixel a cell, `heads` thumbnails with their gaps and the layer axis must fit (the
    legend then goes below); a larger thumbnail cannot shrink further and would run past its
    column (40-cell thumbnails of 12 heads are 592 px, at 1024 px the page has 560). At least
    4 cells.
    """
    if heads < 1 or max_width < 1:
        raise ValueError(f"need at least one head and one px, got {heads} heads, {max_width} px")
    cells = 4
    while grid_width(cells + 1, 1, heads) + GRID_AXIS_PX <= max_width:
        cells += 1
    return cells


def head_grid(
    thumbnails: np.ndarray,
    *,
    layer_labels: Sequence[str] | None = None,
    head_labels: Sequence[str] | None = None,
    selected: tuple[int, int] | None = None,
    thumb_px: int = 44,
    max_width: int | None = None,
    title: str = "",
    scale: ScaleMode = "chart",
    shared_max: float | None = None,
    per_head: bool = False,
) -> alt.LayerChart:
    """Every head's attention as a small heatmap: rows = layers, columns = heads.

    Args:
        thumbnails: `[layers, heads, m, m]`, e.g. ``pool_matrix(attentions, 24)``. NaN cells
            are drawn light grey.
        layer_labels, head_labels: axis labels; default ``0..layers-1`` / ``0..heads-1``.
        selected: ``(layer, head)`` to outline.
        thumb_px: px per thumbnail side (rounded to whole pixels per cell).
        max_width: shrink the thumbnails so the whole chart, layer labels and colour legend
            included, fits this many px (Streamlit does not scale charts down; a wider grid
            would be cut off). At least 1 px per cell, so thumbnails of more than
            `largest_thumbnail(heads, max_width)` cells do not fit: average them down first.
        scale: ``"chart"`` (0 to the largest weight of all heads in the grid), ``"shared"``
            (0 to `shared_max`, e.g. across two models' grids) or ``"fixed"`` (0 to 1).
        per_head: scale each thumbnail to its own maximum instead (every head's pattern
            visible, but colours not comparable between heads); the legend says so.

    Each thumbnail is one PNG image mark (viridis on the scale the legend shows): 144 items
    instead of tens of thousands of rects, which is what keeps the grid quick to draw at 512
    tokens. Exact values are on the Attention page and in the exports.

    Data: ``layer``, ``head``, ``url`` (PNG data URL) per head. Selection: point param
    ``"head"`` over ``layer`` and ``head`` (click; double-click clears) -> Streamlit returns
    ``{"head": [{"layer": 3, "head": 7}]}``. Other heads dim while a head is selected.
    """
    t = np.asarray(thumbnails, dtype=np.float64)
    if t.ndim != 4 or t.shape[2] != t.shape[3]:
        raise ValueError(f"thumbnails must be [layers, heads, m, m], got shape {t.shape}")
    n_layers, n_heads, m, _ = t.shape
    layer_tokens = check_labels(
        [str(i) for i in range(n_layers)] if layer_labels is None else layer_labels,
        n_layers,
        "layer_labels",
    )
    head_tokens = check_labels(
        [str(i) for i in range(n_heads)] if head_labels is None else head_labels,
        n_heads,
        "head_labels",
    )
    vmax = float(round_sig(value_domain(t, scale, shared=shared_max)[1]))
    if per_head:
        finite = np.where(np.isfinite(t), t, 0.0)
        head_max = finite.max(axis=(2, 3))
        vmaxes = np.where(head_max > 0, head_max, 1.0)
        legend_top, legend_title = 1.0, ["attention", "0–max per head"]
    else:
        vmaxes = np.full((n_layers, n_heads), vmax)
        legend_top = vmax
        legend_title = scale_title("attention", scale, (0.0, vmax))
    legend_below = False
    if max_width is not None:
        # The layer labels and the legend sit beside the thumbnails, inside max_width too;
        # when one pixel per cell does not leave room for the legend, it goes below.
        room = max(n_heads, max_width - GRID_LEGEND_PX - GRID_AXIS_PX)
        legend_below = grid_width(m, 1, n_heads) > room
        if legend_below:
            room = max(n_heads, max_width - GRID_AXIS_PX)
        thumb_px = min(thumb_px, int(room / n_heads * 6 / 7))
    # Whole pixels per cell: the browser would blur a small image scaled up.
    px_per_cell = max(1, thumb_px // m if max_width is not None else round(thumb_px / m))
    side = m * px_per_cell
    gap = thumbnail_gap(side)
    data = pd.DataFrame(
        {
            "layer": np.repeat(np.arange(n_layers, dtype=np.int16), n_heads),
            "head": np.tile(np.arange(n_heads, dtype=np.int16), n_layers),
            "url": [
                png_data_url(t[layer, head], float(vmaxes[layer, head]), px_per_cell)
                for layer in range(n_layers)
                for head in range(n_heads)
            ],
        }
    )
    # Every layer and head number is drawn when a thumbnail leaves room for it.
    label_overlap: bool | str = False if side + gap >= LABEL_PX else "greedy"
    layer_param = labels_param(layer_tokens)
    head_param = labels_param(head_tokens)
    padding = gap / (side + gap)
    x = alt.X(
        "head:O",
        scale=alt.Scale(domain=list(range(n_heads)), paddingInner=padding, paddingOuter=0),
        axis=alt.Axis(
            title="head",
            orient="top",
            labelExpr=f"{head_param.name}[datum.value]",
            ticks=False,
            domain=False,
            labelAngle=0,
            labelOverlap=label_overlap,
        ),
    )
    y = alt.Y(
        "layer:O",
        scale=alt.Scale(domain=list(range(n_layers)), paddingInner=padding, paddingOuter=0),
        axis=alt.Axis(
            title="layer",
            labelExpr=f"{layer_param.name}[datum.value]",
            ticks=False,
            domain=False,
            labelOverlap=label_overlap,
        ),
    )
    head_sel = point_selection("head", ["layer", "head"])
    images = (
        alt.Chart(data)
        .mark_image(width=side, height=side)
        .encode(
            x=x,
            y=y,
            # Channel objects, not shorthand or alt.value() dicts: see core/charts/lines.py.
            url=alt.Url("url:N"),
            opacity=alt.OpacityValue(0.3, condition=[{"param": head_sel.name, "value": 1.0}]),
            tooltip=[alt.Tooltip("layer:O", title="layer"), alt.Tooltip("head:O", title="head")],
        )
        .add_params(head_sel)
    )
    # Two invisible points carry the colour scale, so the legend states what the colours mean.
    legend = (
        alt.Chart(pd.DataFrame({"v": [0.0, legend_top]}))
        .mark_point(opacity=0)
        .encode(
            color=alt.Color(
                "v:Q",
                scale=alt.Scale(scheme=SEQUENTIAL_SCHEME, domain=[0.0, legend_top]),
                title=legend_title,
                legend=alt.Legend(orient="bottom", direction="horizontal")
                if legend_below
                else alt.Legend(),
            )
        )
    )
    layers: list[alt.Chart] = [images, legend]
    if selected is not None:
        sel_layer, sel_head = (int(i) for i in selected)
        if not (0 <= sel_layer < n_layers and 0 <= sel_head < n_heads):
            raise ValueError(f"selected={selected} outside the {n_layers}x{n_heads} grid")
        layers.append(
            alt.Chart(pd.DataFrame({"layer": [sel_layer], "head": [sel_head]}))
            .mark_rect(filled=False, strokeWidth=2, color="#e45756")
            .encode(x=x, y=y)
        )
    step = side + gap
    chart = alt.layer(*layers).properties(width=alt.Step(step), height=alt.Step(step), autosize=PAD)
    if title:
        chart = chart.properties(title=title)
    return add_params(chart, [layer_param, head_param])
