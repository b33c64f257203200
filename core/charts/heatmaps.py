"""Heatmaps of one query-key matrix and of one query across every head."""

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
    heat_size,
    labels_param,
    position_axis,
    position_dtype,
    round_sig,
)


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
) -> alt.LayerChart:
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
        width, height: px; default 16 px per cell within 160..640.
        selection_name: name of the click selection; give side-by-side heatmaps different
            names if their selections must stay independent.

    Data: one row per drawn cell with fields ``q`` (int), ``k`` (int), ``v`` (float, 5
    significant digits). Token texts are looked up client-side into ``query``/``key``.

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
    q_idx, k_idx = np.nonzero(keep)
    values = round_sig(m[keep])
    data = pd.DataFrame(
        {
            "q": q_idx.astype(position_dtype(nq)),
            "k": k_idx.astype(position_dtype(nk)),
            "v": values,
        }
    )

    q_param = labels_param(q_tokens)
    k_param = labels_param(k_tokens)
    heat_scale = color_scale(values, diverging=diverging, domain=domain, scheme=scheme)

    cell = alt.selection_point(name=selection_name, fields=["q", "k"], on="click", clear="dblclick")
    y = alt.Y(
        "q:O",
        scale=alt.Scale(domain=list(range(nq))),
        axis=position_axis(q_param, title="query (from)"),
    )
    heat = (
        alt.Chart(data)
        .mark_rect()
        .transform_calculate(query=f"{q_param.name}[datum.q]", key=f"{k_param.name}[datum.k]")
        .encode(
            x=alt.X(
                "k:O",
                scale=alt.Scale(domain=list(range(nk))),
                axis=position_axis(k_param, title="key (to)", label_angle=-90),
            ),
            y=y,
            color=alt.Color("v:Q", scale=heat_scale, title=value_label),
            tooltip=[
                alt.Tooltip("q:O", title="query #"),
                alt.Tooltip("query:N", title="query"),
                alt.Tooltip("k:O", title="key #"),
                alt.Tooltip("key:N", title="key"),
                alt.Tooltip("v:Q", title=value_label, format=".4f"),
            ],
        )
        .add_params(cell)
    )
    layers: list[alt.Chart] = [heat]
    if selected is not None:
        if not 0 <= selected < nq:
            raise ValueError(f"selected={selected} outside 0..{nq - 1}")
        # A stroke-only band across the whole row: unlike dimming the other rows it leaves
        # every cell's colour, and so its value, readable.
        outline = (
            alt.Chart(alt.InlineData(values=[{"q": int(selected)}]))
            .mark_rect(filled=False, strokeWidth=2)
            .encode(y=y, x=alt.value(0), x2=alt.value("width"))
        )
        layers.append(outline)
    chart = alt.layer(*layers).properties(
        width=width or heat_size(nk), height=height or heat_size(nq), autosize=PAD
    )
    if title:
        chart = chart.properties(title=title)
    return add_params(chart, [q_param, k_param])


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
    row_height: int = 10,
    width: int | None = None,
) -> alt.Chart:
    """For one query position: every head's attention over the keys, one row per head.

    Args:
        weights: `[layers, heads, k]`, e.g. ``attentions[:, :, mask_pos, :]``.
        key_labels: `k` token texts.

    Rows are ``L{layer} H{head}`` (layer-major), columns the key positions.

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
    head_sel = alt.selection_point(
        name="head", fields=["layer", "head"], on="click", clear="dblclick"
    )
    n_rows = n_layers * n_heads
    chart = (
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
                axis=position_axis(tok_param, title="key", label_angle=-90),
            ),
            y=alt.Y(
                "row:O",
                scale=alt.Scale(domain=list(range(n_rows))),
                axis=alt.Axis(
                    title=None,
                    labelExpr=(
                        f"'L' + floor(datum.value / {n_heads}) + ' H' + (datum.value % {n_heads})"
                    ),
                    labelOverlap="greedy",
                    ticks=False,
                    domain=False,
                ),
            ),
            color=alt.Color(
                "v:Q",
                scale=color_scale(data["v"].to_numpy(), diverging=False, domain=None, scheme=None),
                title=value_label,
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
        .properties(height=max(row_height * n_rows, 60), width=width or heat_size(nk), autosize=PAD)
    )
    if title:
        chart = chart.properties(title=title)
    return chart
