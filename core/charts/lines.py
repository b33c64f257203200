"""BertViz-style line view and the edge pruning behind it."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from core.charts._common import (
    HEAD_SCHEME,
    LABEL_LIMIT_PX,
    PAD,
    add_params,
    check_labels,
    labels_param,
    point_selection,
    position_axis,
    position_dtype,
    round_sig,
)


def prune_edges(
    weights: np.ndarray,
    top_k: int | None = None,
    threshold: float = 0.0,
    head_ids: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Edges worth drawing in the line view, pruned on the server so large inputs stay light.

    Args:
        weights: `[h, n, k]` (or `[n, k]` for one head): weight from query `i` to key `j`.
        top_k: keep only the `top_k` strongest edges per query per head (ties go to the lower
            key position); None keeps all.
        threshold: keep edges with weight >= threshold. Zero-weight and NaN edges are always
            dropped: a line of opacity 0 is invisible anyway.
        head_ids: ids stored in the ``head`` column, one per head; default 0..h-1.

    Returns:
        DataFrame with one row per kept edge, ordered by head, src, dst:
        ``head`` (int), ``src`` (query position), ``dst`` (key position), ``w`` (5 significant
        digits). ``len(result)`` is the number of edges drawn.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 2:
        w = w[None]
    if w.ndim != 3:
        raise ValueError(f"weights must be [h, n, k] or [n, k], got shape {w.shape}")
    h, n, k = w.shape
    ids = np.arange(h) if head_ids is None else np.asarray(list(head_ids), dtype=np.int64)
    if ids.shape != (h,):
        raise ValueError(f"head_ids: expected {h} ids, got {ids.shape[0]}")

    keep = np.isfinite(w) & (w > 0) & (w >= threshold)
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if top_k < k:
            ranked = np.where(keep, w, -np.inf)
            # A stable sort of the negated weights puts the lower key position first on ties.
            order = np.argsort(-ranked, axis=-1, kind="stable")
            rank = np.empty_like(order)
            np.put_along_axis(rank, order, np.arange(k)[None, None, :], axis=-1)
            keep &= rank < top_k
    hh, src, dst = np.nonzero(keep)
    return pd.DataFrame(
        {
            "head": ids[hh],
            "src": src.astype(position_dtype(n)),
            "dst": dst.astype(position_dtype(k)),
            "w": round_sig(w[keep]),
        }
    )


def head_view_lines(
    weights: np.ndarray,
    labels: Sequence[str],
    head_ids: Sequence[int],
    *,
    top_k: int | None = None,
    threshold: float = 0.0,
    selected: int | None = None,
    row_height: int = 18,
    width: int = 240,
    title: str = "",
    column_width: int | None = None,
) -> alt.LayerChart:
    """BertViz-style view: queries on the left, keys on the right, one line per kept edge.

    Args:
        weights: `[h, n, n]` attention of the shown heads (`[n, n]` for one head).
        labels: `n` token texts.
        head_ids: the head number of each of the `h` rows of `weights` (colours, tooltips).
        top_k, threshold: edge pruning, see :func:`prune_edges`.
        selected: source position pre-selected, so only its lines show until cleared.
        row_height: px per token; the chart is `n * row_height` px tall.
        width: px between the two token columns.
        column_width: px of the column the chart must fit in, both token columns included;
            `width` is then narrowed (to no less than 120 px) so it does. The head legend
            wraps into rows that fit too.

    Line opacity is the weight (clamped to [0, 1] unless weights exceed 1); each head has its
    own colour, with a legend listing every head when several are shown. Tokens are axis
    labels, so they follow the theme's text colour and thin out instead of overlapping at
    large `n`.

    Data: edges ``head``, ``src``, ``dst``, ``w`` (from :func:`prune_edges`; the page can
    caption ``len(prune_edges(...))`` edges); token rows ``src``/``dst`` (positions only).

    Selections, both over ``src``, on an invisible band over each left label:
        ``"token"`` (click; double-click clears) -> Streamlit returns
        ``{"token": [{"src": 4}]}``. ``"hover"`` (pointer over, cleared on leaving) is for
        display only: pass ``selection_mode="token"`` with ``on_select`` so hovering does not
        trigger reruns. The hovered token's lines show; else the clicked token's; else all.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 2:
        w = w[None]
    if w.ndim != 3 or w.shape[1] != w.shape[2]:
        raise ValueError(f"weights must be [h, n, n], got shape {w.shape}")
    n_heads, n, _ = w.shape
    tokens = check_labels(labels, n, "labels")
    if selected is not None and not 0 <= selected < n:
        raise ValueError(f"selected={selected} outside 0..{n - 1}")

    edges = prune_edges(w, top_k=top_k, threshold=threshold, head_ids=head_ids)
    ids = [int(i) for i in head_ids]
    if column_width is not None:
        width = max(120, min(width, int(column_width) - 2 * LABEL_LIMIT_PX - 20))
    # Each legend entry (symbol, a number up to 2 digits, padding) takes about 48 px, and the
    # legend's title some 60 px: wrap into as many columns as the chart's width holds.
    total = width + 2 * LABEL_LIMIT_PX if column_width is None else int(column_width)
    legend_columns = max(1, min(len(ids), (total - 60) // 48))
    tok_param = labels_param(tokens)
    max_w = float(edges["w"].max()) if len(edges) else 1.0

    hover = point_selection("hover", ["src"], on="pointerover", clear="pointerout", empty=True)
    token = point_selection(
        "token", ["src"], value=None if selected is None else [{"src": int(selected)}]
    )
    # The hovered token wins over the clicked one, which wins over "show everything". Point
    # selection params evaluate to {src: [positions], ...}, or {} when empty.
    focus = "(isValid(hover.src) ? hover.src : (isValid(token.src) ? token.src : null))"
    in_focus = f"{focus} === null || indexof({focus}, datum.src) >= 0"

    def is_focused(position: str) -> str:
        return f"{focus} !== null && indexof({focus}, {position}) >= 0"

    y_scale = alt.Scale(domain=[-0.5, n - 0.5], reverse=True, nice=False, zero=False)
    # Channel objects (alt.XValue, alt.Y2, …) rather than alt.value() dicts or shorthand
    # strings: Altair wraps each of those through from_dict, which rebuilds a lookup table of
    # every schema class each time, which was most of this chart's build time.

    lines = (
        alt.Chart(edges)
        .mark_rule(strokeWidth=2)
        .transform_filter(in_focus)
        .transform_calculate(**{"from": f"{tok_param.name}[datum.src]"})
        .transform_calculate(to=f"{tok_param.name}[datum.dst]")
        .encode(
            x=alt.XValue(0),
            x2=alt.X2Value("width"),
            y=alt.Y("src:Q", scale=y_scale, axis=None),
            y2=alt.Y2("dst:Q"),
            color=alt.Color(
                "head:N",
                scale=alt.Scale(scheme=HEAD_SCHEME if n_heads <= 10 else "category20"),
                title="head",
                legend=alt.Legend(
                    orient="top",
                    columns=legend_columns,
                    # Vega drops entries past its symbol limit; every head must be listed.
                    symbolLimit=len(ids) + 1,
                    values=ids,
                )
                if n_heads > 1
                else None,
            ),
            opacity=alt.Opacity(
                "w:Q",
                scale=alt.Scale(domain=[0, max(1.0, max_w)], range=[0, 1], clamp=True),
                legend=None,
            ),
            tooltip=[
                alt.Tooltip("head:O", title="head"),
                alt.Tooltip("src:O", title="from #"),
                alt.Tooltip("from:N", title="from"),
                alt.Tooltip("dst:O", title="to #"),
                alt.Tooltip("to:N", title="to"),
                alt.Tooltip("w:Q", title="attention", format=".4f"),
            ],
        )
    )

    positions = np.arange(n, dtype=position_dtype(n))
    # Bands over the left labels carry the selections: axis labels cannot be clicked. They
    # are filled with the theme's mark colour, so the focused band is a soft highlight and
    # the others, at opacity 0, stay pickable but invisible.
    left = (
        alt.Chart(pd.DataFrame({"src": positions}))
        .mark_rect(cursor="pointer")
        .transform_calculate(y0="datum.src - 0.5", y1="datum.src + 0.5")
        .transform_calculate(token=f"{tok_param.name}[datum.src]")
        .encode(
            x=alt.XValue(-LABEL_LIMIT_PX),
            x2=alt.X2Value(0),
            y=alt.Y(
                "y0:Q",
                scale=y_scale,
                axis=position_axis(
                    tok_param,
                    title=None,
                    orient="left",
                    values=positions.tolist(),
                    font_weight_expr=f"{is_focused('datum.value')} ? 'bold' : 'normal'",
                ),
                title=None,
            ),
            y2=alt.Y2("y1"),
            opacity=alt.OpacityValue(
                0.0, condition=[{"test": is_focused("datum.src"), "value": 0.18}]
            ),
            tooltip=[alt.Tooltip("src:O", title="#"), alt.Tooltip("token:N", title="token")],
        )
        .add_params(hover, token)
    )
    right = (
        alt.Chart(pd.DataFrame({"dst": positions}))
        .mark_rect(opacity=0)
        .transform_calculate(y0="datum.dst - 0.5", y1="datum.dst + 0.5")
        .encode(
            x=alt.XValue("width"),
            x2=alt.X2Value("width"),
            y=alt.Y(
                "y0:Q",
                scale=y_scale,
                axis=position_axis(
                    tok_param, title=None, orient="right", values=positions.tolist()
                ),
                title=None,
            ),
            y2=alt.Y2("y1"),
        )
    )
    chart = (
        alt.layer(lines, left, right)
        .resolve_axis(y="independent")
        .properties(width=width, height=max(row_height * n, row_height), autosize=PAD)
    )
    if title:
        chart = chart.properties(title=title)
    return add_params(chart, [tok_param])
