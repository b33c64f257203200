"""One layer as the pages draw it: chosen heads, layer views and exports, token bars and
generated rows."""

from __future__ import annotations

import numpy as np
import pytest

from core import MethodRequest, PositionOutOfRangeError, mean_of_heads, run_method, select_heads
from core.attention import AttentionResult
from core.families import EncoderFamily
from core.layer_views import generated_rows, head_matrix, layer_export, layer_view, token_bars
from tests.core.attention_inputs import dirichlet_attention, tokens_of


def test_select_heads_and_mean():
    attention = np.arange(2 * 3 * 2 * 2, dtype=float).reshape(2, 3, 2, 2)
    assert select_heads(attention, -1, [0, 2]).shape == (2, 2, 2)
    np.testing.assert_allclose(mean_of_heads(attention, 0), attention[0].mean(0))
    with pytest.raises(PositionOutOfRangeError, match="layers 0 to 1"):
        select_heads(attention, 2, None)
    with pytest.raises(PositionOutOfRangeError, match="heads 0 to 2"):
        select_heads(attention, 0, [3])
    with pytest.raises(PositionOutOfRangeError):
        select_heads(attention, 0, [])


@pytest.fixture(scope="module")
def attentions():
    return dirichlet_attention(np.random.default_rng(0), 3, 4, 5, 0.5)


def raw_result(attentions):
    return AttentionResult(
        model_name="test",
        text="x",
        text_pair=None,
        tokens=tokens_of([("x", i, False, 0) for i in range(5)]),
        attention_stacks={"self": attentions},
        stack_specs=EncoderFamily().stacks,
    )


@pytest.fixture(scope="module")
def raw(attentions):
    return run_method("raw", MethodRequest(result=raw_result(attentions)))


def test_head_matrix(attentions):
    np.testing.assert_array_equal(head_matrix(attentions, 1, 2), attentions[1, 2])
    np.testing.assert_allclose(head_matrix(attentions, 1, "mean"), attentions[1].mean(0))
    np.testing.assert_allclose(head_matrix(attentions, 1, "all"), attentions[1].mean(0))


def test_layer_view_for_each_head_choice(raw, attentions):
    one = layer_view(raw, 2, 3)
    np.testing.assert_array_equal(one.matrix, attentions[2, 3])
    assert one.line_heads == [3] and one.what == "layer 2, head 3"
    every = layer_view(raw, 2, "all")
    np.testing.assert_allclose(every.matrix, attentions[2].mean(0))
    assert every.lines.shape == (4, 5, 5) and every.line_heads == [0, 1, 2, 3]
    mean = layer_view(raw, 0, "mean", "Cross")
    assert mean.what == "cross layer 0, mean of 4 heads" and mean.lines.shape == (1, 5, 5)


def test_layer_view_and_export_of_a_method_without_heads(raw, attentions):
    rolled = run_method("rollout", MethodRequest(result=raw_result(attentions)))
    view = layer_view(rolled, 1, 3)  # the head is ignored
    np.testing.assert_array_equal(view.matrix, rolled.per_layer[1])
    array, layers, heads = layer_export(rolled, 1)
    assert array.shape == (1, 1, 5, 5) and layers == [1] and heads == [0]


def test_layer_export_of_raw_has_every_head(raw, attentions):
    array, layers, heads = layer_export(raw, 2)
    np.testing.assert_array_equal(array[0], attentions[2])
    assert layers == [2] and heads == [0, 1, 2, 3]


def test_token_bars_blank_what_a_causal_model_cannot_see():
    matrix = np.arange(9, dtype=float).reshape(3, 3)
    empty = np.triu(np.ones((3, 3), bool), 1)
    out, into = token_bars(matrix, 1, empty)
    np.testing.assert_array_equal(out, [3, 4, np.nan])
    np.testing.assert_array_equal(into, [np.nan, 4, 7])
    out, into = token_bars(matrix, 1, square=False)
    assert into is None and list(out) == [3, 4, 5]


def test_generated_rows():
    weights = np.random.default_rng(3).random((2, 2, 5, 5))
    tokens = tokens_of([(t, i, False, 0) for i, t in enumerate("abcde")])
    matrix, rows, keys = generated_rows(weights, tokens, 3, 1, 0)
    np.testing.assert_array_equal(matrix, weights[1, 0, 3:, :3])
    assert rows == ["1·d", "2·e"] and keys == ["a", "b", "c"]
    mean, _, _ = generated_rows(weights, tokens, 3, 1, "all")
    np.testing.assert_allclose(mean, weights[1].mean(0)[3:, :3])
    # Word pieces are marked as in every other view, also where the continuation goes on a
    # prompt's word.
    pieces = tokens_of([(t, w, False, 0) for t, w in zip("abcde", [0, 0, 1, 1, 2], strict=True)])
    _, rows, keys = generated_rows(weights, pieces, 3, 1, 0)
    assert keys == ["a", "##b", "c"] and rows == ["1·##d", "2·e"]
