"""Contribution graphs drawn as layers of token nodes joined by weighted edges.

Draws `core.information_flow_graph` (Ferrando & Voita: residual-stream nodes after each
attention block and each layer, a feed-forward node beside each token) and
`core.layer_share_graph` (token nodes per layer only).
"""

from __future__ import annotations

from collections.abc import Hashable

import altair as alt
import networkx as nx
import numpy as np
import pandas as pd

from core.chart_layout import LABEL_FONT_SIZE, LABEL_PX, LEGEND_PX, plan_axis
from core.charts._common import (
    LABEL_LIMIT_PX,
    PAD,
    SEQUENTIAL_SCHEME,
    add_params,
    finish,
    labels_param,
    point_selection,
    round_sig,
)
from core.graph import AFTER_ATTENTION, AFTER_LAYER, FFN, INPUT

GRAPH_TOKEN_PX = 48
"""px per token column of the graph when the page leaves room for it."""
NODE_LEGEND_PX = 190
"""The "node" legend's symbols and labels ("residual after attention" is the longest); it
stands in one column with the "share" legend, so the wider of the two counts."""
GRAPH_RESERVED_PX = max(LEGEND_PX, NODE_LEGEND_PX) + 50
"""Beside the token columns: the layer axis (title and numbers) and the legends."""
NODE_COLOUR = "#8c8c8c"
"""Mid grey: the nodes stand out on the light and the dark theme's background alike."""
FFN_OFFSET = 0.3
"""A feed-forward node sits this far right of its token's column (in token columns)."""
NODE_KINDS = {
    INPUT: "input token",
    AFTER_ATTENTION: "residual after attention",
    FFN: "feed-forward block",
    AFTER_LAYER: "residual after the layer",
}
"""Legend and tooltip names of the node kinds (a layer-share graph's nodes are layer outputs)."""
NODE_SHAPES = {NODE_KINDS[AFTER_ATTENTION]: "diamond", NODE_KINDS[FFN]: "square"}
"""Shapes other than the circle (input tokens and layer outputs)."""


def graph_layout(graph: nx.DiGraph) -> dict[Hashable, tuple[float, float]]:
    """Layered positions: x the token position (feed-forward nodes `FFN_OFFSET` to its right),
    y the node's level (0 = input at the bottom, l = the output of layer l)."""
    layout = {}
    for node, data in graph.nodes(data=True):
        offset = FFN_OFFSET if data.get("kind") == FFN else 0.0
        layout[node] = (data["token"] + offset, float(data.get("level", data["layer"])))
    return layout


def legend_values(threshold: float) -> list[float]:
    """The share legend's labels: the threshold, the quarters above it, and 1."""
    return [threshold, *(q for q in (0.25, 0.5, 0.75) if q > threshold + 0.05), 1.0]


def _node_kind(data: dict) -> str:
    return NODE_KINDS[data.get("kind", INPUT if data["layer"] == 0 else AFTER_LAYER)]


def graph_token_px(n: int, max_width: int | None, token_px: int = GRAPH_TOKEN_PX) -> int:
    """px between neighbouring token columns of the graph: `token_px`, or less so that `n`
    columns, the layer axis and the legend fit `max_width` (None: no limit). At least 1."""
    if n < 1:
        raise ValueError(f"the graph needs at least one token, got {n}")
    if max_width is None:
        return token_px
    return max(1, min(token_px, (int(max_width) - GRAPH_RESERVED_PX) // n))


GRAPH_HEIGHT_PX = (400, 720)
"""Least and most px of the graph's height; between them, `GRAPH_LAYER_PX` per level."""
GRAPH_LAYER_PX = 90
EDGE_HIT_PX = 9
"""Width of the invisible line over each edge that takes the pointer: a thin edge is hard to
hit, and the tooltip with its contribution is what hovering is for."""


def contribution_graph_chart(
    graph: nx.DiGraph,
    tokens: list[str],
    *,
    token_px: int = GRAPH_TOKEN_PX,
    max_width: int | None = None,
    layer_height: int | None = None,
    fill: bool = False,
) -> alt.LayerChart:
    """Nodes at (token, level), edges as lines whose width and colour are their share.

    The colour legend runs from the graph's threshold (`graph.graph["threshold"]`, below which
    nothing is drawn) to 1; node shapes tell the residual stream (circles) from feed-forward
    blocks (squares), and the tooltips name each node and edge. Hovering an edge highlights it
    and shows its contribution (from, to, layer, route, share); shift + wheel zooms and a
    drag pans (double-click resets).

    `fill`: the chart is as wide as its container (Vega-Lite's ``"container"`` width; draw it
    with ``width="stretch"``); `max_width` is then the narrowest column expected, which decides
    how many token labels fit. `layer_height` px per level (default: the graph between
    `GRAPH_HEIGHT_PX`, `GRAPH_LAYER_PX` a level).

    `tokens` are the texts of every input position (the x axis labels; data, never code).
    Each token gets `token_px` px, or less so that the whole chart (layer axis and legend
    included) fits `max_width` (Streamlit does not scale charts down; a wider graph ran off
    the page). Tokens are labelled at 45° while they have room, else upright, and beyond one
    label per `LABEL_PX` every k-th is, and the subtitle (`chart_notes`) says so.

    Data: edges ``x``, ``y``, ``x2``, ``y2``, ``w``, ``layer``, ``kind``; nodes ``x``, ``y``,
    ``token``, ``layer``, ``kind`` and ``output`` (1 for the explained position).
    """
    layout = graph_layout(graph)
    n = len(tokens)
    spacing = graph_token_px(n, max_width, token_px)
    plot_width = spacing * n
    axis_plan = plan_axis(n, plot_width)
    layer_count = max((data["layer"] for _, data in graph.nodes(data=True)), default=0)
    tok = labels_param([str(t) for t in tokens])
    edges = pd.DataFrame(
        [
            {
                "x": layout[u][0],
                "y": layout[u][1],
                "x2": layout[v][0],
                "y2": layout[v][1],
                "w": data["weight"],
                "layer": data["layer"],
                "kind": data.get("kind", "contribution"),
            }
            for u, v, data in graph.edges(data=True)
        ],
        columns=["x", "y", "x2", "y2", "w", "layer", "kind"],
    )
    edges["w"] = round_sig(edges["w"].to_numpy(dtype=np.float64))
    nodes = pd.DataFrame(
        [
            {
                "x": layout[key][0],
                "y": layout[key][1],
                "token": data["token"],
                "layer": data["layer"],
                "kind": _node_kind(data),
                "output": int(bool(data.get("output"))),
            }
            for key, data in graph.nodes(data=True)
        ],
        columns=["x", "y", "token", "layer", "kind", "output"],
    )
    threshold = float(graph.graph.get("threshold", 0.0))
    x_scale = alt.Scale(domain=[-0.5, n - 0.5], nice=False, zero=False)
    y_scale = alt.Scale(domain=[-0.5, layer_count + 0.5], nice=False, zero=False)
    x_axis = alt.Axis(
        title=None,
        values=axis_plan.values,
        labelExpr=f"{tok.name}[datum.value]",
        # Slanted labels need about twice a label's height between them; upright ones one.
        labelAngle=-45 if spacing >= 2 * LABEL_PX else -90,
        labelOverlap=False,
        labelFontSize=LABEL_FONT_SIZE,
        labelLimit=LABEL_LIMIT_PX,
        grid=False,
        ticks=False,
    )
    y_axis = alt.Axis(title="layer", values=list(range(layer_count + 1)), grid=False, format="d")
    edge_tooltip = [
        alt.Tooltip("source:N", title="from"),
        alt.Tooltip("target:N", title="to"),
        alt.Tooltip("layer:O", title="layer"),
        alt.Tooltip("kind:N", title="route"),
        alt.Tooltip("w:Q", title="share of the row", format=".4f"),
    ]
    endpoints = {
        "source": f"{tok.name}[round(datum.x - {FFN_OFFSET})]",
        "target": f"{tok.name}[round(datum.x2 - {FFN_OFFSET})]",
    }
    hovered = point_selection("edge", ["x", "y", "x2", "y2"], on="pointerover", clear="pointerout")
    # Shift + wheel zooms: the plain wheel keeps scrolling the page past a chart this large.
    zoom = alt.selection_interval(name="zoom", bind="scales", zoom="wheel![event.shiftKey]")
    lines = (
        alt.Chart(edges)
        .mark_rule()
        .transform_calculate(
            **endpoints,
            # The width reads a copy of the share: Vega-Lite merges the legends of channels
            # on one field, and the width's hidden legend took the colour legend with it.
            thickness="datum.w",
        )
        .encode(
            x=alt.X("x:Q", scale=x_scale, axis=x_axis),
            y=alt.Y("y:Q", scale=y_scale, axis=y_axis),
            x2="x2:Q",
            y2="y2:Q",
            strokeWidth=alt.StrokeWidth(
                "thickness:Q", scale=alt.Scale(range=[0.5, 6]), legend=None
            ),
            color=alt.Color(
                "w:Q",
                # From the threshold: no drawn edge is below it, so no colour is wasted there.
                scale=alt.Scale(scheme=SEQUENTIAL_SCHEME, domain=[threshold, 1.0], clamp=True),
                legend=alt.Legend(values=legend_values(threshold), format=".2~f"),
                title=["share", f"(from {threshold:.2f})"],
            ),
            # While an edge is hovered the others fade, so its route stands out.
            # Value objects, not alt.condition / alt.value dicts: Altair parses those by trying
            # schemas that fail, and the caught errors keep this call's frames in cycles.
            opacity=alt.OpacityValue(
                0.25, condition={"param": hovered.name, "value": 1.0, "empty": True}
            ),
            tooltip=edge_tooltip,
        )
        .add_params(zoom)
    )
    hits = (
        alt.Chart(edges)
        .mark_rule(strokeWidth=EDGE_HIT_PX, opacity=0.001, cursor="pointer")
        .transform_calculate(**endpoints)
        .encode(
            # The edges' axes: a default axis merged with theirs dropped every other label.
            x=alt.X("x:Q", scale=x_scale, axis=x_axis),
            y=alt.Y("y:Q", scale=y_scale, axis=y_axis),
            x2="x2:Q",
            y2="y2:Q",
            tooltip=edge_tooltip,
        )
        .add_params(hovered)
    )
    shapes = [kind for kind in NODE_KINDS.values() if kind in set(nodes["kind"])]
    points = (
        alt.Chart(nodes)
        .mark_point(filled=True, opacity=1)
        .transform_calculate(text=f"{tok.name}[datum.token]")
        .encode(
            # The same axes as the edges': a default axis merged with theirs dropped every
            # other token label, and no axis here (None) hid both axes of the chart.
            x=alt.X("x:Q", scale=x_scale, axis=x_axis),
            y=alt.Y("y:Q", scale=y_scale, axis=y_axis),
            size=alt.Size("output:N", scale=alt.Scale(range=[50, 160]), legend=None),
            shape=alt.Shape(
                "kind:N",
                scale=alt.Scale(
                    domain=shapes,
                    range=[NODE_SHAPES.get(kind, "circle") for kind in shapes],
                ),
                title="node",
                legend=alt.Legend(labelLimit=NODE_LEGEND_PX - 40),
            ),
            color=alt.ColorValue(NODE_COLOUR),
            tooltip=[
                alt.Tooltip("text:N", title="token"),
                alt.Tooltip("layer:O", title="layer"),
                alt.Tooltip("kind:N", title="node"),
            ],
        )
    )
    if layer_height is None:
        low, high = GRAPH_HEIGHT_PX
        height = min(high, max(low, GRAPH_LAYER_PX * (layer_count + 1)))
    else:
        height = max(160, layer_height * (layer_count + 1))
    if fill:
        width: int | str = "container"
        autosize: dict = {"type": "fit-x", "contains": "padding"}
    else:
        width = plot_width if max_width is not None else max(240, plot_width)
        autosize = PAD
    chart = alt.layer(lines, hits, points).properties(width=width, height=height, autosize=autosize)
    chart = finish(chart, "", [axis_plan.note])
    return add_params(chart, [tok])
