"""Contribution graphs traced back from one output position."""

from __future__ import annotations

import numpy as np
import pytest

import core
from core.methods import MethodResult
from core.tokens import Token


def fake_result(per_layer, accumulated=False):
    n = per_layer.shape[-1]
    tokens = [Token(text=f"t{i}", index=i, word_index=i, is_special=False) for i in range(n)]
    return MethodResult("alti", "self", tokens, tokens, per_layer, accumulated=accumulated)


def test_only_routes_into_the_position_above_the_threshold():
    per_layer = np.array(
        [
            [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.9, 0.1]],  # layer 1
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.2, 0.8, 0.0]],  # layer 2
        ]
    )
    graph = core.contribution_graph(fake_result(per_layer), position=2, threshold=0.3)
    assert graph.nodes[(2, 2)]["output"] is True
    assert set(graph.edges) == {((1, 1), (2, 2)), ((0, 0), (1, 1)), ((0, 1), (1, 1))}
    assert graph.edges[(1, 1), (2, 2)]["weight"] == pytest.approx(0.8)
    assert graph.edges[(1, 1), (2, 2)]["layer"] == 2
    assert graph.nodes[(0, 1)]["text"] == "t1"
    # A lower threshold adds the 0.2 edge and the routes behind it.
    assert ((1, 0), (2, 2)) in core.contribution_graph(fake_result(per_layer), 2, 0.15).edges


def test_rows_are_rescaled_to_shares():
    per_layer = np.array([[[2.0, 2.0], [1.0, 3.0]]])
    graph = core.contribution_graph(fake_result(per_layer), position=1, threshold=0.5)
    assert list(graph.edges(data="weight")) == [((0, 1), (1, 1), 0.75)]


def test_refusals():
    per_layer = np.full((1, 2, 2), 0.5)
    with pytest.raises(core.InvalidSelectionError, match="accumulated"):
        core.contribution_graph(fake_result(per_layer, accumulated=True), 0)
    with pytest.raises(core.InvalidSelectionError):
        core.contribution_graph(fake_result(per_layer), 0, threshold=2)
    with pytest.raises(core.PositionOutOfRangeError):
        core.contribution_graph(fake_result(per_layer), 5)
    per_layer[0, 0, 0] = np.nan
    with pytest.raises(core.InvalidSelectionError, match="every layer"):
        core.contribution_graph(fake_result(per_layer), 0)
