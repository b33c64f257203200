"""The contribution graph drawn as layers of token nodes joined by weighted edges."""

from __future__ import annotations

import altair as alt
import networkx as nx
import numpy as np
import pandas as pd

from core.charts._common import PAD, SEQUENTIAL_SCHEME, add_params, labels_param, round_sig


def graph_layout(graph: nx.DiGraph) -> dict[tuple[int, int], tuple[float, float]]:
    """Layered positions: x the token position, y the layer (0 = input at the bottom)."""
    return {
        node: (float(data["token"]), float(data["layer"])) for node, data in graph.nodes(data=True)
    }


def contribution_graph_chart(
    graph: nx.DiGraph,
    tokens: list[str],
    *,
    column_width: int = 48,
    layer_height: int = 36,
) -> alt.LayerChart:
    """Nodes at (token, layer), edges as lines whose width and colour are their share.

    `tokens` are the texts of every input position (the x axis labels; data, never code).
    Data: edges ``x``, ``y``, ``x2``, ``y2``, ``w``, ``layer``; nodes ``x``, ``y`` and
    ``output`` (1 for the explained position).
    """
    layout = graph_layout(graph)
    n = len(tokens)
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
            }
            for u, v, data in graph.edges(data=True)
        ],
        columns=["x", "y", "x2", "y2", "w", "layer"],
    )
    edges["w"] = round_sig(edges["w"].to_numpy(dtype=np.float64))
    nodes = pd.DataFrame(
        [
            {"x": layout[key][0], "y": layout[key][1], "output": int(bool(data.get("output")))}
            for key, data in graph.nodes(data=True)
        ],
        columns=["x", "y", "output"],
    )
    x_scale = alt.Scale(domain=[-0.5, n - 0.5], nice=False, zero=False)
    y_scale = alt.Scale(domain=[-0.5, layer_count + 0.5], nice=False, zero=False)
    x_axis = alt.Axis(
        title=None,
        values=list(range(n)),
        labelExpr=f"{tok.name}[datum.value]",
        labelAngle=-45,
        labelOverlap="greedy",
        grid=False,
        ticks=False,
    )
    y_axis = alt.Axis(title="layer", values=list(range(layer_count + 1)), grid=False, format="d")
    lines = (
        alt.Chart(edges)
        .mark_rule()
        .transform_calculate(source=f"{tok.name}[datum.x]", target=f"{tok.name}[datum.x2]")
        .encode(
            x=alt.X("x:Q", scale=x_scale, axis=x_axis),
            y=alt.Y("y:Q", scale=y_scale, axis=y_axis),
            x2="x2:Q",
            y2="y2:Q",
            strokeWidth=alt.StrokeWidth("w:Q", scale=alt.Scale(range=[0.5, 6]), legend=None),
            color=alt.Color("w:Q", scale=alt.Scale(scheme=SEQUENTIAL_SCHEME), title="share"),
            tooltip=[
                alt.Tooltip("source:N", title="from"),
                alt.Tooltip("target:N", title="to"),
                alt.Tooltip("layer:O", title="layer"),
                alt.Tooltip("w:Q", title="share", format=".4f"),
            ],
        )
    )
    points = (
        alt.Chart(nodes)
        .mark_circle(size=60, opacity=1)
        .transform_calculate(token=f"{tok.name}[datum.x]")
        .encode(
            x=alt.X("x:Q", scale=x_scale),
            y=alt.Y("y:Q", scale=y_scale),
            size=alt.Size("output:N", scale=alt.Scale(range=[50, 160]), legend=None),
            tooltip=[alt.Tooltip("token:N", title="token"), alt.Tooltip("y:O", title="layer")],
        )
    )
    chart = alt.layer(lines, points).properties(
        width=max(240, column_width * n),
        height=max(160, layer_height * (layer_count + 1)),
        autosize=PAD,
    )
    return add_params(chart, [tok])
