"""Bar charts: one token's attention both ways, and masked-word predictions."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from core.charts._common import (
    add_params,
    array_param,
    check_labels,
    labels_param,
    position_axis,
    position_dtype,
    round_sig,
)


def attention_bars(
    outgoing: np.ndarray,
    incoming: np.ndarray | None,
    labels: Sequence[str],
    selected: int | None,
    *,
    title: str = "",
    value_label: str = "attention",
    height: int = 220,
) -> alt.Chart:
    """Grouped bars: what the selected token attends to, and what attends to it.

    Args:
        outgoing: `[n]`, attention from `selected` to each position (its row).
        incoming: `[n]`, attention from each position to `selected` (its column); None
            draws only the outgoing bars (cross attention: the selected target token is not
            one of the source tokens on the axis, so nothing there "attends to" it).
        labels: `n` token texts.
        selected: the token's position; its axis label is bold. None when it is not on the
            axis.

    Data: ``pos`` (int), ``direction`` ("attends to" | "attended by"), ``v`` (float).
    Selection: point param ``"token"`` over ``pos`` (click) -> ``{"token": [{"pos": 2}]}``.
    """
    out = np.asarray(outgoing, dtype=np.float64).ravel()
    n = out.shape[0]
    series = [out]
    directions = ["attends to"]
    if incoming is not None:
        inc = np.asarray(incoming, dtype=np.float64).ravel()
        if inc.shape[0] != n:
            raise ValueError(f"outgoing has {n} values, incoming {inc.shape[0]}")
        series.append(inc)
        directions.append("attended by")
    tokens = check_labels(labels, n, "labels")
    if selected is not None and not 0 <= selected < n:
        raise ValueError(f"selected={selected} outside 0..{n - 1}")

    positions = np.arange(n, dtype=position_dtype(n))
    data = pd.DataFrame(
        {
            "pos": np.tile(positions, len(series)),
            "direction": np.repeat(directions, n),
            "v": round_sig(np.concatenate(series)),
        }
    )
    data = data[np.isfinite(data["v"])]
    tok_param = labels_param(tokens)
    token = alt.selection_point(name="token", fields=["pos"], on="click", clear="dblclick")
    chart = (
        alt.Chart(data)
        .mark_bar()
        .transform_calculate(token=f"{tok_param.name}[datum.pos]")
        .encode(
            x=alt.X(
                "pos:O",
                scale=alt.Scale(domain=list(range(n))),
                axis=position_axis(
                    tok_param,
                    title="token",
                    label_angle=-90,
                    font_weight_expr=None
                    if selected is None
                    else f"datum.value === {int(selected)} ? 'bold' : 'normal'",
                ),
            ),
            xOffset=alt.XOffset("direction:N", sort=directions),
            y=alt.Y("v:Q", title=value_label),
            color=alt.Color("direction:N", sort=directions, title=None),
            tooltip=[
                alt.Tooltip("pos:O", title="#"),
                alt.Tooltip("token:N", title="token"),
                alt.Tooltip("direction:N", title="direction"),
                alt.Tooltip("v:Q", title=value_label, format=".4f"),
            ],
        )
        .add_params(token, tok_param)
        .properties(height=height)
    )
    if title:
        chart = chart.properties(title=title)
    return chart


def prediction_bars(
    tokens: Sequence[str],
    scores: Sequence[float],
    *,
    title: str = "",
    bar_height: int = 22,
) -> alt.LayerChart:
    """Horizontal bars of top-k predictions, best first, probabilities labelled in percent.

    Args:
        tokens: `k` predicted token texts (duplicates allowed: rows are by rank).
        scores: `k` probabilities in [0, 1], any order (sorted here, best on top).

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
    prob_param = array_param("prob", [float(v) for v in data["p"]])
    rank_scale = alt.Scale(domain=list(range(k)))
    x = alt.X("p:Q", title="probability", axis=alt.Axis(format="%"))
    tooltip = [
        alt.Tooltip("rank:O", title="rank"),
        alt.Tooltip("token:N", title="token"),
        alt.Tooltip("p:Q", title="probability", format=".2%"),
    ]
    bars = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            y=alt.Y("rank:O", scale=rank_scale, axis=position_axis(tok_param, title=None)),
            x=x,
            tooltip=tooltip,
        )
    )
    # The percentages are a second axis rather than text marks: axis text takes the theme's
    # colour, whereas Vega-Lite draws text marks black, unreadable on a dark theme.
    percent_axis = alt.Axis(
        orient="right",
        title=None,
        labelExpr=f"format({prob_param.name}[datum.value], '.1%')",
        ticks=False,
        domain=False,
    )
    percents = (
        alt.Chart(data)
        .mark_bar(opacity=0)
        .encode(y=alt.Y("rank:O", scale=rank_scale, axis=percent_axis), x=x, tooltip=tooltip)
    )
    chart = (
        alt.layer(bars, percents)
        .resolve_axis(y="independent")
        .properties(height=max(bar_height * k, bar_height))
    )
    if title:
        chart = chart.properties(title=title)
    return add_params(chart, [tok_param, prob_param])
