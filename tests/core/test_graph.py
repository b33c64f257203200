"""Contribution graphs: Ferrando & Voita's routes (against a reference written from their
code) and the per-layer-share graph."""

from __future__ import annotations

import numpy as np
import pytest

import core
from core.graph import AFTER_ATTENTION, AFTER_LAYER, FFN, INPUT
from core.methods import MethodResult
from core.tokens import Token
from tests.core import references_graph
from tests.core.methods.conftest import SELF_STACK_FAMILIES
from tests.core.methods.references import perturb

TEXT = "The researchers visualized attention patterns quickly."
OURS = {"X": INPUT, "A": AFTER_ATTENTION, "M": FFN, "I": AFTER_LAYER}


@pytest.fixture(scope="module")
def sharpened(tiny_model_path):
    """Factory: a tiny checkpoint with random biases, norms and sharper attention (cached)."""
    cache: dict[str, core.LoadedModel] = {}

    def get(family: str) -> core.LoadedModel:
        if family not in cache:
            cache[family] = core.load_model(str(tiny_model_path(family)))
            perturb(cache[family].model)
        return cache[family]

    return get


def ours(name: str) -> tuple[str, int, int]:
    """Their node name (X0_3, A2_3: 0-based layers) as our key (1-based layers)."""
    kind, rest = name[0], name[1:]
    layer, token = (int(part) for part in rest.split("_"))
    return (OURS[kind], 0 if kind == "X" else layer + 1, token)


REFERENCE_FAMILIES = ("gpt2", "bert", "llama", "qwen2", "phi3")
"""Every kind of layer the reference reads: GPT-2's fused projections, BERT's post-LN,
grouped-query rotary decoders (Phi-3's fused qkv)."""


@pytest.mark.parametrize("family", REFERENCE_FAMILIES)
@pytest.mark.parametrize("renormalize", [True, False])
@pytest.mark.parametrize("threshold", [0.01, 0.04, 0.1])
def test_routes_equal_the_authors_construction(sharpened, family, renormalize, threshold):
    model = sharpened(family)
    contributions = core.route_contributions(model, TEXT)
    n = len(contributions.tokens)
    for position in (n - 1, n // 2):
        graph = core.information_flow_graph(
            contributions, position, threshold, renormalize=renormalize
        )
        reference = references_graph.paths_to(model, TEXT, position, threshold, renormalize)
        expected = {(ours(u), ours(v)): w for u, v, w in reference.edges(data="weight")}
        assert set(graph.edges) == set(expected)
        for edge, weight in expected.items():
            assert graph.edges[edge]["weight"] == pytest.approx(weight, abs=1e-5)
        assert graph.nodes[(AFTER_LAYER, model.num_layers, position)]["output"] is True


@pytest.mark.parametrize("family", REFERENCE_FAMILIES)
def test_every_blocks_contributions_equal_the_authors(sharpened, family):
    model = sharpened(family)
    contributions = core.route_contributions(model, TEXT)
    full, _ = references_graph.build_full_graph(model, TEXT, None)
    n = len(contributions.tokens)
    for layer in range(model.num_layers):
        for token in range(n):
            self_edge = full[references_graph.before(layer, token)][f"A{layer}_{token}"]["weight"]
            ours_self = (
                contributions.attention[layer, token, token].sum()
                + contributions.attention_residual[layer, token]
            )
            assert ours_self == pytest.approx(self_edge, abs=1e-5)
            ffn = full[f"A{layer}_{token}"][f"M{layer}_{token}"]["weight"]
            assert contributions.ffn[layer, token] == pytest.approx(ffn, abs=1e-5)
            for source in range(n):
                if source != token:
                    source_node = references_graph.before(layer, source)
                    weight = full[source_node][f"A{layer}_{token}"]["weight"]
                    assert contributions.attention[layer, token, source].sum() == pytest.approx(
                        weight, abs=1e-5
                    )
    totals = contributions.attention.sum(axis=(2, 3)) + contributions.attention_residual
    np.testing.assert_allclose(totals, 1.0, atol=1e-6)
    np.testing.assert_allclose(contributions.ffn + contributions.ffn_residual, 1.0, atol=1e-6)


OTHER_FAMILIES = tuple(f for f in SELF_STACK_FAMILIES if f not in REFERENCE_FAMILIES)


@pytest.mark.parametrize("family", OTHER_FAMILIES)
def test_every_family_the_methods_read_has_routes(sharpened, family):
    model = sharpened(family)
    contributions = core.route_contributions(model, TEXT)
    totals = contributions.attention.sum(axis=(2, 3)) + contributions.attention_residual
    np.testing.assert_allclose(totals, 1.0, atol=1e-6)
    np.testing.assert_allclose(contributions.ffn + contributions.ffn_residual, 1.0, atol=1e-6)
    assert (contributions.ffn > 1e-3).any() and (contributions.attention > 0.04).any()
    graph = core.information_flow_graph(contributions, len(contributions.tokens) - 1, 0.04)
    assert any(key[0] == INPUT for key in graph)


def test_each_part_is_floored_and_a_higher_threshold_draws_less(sharpened):
    contributions = core.route_contributions(sharpened("gpt2"), TEXT)
    # A causal model's later tokens are zero vectors: the floor alone (over the block's sum).
    later = contributions.attention[0, 0, 1:]
    assert (later > 0).all() and later.max() < 1e-3
    position = len(contributions.tokens) - 1
    low = core.information_flow_graph(contributions, position, 0.01)
    high = core.information_flow_graph(contributions, position, 0.1)
    assert high.number_of_edges() < low.number_of_edges()
    kinds = {data["kind"] for *_, data in low.edges(data=True)}
    assert kinds == {"attention", "residual", "ffn"}
    assert all(data["weight"] > 0.01 for *_, data in low.edges(data=True))


def test_routes_refuse_a_bad_threshold_or_position(sharpened):
    contributions = core.route_contributions(sharpened("bert"), TEXT)
    with pytest.raises(core.InvalidSelectionError):
        core.information_flow_graph(contributions, 0, threshold=1.5)
    with pytest.raises(core.PositionOutOfRangeError):
        core.information_flow_graph(contributions, 99)


def fake_result(per_layer, accumulated=False):
    n = per_layer.shape[-1]
    tokens = [Token(text=f"t{i}", index=i, word_index=i, is_special=False) for i in range(n)]
    return MethodResult("alti", "self", tokens, tokens, per_layer, accumulated=accumulated)


def test_layer_shares_follow_routes_at_or_above_the_threshold():
    per_layer = np.array(
        [
            [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.9, 0.1]],  # layer 1
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.2, 0.8, 0.0]],  # layer 2
        ]
    )
    graph = core.layer_share_graph(fake_result(per_layer), position=2, threshold=0.3)
    assert graph.nodes[(2, 2)]["output"] is True
    assert set(graph.edges) == {((1, 1), (2, 2)), ((0, 0), (1, 1)), ((0, 1), (1, 1))}
    assert graph.edges[(1, 1), (2, 2)]["weight"] == pytest.approx(0.8)
    assert graph.edges[(1, 1), (2, 2)]["layer"] == 2
    assert graph.nodes[(0, 1)]["text"] == "t1"
    # A lower threshold adds the 0.2 edge and the routes behind it; 0.2 itself is kept (≥).
    assert ((1, 0), (2, 2)) in core.layer_share_graph(fake_result(per_layer), 2, 0.15).edges
    assert ((1, 0), (2, 2)) in core.layer_share_graph(fake_result(per_layer), 2, 0.2).edges


def test_layer_shares_are_rows_rescaled():
    per_layer = np.array([[[2.0, 2.0], [1.0, 3.0]]])
    graph = core.layer_share_graph(fake_result(per_layer), position=1, threshold=0.5)
    assert list(graph.edges(data="weight")) == [((0, 1), (1, 1), 0.75)]


def test_layer_share_refusals():
    per_layer = np.full((1, 2, 2), 0.5)
    with pytest.raises(core.InvalidSelectionError, match="accumulated"):
        core.layer_share_graph(fake_result(per_layer, accumulated=True), 0)
    with pytest.raises(core.InvalidSelectionError):
        core.layer_share_graph(fake_result(per_layer), 0, threshold=2)
    with pytest.raises(core.PositionOutOfRangeError):
        core.layer_share_graph(fake_result(per_layer), 5)
    per_layer[0, 0, 0] = np.nan
    with pytest.raises(core.InvalidSelectionError, match="every layer"):
        core.layer_share_graph(fake_result(per_layer), 0)


@pytest.mark.parametrize("family", ["gpt2", "bert", "gemma2"])
@pytest.mark.parametrize("dtype", ["bfloat16", "float64"])
def test_routes_read_models_in_their_stored_dtype(tmp_path, family, dtype):
    from tests.tiny_models import build_tiny_model

    model = core.load_model(str(build_tiny_model(family, tmp_path, dtype=dtype)))
    contributions = core.route_contributions(model, TEXT)
    totals = contributions.attention.sum(axis=(2, 3)) + contributions.attention_residual
    np.testing.assert_allclose(totals, 1.0, atol=1e-5)
    assert core.information_flow_graph(contributions, 0, 0.04).number_of_edges() > 0
