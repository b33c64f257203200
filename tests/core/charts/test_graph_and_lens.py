"""Chart builders for the contribution graph and the logit lens."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import core
from core.chart_layout import LABEL_PX
from core.charts import (
    chart_notes,
    contribution_graph_chart,
    graph_layout,
    logit_lens_chart,
    spec_dict,
)
from core.charts.graph import GRAPH_RESERVED_PX, NODE_COLOUR, graph_token_px
from core.charts.lens import LAYER_TITLE_PX, LENS_RESERVED_PX
from core.methods import MethodResult
from core.tokens import Token

HOSTILE = 'a"b${x}<i>'


def test_graph_chart_keeps_token_text_as_data():
    per_layer = np.array([[[1.0, 0.0], [0.4, 0.6]], [[1.0, 0.0], [0.5, 0.5]]])
    tokens = [Token(HOSTILE, 0, 0, False), Token("b", 1, 1, False)]
    graph = core.layer_share_graph(MethodResult("alti", "self", tokens, tokens, per_layer), 1, 0.3)
    assert graph_layout(graph)[(2, 1)] == (1.0, 2.0)
    spec = spec_dict(contribution_graph_chart(graph, [t.text for t in tokens]))
    text = json.dumps(spec)
    params = [p for p in spec["params"] if p["name"].startswith("tok_")]
    assert params[0]["value"] == [HOSTILE, "b"]
    # The hostile text appears once: inside the parameter's value, nowhere in expressions.
    assert text.count(json.dumps(HOSTILE)[1:-1]) == 1
    edges = next(iter(spec["datasets"].values()))
    assert len(edges) == graph.number_of_edges()


def test_lens_chart_has_one_cell_per_row():
    table = pd.DataFrame(
        {
            "layer": [0, 0, 1, 1],
            "rank": [1, 2, 1, 2],
            "token": [HOSTILE, "x", "y", "z"],
            "token_id": [1, 2, 3, 4],
            "probability": [0.5, 0.25, 0.9, 0.05],
        }
    )
    spec = spec_dict(logit_lens_chart(table))
    assert len(next(iter(spec["datasets"].values()))) == 4
    assert json.dumps(spec).count(json.dumps(HOSTILE)[1:-1]) == 1


def chain_graph(n: int, layers: int = 2):
    """A contribution graph over `n` tokens where every token keeps to itself."""
    per_layer = np.tile(np.eye(n), (layers, 1, 1))
    tokens = [Token(f"t{i}", i, i, False) for i in range(n)]
    result = MethodResult("alti", "self", tokens, tokens, per_layer)
    return core.layer_share_graph(result, n - 1, 0.0), [t.text for t in tokens]


@pytest.mark.parametrize("n", [4, 13, 120])
def test_graph_fits_the_page_and_says_when_labels_are_thinned(n):
    graph, labels = chain_graph(n)
    chart = contribution_graph_chart(graph, labels, max_width=560)
    spec = spec_dict(chart)
    assert spec["width"] + GRAPH_RESERVED_PX <= 560
    assert spec["width"] == graph_token_px(n, 560) * n
    axis = spec["layer"][0]["encoding"]["x"]["axis"]
    step = axis["values"][1] - axis["values"][0]
    # Labels never closer than LABEL_PX (upright), or twice that when slanted.
    spacing = spec["width"] / n
    assert spacing * step >= (LABEL_PX if axis["labelAngle"] == -90 else 2 * LABEL_PX)
    assert axis["labelOverlap"] is False
    notes = chart_notes(chart)
    assert (step > 1) == bool(notes) == (n == 120)


def test_graph_has_one_axis_per_channel_and_a_colour_legend():
    graph, labels = chain_graph(13)
    edges, _, nodes = spec_dict(contribution_graph_chart(graph, labels, max_width=560))["layer"]
    # The nodes carry the edges' axes (a merged default axis thinned the labels, none at all
    # hid the axes) ...
    for channel in ("x", "y"):
        assert nodes["encoding"][channel]["axis"] == edges["encoding"][channel]["axis"]
    assert edges["encoding"]["x"]["axis"]["values"] == list(range(13))
    # ... and the hidden width legend does not share the colour legend's field.
    colour, width = edges["encoding"]["color"], edges["encoding"]["strokeWidth"]
    assert colour["title"][0] == "share" and colour["legend"]["values"][-1] == 1.0
    assert width["legend"] is None and width["field"] != colour["field"]


def test_graph_fills_its_column_and_hovering_an_edge_shows_its_contribution():
    graph, labels = chain_graph(13)
    spec = spec_dict(contribution_graph_chart(graph, labels, max_width=560, fill=True))
    assert spec["width"] == "container" and spec["autosize"]["type"] == "fit-x"
    assert spec["height"] >= 320
    edges, hits, _ = spec["layer"]
    # A wide invisible line over each edge takes the pointer and names its contribution ...
    assert hits["mark"]["strokeWidth"] >= 8 and hits["mark"]["opacity"] < 0.01
    titles = [t["title"] for t in hits["encoding"]["tooltip"]]
    assert titles == ["from", "to", "layer", "route", "share of the row"]
    params = {p["name"]: p for p in spec["params"]}
    assert params["edge"]["views"] == [hits["name"]]
    # ... the hovered edge stays opaque while the others fade, and shift + wheel zooms (the
    # plain wheel still scrolls the page).
    assert edges["encoding"]["opacity"]["condition"]["param"] == "edge"
    assert params["zoom"]["bind"] == "scales" and params["zoom"]["views"] == [edges["name"]]
    assert params["zoom"]["select"]["zoom"] == "wheel![event.shiftKey]"
    # The nodes are mid grey, seen on both themes' backgrounds.
    assert spec["layer"][2]["encoding"]["color"]["value"] == NODE_COLOUR
    # The colour legend starts at the threshold and says so.
    colour = edges["encoding"]["color"]
    assert colour["legend"]["values"][0] == colour["scale"]["domain"][0] == 0.0
    assert colour["title"][1] == "(from 0.00)"


def test_graph_keeps_its_token_width_where_the_page_has_room():
    graph, labels = chain_graph(4)
    assert spec_dict(contribution_graph_chart(graph, labels, max_width=1200))["width"] == 4 * 48
    assert graph_token_px(100, None) == 48


@pytest.mark.parametrize("layers", [1, 3, 13])
def test_lens_rows_are_as_tall_as_the_layer_title(layers):
    table = pd.DataFrame(
        {
            "layer": np.repeat(np.arange(layers), 2),
            "rank": np.tile([1, 2], layers),
            "token": ["w"] * (2 * layers),
            "probability": np.full(2 * layers, 0.5),
        }
    )
    spec = spec_dict(logit_lens_chart(table))
    assert spec["height"] >= LAYER_TITLE_PX
    assert spec["height"] == layers * max(22, -(-LAYER_TITLE_PX // layers))


@pytest.mark.parametrize("ranks", [3, 5, 10])
def test_lens_fits_the_page(ranks):
    table = pd.DataFrame(
        {
            "layer": np.repeat([0, 1], ranks),
            "rank": np.tile(np.arange(1, ranks + 1), 2),
            "token": [f"w{i}" for i in range(2 * ranks)],
            "token_id": np.arange(2 * ranks),
            "probability": np.linspace(0.9, 0.01, 2 * ranks),
        }
    )
    spec = spec_dict(logit_lens_chart(table, max_width=560))
    assert spec["width"] + LENS_RESERVED_PX <= 560
    assert spec["width"] == ranks * min(90, (560 - LENS_RESERVED_PX) // ranks)
    assert spec_dict(logit_lens_chart(table))["width"] == 90 * ranks


def test_information_flow_graph_draws_feed_forward_nodes_and_a_legend_from_the_threshold(
    tiny_model_path,
):
    model = core.load_model(str(tiny_model_path("gpt2")))
    contributions = core.route_contributions(model, "The cat sat on the mat")
    n = len(contributions.tokens)
    graph = core.information_flow_graph(contributions, n - 1, 0.05)
    layout = graph_layout(graph)
    ffn = [key for key in graph if key[0] == "ffn"]
    assert ffn and all(layout[key][0] % 1 == pytest.approx(0.3) for key in ffn)
    assert layout[("after_layer", model.num_layers, n - 1)] == (n - 1, model.num_layers)
    spec = spec_dict(contribution_graph_chart(graph, [t.text for t in contributions.tokens]))
    edges, _, nodes = spec["layer"]
    assert edges["encoding"]["color"]["scale"]["domain"] == [0.05, 1.0]
    shape = nodes["encoding"]["shape"]
    assert (
        dict(zip(shape["scale"]["domain"], shape["scale"]["range"], strict=True))[
            "feed-forward block"
        ]
        == "square"
    )
    assert len(spec["datasets"][edges["data"]["name"]]) == graph.number_of_edges()


def test_every_layer_of_the_graph_shares_the_labelled_axes():
    # Vega-Lite merges the layers' axes: one default axis among them (the hover hits had one)
    # brought back label overlap and dropped every other token label in the browser.
    graph, labels = chain_graph(13)
    spec = spec_dict(contribution_graph_chart(graph, labels, max_width=560, fill=True))
    for channel in ("x", "y"):
        axes = [layer["encoding"][channel].get("axis") for layer in spec["layer"]]
        assert all(axis == axes[0] for axis in axes), channel
    assert spec["layer"][0]["encoding"]["x"]["axis"]["values"] == list(range(13))
