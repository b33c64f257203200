"""Chart builders for the contribution graph and the logit lens."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

import core
from core.charts import contribution_graph_chart, graph_layout, logit_lens_chart, spec_dict
from core.methods import MethodResult
from core.tokens import Token

HOSTILE = 'a"b${x}<i>'


def test_graph_chart_keeps_token_text_as_data():
    per_layer = np.array([[[1.0, 0.0], [0.4, 0.6]], [[1.0, 0.0], [0.5, 0.5]]])
    tokens = [Token(HOSTILE, 0, 0, False), Token("b", 1, 1, False)]
    graph = core.contribution_graph(MethodResult("alti", "self", tokens, tokens, per_layer), 1, 0.3)
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
