"""Heatmaps of one query-key matrix and of one query across every head."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from core.chart_layout import (
    BAR_PX,
    LABEL_FONT_SIZE,
    LABEL_PX,
    LEGEND_BELOW_PX,
    heatmap_plot_width,
    heatmap_side,
    plan_axis,
)
from core.charts._common import (
    PAD,
    PAD_SPEC,
    Spec,
    array_param_spec,
    axis_spec,
    check_labels,
    color_spec,
    finish,
    heat_size,
    labels_param,
    point_selection,
    position_axis,
    position_dtype,
    round_sig,
    scaled_color,
    title_properties,
)
from core.scales import ScaleMode

SEGMENT_COLORS = ["#4c78a8", "#f58518"]
"""Fill of the A and B strips beside a pair's axes (marks, not text: legible in both themes)."""
STRIP_PX = 6
"""Thickness of the A/B strips; the token labels move out by this much plus a gap."""
HEAT_VIEW = "heat_cells"
"""Name of the heatmap's cell layer, the view its click selection belongs to."""


def attention_heatmap(
    matrix: np.ndarray,
    query_labels: Sequence[str],
    key_labels: Sequence[str] | None = None,
    *,
    title: str = "",
    value_label: str = "attention",
    diverging: bool = False,
    empty_mask: np.ndarray | None = None,
    causal: bool = False,
    selected: int | None = None,
    domain: tuple[float, float] | None = None,
    scheme: str | None = None,
    width: int | None = None,
    height: int | None = None,
    selection_name: str = "cell",
    column_width: int | None = None,
    scale: ScaleMode = "chart",
    shared_max: float | None = None,
    segment_b_start: int | None = None,
    log: bool = False,
    legend_notes: Sequence[str] = (),
) -> Spec:
    """Heatmap of a `[q, k]` matrix: rows are queries ("from"), columns are keys ("to").

    Args:
        matrix: float `[q, k]`. NaN/inf cells are not drawn.
        query_labels: `q` token texts for the rows.
        key_labels: `k` token texts for the columns; defaults to `query_labels`.
        title: chart title.
        value_label: name of the value in the legend and tooltip; a fixed caption, not user
            text (Vega-Lite puts tooltip titles into an expression without escaping
            backslashes).
        diverging: for signed data (differences): diverging scheme, domain symmetric around 0.
        empty_mask: bool `[q, k]`, True for cells to leave undrawn (e.g. a causal upper
            triangle), so the background shows instead of a misleading colour.
        causal: also leave undrawn every cell whose key comes after its query (`k > q`), the
            positions a causal model cannot see: zero there is not a measurement, and drawn
            as the colour of zero it would read as "looked, found nothing". Rows and columns
            must be the same positions (use `empty_mask` with `causal_mask` for windows).
        selected: query position whose row gets an outline.
        domain: fixed colour domain, e.g. to compare several heatmaps on one scale.
        scheme: Vega colour scheme overriding the default.
        width, height: px of the plot (cells only); default 22 px per cell within 220..680,
            and no wider than `column_width` allows.
        selection_name: name of the click selection; give side-by-side heatmaps different
            names if their selections must stay independent.
        column_width: px of the column the whole chart must fit in (labels and legend
            included). Below `core.chart_layout.LEGEND_BELOW_PX` the legend goes under the chart.
        scale: colour domain, ``"chart"`` (0 to this matrix's maximum), ``"shared"`` (0 to
            `shared_max`, e.g. `core.scales.shared_max` of every compared matrix) or
            ``"fixed"`` (0 to 1); the legend title says which. See `core.scales`.
        shared_max: the maximum for ``scale="shared"``.
        segment_b_start: for a sentence pair, the first row/column of sentence B
            (`core.selection.segment_b_start`): coloured A/B strips run beside both axes, a rule
            separates the two sentences across the cells, and the legend names them.
        log: colours on a log scale spanning `core.scales.LOG_DECADES` decades below the
            scale's top; zeros and smaller values are drawn in the bottom colour, and the legend
            says "log scale, 3 decades". Ignored for `diverging` data (the legend says so).
        legend_notes: further legend lines saying what was done to the matrix, e.g.
            `core.display_matrix.WITHOUT_FIRST_NOTE`.

    Labels: every row and column is labelled when cells leave `core.chart_layout.LABEL_PX` px a
    label; beyond, every k-th is, and the chart's subtitle (and `chart_notes`) says so.

    Returns the Vega-Lite spec as a plain dict (`Spec`), built without Altair: the page
    redraws this chart on every change of layer, head or token, and Altair's objects cost
    ≈ 100 ms per heatmap to build and serialise (bench/RESULTS.md, interaction speed).

    Data: dataset ``"cells"``, one row per drawn cell with fields ``q`` (int), ``k`` (int), ``v``
    (float, 5 significant digits; with `log` also ``c``, the value the colour reads), as a data
    frame (`spec_dict` gives JSON rows); datasets
    ``"query_labels"`` (``q``, ``query``) and ``"key_labels"`` (``k``, ``key``) hold the token
    texts, joined to the cells client-side for the tooltip.

    Selection: point param ``"cell"`` (see `selection_name`) over ``q`` and ``k``; with
    ``on_select="rerun"`` Streamlit returns ``{"cell": [{"q": 3, "k": 5}]}`` after a click.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"matrix must be [q, k], got shape {m.shape}")
    nq, nk = m.shape
    q_tokens = check_labels(query_labels, nq, "query_labels")
    k_tokens = check_labels(query_labels if key_labels is None else key_labels, nk, "key_labels")

    keep = np.isfinite(m)
    if empty_mask is not None:
        mask = np.asarray(empty_mask, dtype=bool)
        if mask.shape != m.shape:
            raise ValueError(f"empty_mask shape {mask.shape} != matrix shape {m.shape}")
        keep &= ~mask
    if causal:
        keep &= ~causal_mask(range(nq), range(nk))
    if selected is not None and not 0 <= selected < nq:
        raise ValueError(f"selected={selected} outside 0..{nq - 1}")
    pair = segment_b_start is not None
    if pair and not 0 < segment_b_start < min(nq, nk):  # type: ignore[operator]
        raise ValueError(f"segment_b_start={segment_b_start} outside 1..{min(nq, nk) - 1}")
    q_idx, k_idx = np.nonzero(keep)
    values = round_sig(m[keep])
    cells = pd.DataFrame(
        {
            "q": q_idx.astype(position_dtype(nq)),
            "k": k_idx.astype(position_dtype(nk)),
            "v": values,
        }
    )

    q_param = array_param_spec("tok", q_tokens)
    k_param = array_param_spec("tok", k_tokens)
    legend_below = column_width is not None and column_width < LEGEND_BELOW_PX
    available = None
    if column_width is not None:
        available = heatmap_plot_width(column_width, legend_below=legend_below)
    plot_w = width or heatmap_side(nk, available)
    plot_h = height or heat_size(nq)
    if column_width is not None and height is None and nq == nk:
        # Square cells: the height follows the width the column allowed.
        plot_h = plot_w
    # A square matrix thinned alike on both axes gets one note about "tokens".
    what_x, what_y = ("token", "token") if nq == nk else ("key", "query")
    x_plan = plan_axis(nk, plot_w, what=what_x)
    y_plan = plan_axis(nq, plot_h, what=what_y)
    notes = list(dict.fromkeys(note for note in (x_plan.note, y_plan.note) if note))
    label_offset = STRIP_PX + 2 if pair else None
    heat_color = color_spec(
        values,
        value_label=value_label,
        diverging=diverging,
        domain=domain,
        scheme=scheme,
        scale=scale,
        shared=shared_max,
        legend={"orient": "bottom", "direction": "horizontal"} if legend_below else None,
        log=log,
        notes=legend_notes,
    )
    if heat_color["field"] == "c":
        # The log scale's colour field: the value raised to the floor (a log has no 0).
        cells["c"] = np.maximum(values, heat_color["scale"]["domain"][0])
    y = _position_channel("q", nq, q_param["name"], "query (from)", y_plan.values, label_offset)
    x = _position_channel(
        "k", nk, k_param["name"], "key (to)", x_plan.values, label_offset, label_angle=-90
    )
    heat = {
        # Named so that the click selection, declared at the top level, knows its view.
        "name": HEAT_VIEW,
        "data": {"name": "cells"},
        # No per-cell ARIA description: Vega-Lite builds one by expression for every cell.
        "mark": {"type": "rect", "aria": False},
        # Joined by position, not computed per cell: an expression per cell is evaluated by
        # Streamlit's CSP-safe Vega interpreter, ≈ 1 µs each, on every redraw.
        "transform": [
            {
                "lookup": "q",
                "from": {"data": {"name": "query_labels"}, "key": "q", "fields": ["query"]},
            },
            {
                "lookup": "k",
                "from": {"data": {"name": "key_labels"}, "key": "k", "fields": ["key"]},
            },
        ],
        "encoding": {
            "x": x,
            "y": y,
            "color": heat_color,
            "tooltip": [
                {"field": "q", "type": "ordinal", "title": "query #"},
                {"field": "query", "type": "nominal", "title": "query"},
                {"field": "k", "type": "ordinal", "title": "key #"},
                {"field": "key", "type": "nominal", "title": "key"},
                {"field": "v", "type": "quantitative", "title": value_label, "format": ".4f"},
            ],
        },
    }
    layers: list[Spec] = [heat]
    datasets: dict[str, object] = {
        "cells": cells,
        "query_labels": pd.DataFrame({"q": np.arange(nq), "query": q_tokens}),
        "key_labels": pd.DataFrame({"k": np.arange(nk), "key": k_tokens}),
    }
    if selected is not None:
        # A stroke-only band across the whole row: unlike dimming the other rows it leaves
        # every cell's colour, and so its value, readable.
        layers.append(
            {
                "data": {"name": "selected_row"},
                "mark": {"type": "rect", "filled": False, "strokeWidth": 2},
                "encoding": {"y": y, "x": {"value": 0}, "x2": {"value": "width"}},
            }
        )
        datasets["selected_row"] = [{"q": int(selected)}]
    if pair:
        segment_layers, segment_data = _segment_layers(nq, nk, int(segment_b_start), x, y)  # type: ignore[arg-type]
        layers.extend(segment_layers)
        datasets.update(segment_data)
    params = [
        {
            "name": selection_name,
            "select": {"type": "point", "fields": ["q", "k"], "on": "click", "clear": "dblclick"},
            "views": [HEAT_VIEW],
        },
        # One parameter when rows and columns carry the same texts.
        *{p["name"]: p for p in (q_param, k_param)}.values(),
    ]
    return {
        "layer": layers,
        "params": params,
        "width": plot_w,
        "height": plot_h,
        "autosize": PAD_SPEC,
        **title_properties(title, notes),
        "datasets": datasets,
    }


def _position_channel(
    field: str,
    n: int,
    labels_name: str,
    title: str,
    labelled: list[int],
    offset: int | None,
    label_angle: float | None = None,
) -> Spec:
    """An ordinal channel over positions ``0..n-1`` of `field`, labelled from parameter
    `labels_name` at the positions `labelled`."""
    return {
        "field": field,
        "type": "ordinal",
        "scale": {"domain": list(range(n))},
        "axis": axis_spec(
            labels_name,
            title=title,
            label_angle=label_angle,
            values=labelled,
            planned=True,
            offset=offset,
        ),
    }


def _segment_layers(
    nq: int, nk: int, b_start: int, x: Spec, y: Spec
) -> tuple[list[Spec], dict[str, object]]:
    """A/B strips beside the y (left) and x (bottom) axes and dashed rules between A and B;
    the layers and their datasets.

    The strips are one rect per row/column filled by sentence, just outside the plot. They use
    the ``fill`` channel, a scale of its own beside the heat's ``color``, so they get one
    legend ("sentence": A, B), in the theme's text colour. Every layer repeats the heatmap's
    `x`/`y` (axes included): a layer without them would remove the shared axis.
    """
    fill = {
        "field": "sentence",
        "type": "nominal",
        "scale": {"domain": ["A", "B"], "range": SEGMENT_COLORS},
        "legend": {"title": "sentence", "orient": "top", "direction": "horizontal"},
    }
    rows = [{"q": i, "sentence": "A" if i < b_start else "B"} for i in range(nq)]
    columns = [{"k": i, "sentence": "A" if i < b_start else "B"} for i in range(nk)]
    rule_mark = {
        "type": "rule",
        "strokeDash": [4, 3],
        "strokeWidth": 1.5,
        "color": SEGMENT_COLORS[1],
    }
    layers = [
        {
            "data": {"name": "segment_rows"},
            "mark": {"type": "rect"},
            "encoding": {
                "y": y,
                "x": {"value": -STRIP_PX - 1},
                "x2": {"value": -1},
                "fill": fill,
            },
        },
        {
            "data": {"name": "segment_columns"},
            "mark": {"type": "rect"},
            "encoding": {
                "x": x,
                "y": {"value": {"expr": "height + 1"}},
                "y2": {"value": {"expr": f"height + {STRIP_PX + 1}"}},
                "fill": fill,
            },
        },
        # bandPosition 0 puts each rule on the edge between the last A and the first B cell.
        {
            "data": {"name": "segment_boundary"},
            "mark": rule_mark,
            "encoding": {"y": {**y, "bandPosition": 0}},
        },
        {
            "data": {"name": "segment_boundary"},
            "mark": rule_mark,
            "encoding": {"x": {**x, "bandPosition": 0}},
        },
    ]
    datasets = {
        "segment_rows": rows,
        "segment_columns": columns,
        "segment_boundary": [{"q": b_start, "k": b_start}],
    }
    return layers, datasets


def causal_mask(query_positions: Sequence[int], key_positions: Sequence[int]) -> np.ndarray:
    """bool `[q, k]`: True where key `j` comes after query `i` in the input.

    Compares `key_positions[j] > query_positions[i]`, the cells a causal model cannot see.

    For a window or pooled view pass the input positions its rows and columns stand for, e.g.
    the last position a query unit covers and the first a key unit covers: a cell is masked
    only when none of its keys is visible to any of its queries.
    """
    q = np.asarray(list(query_positions), dtype=np.int64)
    k = np.asarray(list(key_positions), dtype=np.int64)
    return k[None, :] > q[:, None]


def layer_head_profile(
    weights: np.ndarray,
    key_labels: Sequence[str],
    *,
    title: str = "",
    value_label: str = "attention",
    row_height: int = LABEL_PX,
    width: int | None = None,
    column_width: int | None = None,
    scale: ScaleMode = "chart",
    shared_max: float | None = None,
    fill: bool = False,
) -> alt.Chart:
    """For one query position: every head's attention over the keys, one row per head.

    Args:
        weights: `[layers, heads, k]`, e.g. ``attentions[:, :, mask_pos, :]``.
        key_labels: `k` token texts.
        row_height: px per head row; at least `core.chart_layout.LABEL_PX`, so every head's
            ``L{layer} H{head}`` label is drawn (a 12 × 12 model is 144 rows, 1728 px).
        width: px of the key axis; default 22 px per key within 220..680, no wider than
            `column_width` allows.
        column_width: px of the column the chart must fit in, head labels and legend included.
        scale, shared_max: colour domain, as in `attention_heatmap`.
        fill: when the keys want more room than `column_width` leaves them (22 px a key), the
            chart is as wide as its container (Vega-Lite's ``"container"`` width; draw it with
            ``width="stretch"``): a long input's keys get the whole column at every window
            width, labelled as planned for `column_width`, the narrowest. Fewer keys keep
            their 22 px.

    Rows are ``L{layer} H{head}`` (layer-major), columns the key positions; a faint rule
    separates the layers. Keys are labelled like a heatmap's columns (thinned with a note).

    Data: ``layer``, ``head``, ``k`` (int) and ``v`` (float) per cell; ``row`` = layer * heads
    + head is derived client-side. Selection: point param ``"head"`` over ``layer`` and
    ``head`` (click) -> ``{"head": [{"layer": 2, "head": 5}]}``.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 3:
        raise ValueError(f"weights must be [layers, heads, k], got shape {w.shape}")
    n_layers, n_heads, nk = w.shape
    tokens = check_labels(key_labels, nk, "key_labels")
    keep = np.isfinite(w)
    li, hi, ki = np.nonzero(keep)
    data = pd.DataFrame(
        {
            "layer": li.astype(np.int16),
            "head": hi.astype(np.int16),
            "k": ki.astype(position_dtype(nk)),
            "v": round_sig(w[keep]),
        }
    )
    tok_param = labels_param(tokens)
    head_sel = point_selection("head", ["layer", "head"])
    n_rows = n_layers * n_heads
    row_px = max(int(row_height), LABEL_PX)
    available = None
    if column_width is not None:
        # The legend stays beside this tall chart (below, it would be 1000+ px away from the
        # top rows); the head labels ("L11 H11") are narrower than token labels.
        available = heatmap_plot_width(column_width, legend_below=False) + 60
    plot_w = width or heatmap_side(nk, available)
    x_plan = plan_axis(nk, plot_w, what="key")
    row_y = alt.Y(
        "row:O",
        scale=alt.Scale(domain=list(range(n_rows))),
        axis=alt.Axis(
            title=None,
            labelExpr=f"'L' + floor(datum.value / {n_heads}) + ' H' + (datum.value % {n_heads})",
            # Every row has LABEL_PX: every head is labelled, each at its row's centre (a
            # flush first label was pushed up onto the second).
            labelOverlap=False,
            labelFlush=False,
            labelFontSize=LABEL_FONT_SIZE,
            ticks=False,
            domain=False,
        ),
    )
    heat = (
        alt.Chart(data)
        .mark_rect()
        .transform_calculate(
            row=f"datum.layer * {n_heads} + datum.head",
            key=f"{tok_param.name}[datum.k]",
        )
        .encode(
            x=alt.X(
                "k:O",
                scale=alt.Scale(domain=list(range(nk))),
                axis=position_axis(
                    tok_param,
                    title="key",
                    label_angle=-90,
                    values=x_plan.values,
                    planned=True,
                ),
            ),
            y=row_y,
            color=scaled_color(
                data["v"].to_numpy(),
                value_label=value_label,
                diverging=False,
                domain=None,
                scheme=None,
                scale=scale,
                shared=shared_max,
                legend=None,
            ),
            tooltip=[
                alt.Tooltip("layer:O", title="layer"),
                alt.Tooltip("head:O", title="head"),
                alt.Tooltip("k:O", title="key #"),
                alt.Tooltip("key:N", title="key"),
                alt.Tooltip("v:Q", title=value_label, format=".4f"),
            ],
        )
        .add_params(head_sel, tok_param)
    )
    layers: list[alt.Chart] = [heat]
    if n_layers > 1 and n_heads > 1:
        # A channel object, not a dict: Altair parses an encoding dict by trying schemas that
        # fail, and the caught errors keep this call's frames in reference cycles.
        band_start = row_y.copy()
        band_start.bandPosition = 0
        starts = pd.DataFrame({"row": np.arange(1, n_layers) * n_heads})
        layers.append(
            alt.Chart(starts)
            .mark_rule(strokeWidth=1, opacity=0.6)
            # The same axis as the cells': a layer with axis None would remove it.
            .encode(y=band_start)
        )
    width_spec: int | str = plot_w
    autosize: dict = PAD
    if fill and width is None and plot_w < BAR_PX * nk:
        width_spec, autosize = "container", {"type": "fit-x", "contains": "padding"}
    chart = alt.layer(*layers).properties(
        height=max(row_px * n_rows, 60), width=width_spec, autosize=autosize
    )
    return finish(chart, title, [x_plan.note])
