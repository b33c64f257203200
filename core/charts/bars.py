"""Bar charts: one token's attention both ways, and masked-word predictions."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from core.chart_layout import BAR_PX, BarPlan, plan_token_bars
from core.charts._common import (
    FIT_X,
    add_params,
    array_param,
    check_labels,
    finish,
    labels_param,
    point_selection,
    position_axis,
    position_dtype,
    round_sig,
)
from core.scales import SCALE_WORDS, ScaleMode, scale_caption, value_domain

LEGEND_LABEL_PX = 120
"""Room for a direction's name in the legend ("attended by" is about 65 px): set, so that no
theme's shorter default cuts it."""


def attention_bars(
    outgoing: np.ndarray,
    incoming: np.ndarray | None,
    labels: Sequence[str],
    selected: int | None,
    *,
    title: str = "",
    value_label: str = "attention",
    height: int = 220,
    column_width: int | None = None,
    scale: ScaleMode = "chart",
    shared_max: float | None = None,
    top_n: int = 30,
) -> alt.LayerChart:
    """Grouped bars: what the selected token attends to, and what attends to it.

    Args:
        outgoing: `[n]`, attention from `selected` to each position (its row).
        incoming: `[n]`, attention from each position to `selected` (its column); None
            draws only the outgoing bars (cross attention: the selected target token is not
            one of the source tokens on the axis, so nothing there "attends to" it).
        labels: `n` token texts.
        selected: the token's position; its axis label is bold. None when it is not on the
            axis.
        height: px of the vertical layout's plot.
        column_width: px of the column the chart fills, its legend included. Given, the
            layout follows `core.chart_layout.plan_token_bars`: vertical bars while every token
            gets `LABEL_PX` beside the value axis and the legend, else horizontal bars
            (`BAR_PX` a token), and beyond `top_n` tokens only the `top_n` with the most
            attention either way, with a note in the subtitle (`chart_notes`). None keeps
            the vertical layout for any length.
        scale: value axis domain, ``"chart"`` (0 to this chart's maximum), ``"shared"`` (0 to
            `shared_max`) or ``"fixed"`` (0 to 1); the axis title says which.
        top_n: most tokens drawn once the column is too narrow for all of them.

    Every drawn token is labelled. The chart follows the column's width (autosize
    ``fit-x``) and keeps its own height.

    Data: ``pos`` (int), ``direction`` ("attends to" | "attended by"), ``v`` (float).
    Selection: point param ``"token"`` over ``pos`` (click) -> ``{"token": [{"pos": 2}]}``.
    """
    out = np.asarray(outgoing, dtype=np.float64).ravel()
    n = out.shape[0]
    series = [out]
    directions = ["attends to"]
    inc = None
    if incoming is not None:
        inc = np.asarray(incoming, dtype=np.float64).ravel()
        if inc.shape[0] != n:
            raise ValueError(f"outgoing has {n} values, incoming {inc.shape[0]}")
        series.append(inc)
        directions.append("attended by")
    tokens = check_labels(labels, n, "labels")
    if selected is not None and not 0 <= selected < n:
        raise ValueError(f"selected={selected} outside 0..{n - 1}")
    if column_width is None:
        plan = BarPlan("vertical", list(range(n)), height, "")
    else:
        # The direction legend sits above the bars, so the plot has the column's width.
        plan = plan_token_bars(
            out, inc, selected, column_width, legend=False, top_n=top_n, vertical_height=height
        )
    shown = np.asarray(plan.positions, dtype=np.int64)

    data = pd.DataFrame(
        {
            "pos": np.tile(shown.astype(position_dtype(n)), len(series)),
            "direction": np.repeat(directions, len(shown)),
            "v": round_sig(np.concatenate([values[shown] for values in series])),
        }
    )
    data = data[np.isfinite(data["v"])]
    domain = value_domain(data["v"].to_numpy(), scale, shared=shared_max)
    value_scale = alt.Scale(domainMin=0) if scale == "chart" else alt.Scale(domain=list(domain))
    value_title = scale_caption(value_label, scale, domain)
    tok_param = labels_param(tokens)
    token = point_selection("token", ["pos"])
    weight_expr = (
        None if selected is None else f"datum.value === {int(selected)} ? 'bold' : 'normal'"
    )
    horizontal = plan.orientation == "horizontal"
    token_axis = position_axis(
        tok_param,
        title="token",
        label_angle=None if horizontal else -90,
        font_weight_expr=weight_expr,
        values=None if column_width is None else plan.positions,
        planned=column_width is not None,
    )
    if len(shown) < n:
        # Rows are not contiguous: the position tells where in the input each one is.
        token_axis.labelExpr = f"datum.value + '·' + {tok_param.name}[datum.value]"
    token_scale = alt.Scale(domain=plan.positions)
    token_channel = alt.Y if horizontal else alt.X
    value_channel = alt.X if horizontal else alt.Y
    offset_channel = alt.YOffset if horizontal else alt.XOffset
    chart = (
        alt.Chart(data)
        .mark_bar()
        .transform_calculate(token=f"{tok_param.name}[datum.pos]")
        .encode(
            token_channel("pos:O", scale=token_scale, axis=token_axis),
            offset_channel("direction:N", sort=directions),
            value_channel("v:Q", title=value_title, scale=value_scale),
            # Above the plot: beside it the legend took a third of a 272 px column and
            # squeezed horizontal bars into 80 px.
            color=alt.Color(
                "direction:N",
                sort=directions,
                title=None,
                # Both directions named in full: "attended by" was cut to "attended b…".
                legend=alt.Legend(orient="top", direction="horizontal", labelLimit=LEGEND_LABEL_PX),
            ),
            tooltip=[
                alt.Tooltip("pos:O", title="#"),
                alt.Tooltip("token:N", title="token"),
                alt.Tooltip("direction:N", title="direction"),
                alt.Tooltip("v:Q", title=value_label, format=".4f"),
            ],
        )
        .add_params(token, tok_param)
        .properties(height=plan.height)
    )
    if column_width is not None:
        chart = chart.properties(width=int(column_width), autosize=FIT_X)
    return finish(chart, title, [plan.note])


def percent(value: float) -> str:
    """A probability bound as a short percentage: "100%", "30%", "4.2%", "0.35%"."""
    pct = 100 * value
    return f"{pct:.0f}%" if pct >= 10 else f"{pct:.2g}%"


def probability_label(value: float) -> str:
    """A predicted token's probability as its bar's label: one decimal ("56.7%", "0.4%"), or two
    significant digits below 0.1 % ("0.0053%"), where one decimal said "0.0%" for every bar of
    a model unsure of its guess."""
    pct = 100 * value
    return f"{pct:.1f}%" if pct >= 0.1 or pct == 0 else f"{pct:.2g}%"


def prediction_bars(
    tokens: Sequence[str],
    scores: Sequence[float],
    *,
    title: str = "",
    bar_height: int = BAR_PX,
    column_width: int | None = None,
    scale: ScaleMode = "chart",
    shared_max: float | None = None,
) -> alt.LayerChart:
    """Horizontal bars of top-k predictions, best first, probabilities labelled in percent.

    Args:
        tokens: `k` predicted token texts (duplicates allowed: rows are by rank).
        scores: `k` probabilities in [0, 1], any order (sorted here, best on top).
        bar_height: px per bar, at least `core.chart_layout.BAR_PX`, so every token is labelled.
        column_width: px of the column; the chart is that wide (it follows the column anyway
            when the page stretches it).
        scale: probability axis, ``"chart"`` (0 to the best score), ``"shared"`` (0 to
            `shared_max`, e.g. the best score before and after a change, so the two charts
            compare) or ``"fixed"`` (0–100 %); the axis title says which.

    The plot keeps `k * bar_height` px of height: it uses autosize ``fit-x``, so Streamlit
    fits only its width (its default "fit" squeezed the height, titles included, into the
    given height).

    Data: ``rank`` (0 = best), ``p`` (probability), ``token`` (text; only k rows).
    """
    texts = [str(t) for t in tokens]
    p = np.asarray(scores, dtype=np.float64).ravel()
    if p.shape[0] != len(texts):
        raise ValueError(f"{len(texts)} tokens but {p.shape[0]} scores")
    if not np.isfinite(p).all():
        # NaN would also make the spec invalid JSON once it sits in the percent-label param.
        raise ValueError("scores must be finite")
    order = np.argsort(-p, kind="stable")
    ranked = [texts[i] for i in order]
    tok_param = labels_param(ranked)
    k = len(ranked)
    data = pd.DataFrame(
        {"rank": np.arange(k, dtype=np.int16), "p": round_sig(p[order]), "token": ranked}
    )
    prob_param = array_param("prob", [probability_label(v) for v in data["p"]])
    rank_scale = alt.Scale(domain=list(range(k)))
    domain = value_domain(p, scale, shared=shared_max)
    p_scale = alt.Scale(domainMin=0) if scale == "chart" else alt.Scale(domain=list(domain))
    x = alt.X(
        "p:Q",
        # The axis is in percent, so is the scale in its title: "probability (0–100% fixed)".
        title=f"probability (0–{percent(domain[1])} {SCALE_WORDS[scale]})",
        axis=alt.Axis(format="%"),
        scale=p_scale,
    )
    tooltip = [
        alt.Tooltip("rank:O", title="rank"),
        alt.Tooltip("token:N", title="token"),
        alt.Tooltip("p:Q", title="probability", format=".2%"),
    ]
    rank_values = list(range(k))
    bars = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            y=alt.Y(
                "rank:O",
                scale=rank_scale,
                axis=position_axis(tok_param, title=None, values=rank_values, planned=True),
            ),
            x=x,
            tooltip=tooltip,
        )
    )
    # The percentages are a second axis rather than text marks: axis text takes the theme's
    # colour, whereas Vega-Lite draws text marks black, unreadable on a dark theme.
    percent_axis = alt.Axis(
        orient="right",
        title=None,
        labelExpr=f"{prob_param.name}[datum.value]",
        values=rank_values,
        labelOverlap=False,
        ticks=False,
        domain=False,
    )
    percents = (
        alt.Chart(data)
        .mark_bar(opacity=0)
        .encode(y=alt.Y("rank:O", scale=rank_scale, axis=percent_axis), x=x, tooltip=tooltip)
    )
    row_px = max(int(bar_height), BAR_PX)
    chart = (
        alt.layer(bars, percents)
        .resolve_axis(y="independent")
        .properties(height=max(row_px * k, row_px), autosize=FIT_X)
    )
    if column_width is not None:
        chart = chart.properties(width=int(column_width))
    chart = finish(chart, title, [])
    return add_params(chart, [tok_param, prob_param])
