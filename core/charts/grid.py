"""All layers x heads as one grid of small heatmaps, and the pooling that feeds it."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from core.charts._common import (
    PAD,
    add_params,
    check_labels,
    color_scale,
    labels_param,
    round_sig,
)


def pool_matrix(matrix: np.ndarray, size: int) -> np.ndarray:
    """Block-average the last two axes of `[..., n, k]` down to at most `size x size`.

    An axis of length <= `size` is kept as is, so the result is exact (a float64 copy) when
    `n, k <= size`. Otherwise the axis is cut into `size` contiguous blocks whose lengths differ
    by at most one (block `b` covers ``[b*n//size, (b+1)*n//size)``). NaN cells are left out of
    a block's mean; an all-NaN block is NaN.

    Returns float64 `[..., min(n, size), min(k, size)]`.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    a = np.asarray(matrix, dtype=np.float64)
    if a.ndim < 2:
        raise ValueError(f"matrix must have at least 2 axes, got shape {a.shape}")
    finite = np.isfinite(a)
    sums = np.where(finite, a, 0.0)
    counts = finite.astype(np.float64)
    # Sum values and counts per block on both axes, then divide once, so a block's mean is
    # over its own non-NaN cells rather than a mean of per-axis means.
    for axis in (-2, -1):
        n = a.shape[axis]
        if n > size:
            starts = (np.arange(size) * n) // size
            sums = np.add.reduceat(sums, starts, axis=axis)
            counts = np.add.reduceat(counts, starts, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = sums / counts
    return np.where(counts > 0, pooled, np.nan)


def head_grid(
    thumbnails: np.ndarray,
    *,
    layer_labels: Sequence[str] | None = None,
    head_labels: Sequence[str] | None = None,
    selected: tuple[int, int] | None = None,
    thumb_px: int = 44,
    title: str = "",
) -> alt.LayerChart:
    """Every head's attention as a small heatmap: rows = layers, columns = heads.

    Args:
        thumbnails: `[layers, heads, m, m]`, e.g. ``pool_matrix(attentions, 24)``. NaN cells
            are not drawn.
        layer_labels, head_labels: axis labels; default ``0..layers-1`` / ``0..heads-1``.
        selected: ``(layer, head)`` to outline.
        thumb_px: px per thumbnail side.

    One rect view (not a facet): thumbnail `(l, h)` occupies columns ``h*(m+gap) ..`` and rows
    ``l*(m+gap) ..`` of a shared grid, which renders far faster than 144 facet cells.

    Data: ``layer``, ``head``, ``r`` (query block), ``c`` (key block), ``v`` per cell.
    Selection: point param ``"head"`` over ``layer`` and ``head`` (click; double-click clears)
    -> Streamlit returns ``{"head": [{"layer": 3, "head": 7}]}``. Other heads dim while a
    head is selected.
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
    gap = max(1, round(m * 0.15))
    stride = m + gap

    keep = np.isfinite(t)
    li, hi, ri, ci = np.nonzero(keep)
    data = pd.DataFrame(
        {
            "layer": li.astype(np.int16),
            "head": hi.astype(np.int16),
            "r": ri.astype(np.int16),
            "c": ci.astype(np.int16),
            "v": round_sig(t[keep]),
        }
    )
    layer_param = labels_param(layer_tokens)
    head_param = labels_param(head_tokens)

    x_scale = alt.Scale(domain=[0, n_heads * stride - gap], nice=False, zero=False)
    y_scale = alt.Scale(domain=[0, n_layers * stride - gap], nice=False, zero=False, reverse=True)
    centre = m / 2
    x_axis = alt.Axis(
        title="head",
        orient="top",
        values=[h * stride + centre for h in range(n_heads)],
        labelExpr=f"{head_param.name}[round((datum.value - {centre}) / {stride})]",
        grid=False,
        ticks=False,
        domain=False,
        labelOverlap="greedy",
    )
    y_axis = alt.Axis(
        title="layer",
        values=[layer * stride + centre for layer in range(n_layers)],
        labelExpr=f"{layer_param.name}[round((datum.value - {centre}) / {stride})]",
        grid=False,
        ticks=False,
        domain=False,
        labelOverlap="greedy",
    )
    head_sel = alt.selection_point(
        name="head", fields=["layer", "head"], on="click", clear="dblclick"
    )
    values = data["v"].to_numpy()
    cells = (
        alt.Chart(data)
        .mark_rect()
        .transform_calculate(
            x=f"datum.head * {stride} + datum.c",
            y=f"datum.layer * {stride} + datum.r",
        )
        .transform_calculate(x2="datum.x + 1", y2="datum.y + 1")
        .encode(
            x=alt.X("x:Q", scale=x_scale, axis=x_axis),
            x2="x2:Q",
            y=alt.Y("y:Q", scale=y_scale, axis=y_axis),
            y2="y2:Q",
            color=alt.Color(
                "v:Q",
                scale=color_scale(values, diverging=False, domain=None, scheme=None),
                title="attention",
            ),
            opacity=alt.when(head_sel).then(alt.value(1.0)).otherwise(alt.value(0.3)),
            tooltip=[
                alt.Tooltip("layer:O", title="layer"),
                alt.Tooltip("head:O", title="head"),
                alt.Tooltip("r:O", title="query block"),
                alt.Tooltip("c:O", title="key block"),
                alt.Tooltip("v:Q", title="mean attention", format=".4f"),
            ],
        )
        .add_params(head_sel)
    )
    layers: list[alt.Chart] = [cells]
    if selected is not None:
        sel_layer, sel_head = (int(i) for i in selected)
        if not (0 <= sel_layer < n_layers and 0 <= sel_head < n_heads):
            raise ValueError(f"selected={selected} outside the {n_layers}x{n_heads} grid")
        pad = gap / 2
        box = {
            "x": sel_head * stride - pad,
            "x2": sel_head * stride + m + pad,
            "y": sel_layer * stride - pad,
            "y2": sel_layer * stride + m + pad,
        }
        layers.append(
            alt.Chart(alt.InlineData(values=[box]))
            .mark_rect(filled=False, strokeWidth=2)
            .encode(
                x=alt.X("x:Q", scale=x_scale, axis=x_axis),
                x2="x2:Q",
                y=alt.Y("y:Q", scale=y_scale, axis=y_axis),
                y2="y2:Q",
            )
        )
    # Whole pixels per cell: fractional cell edges show anti-aliasing seams between rects.
    px_per_cell = max(1, round(thumb_px / m))
    chart = alt.layer(*layers).properties(
        width=(n_heads * stride - gap) * px_per_cell,
        height=(n_layers * stride - gap) * px_per_cell,
        autosize=PAD,
    )
    if title:
        chart = chart.properties(title=title)
    return add_params(chart, [layer_param, head_param])
