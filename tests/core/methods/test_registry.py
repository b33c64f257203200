"""The method registry: entries, availability per stack, and the raw/rollout/flow methods."""

from __future__ import annotations

import numpy as np
import pytest

import core
from core.families import CROSS, DECODER_SELF, SELF
from core.methods import MethodRequest, get_method, method_names, register, run_method
from core.methods.base import Method

TEXT = "The cat sat on the mat because it was tired."


@pytest.fixture(scope="module")
def minilm():
    return core.load_model(core.EMBEDDED_MODEL)


def test_registry_lists_the_attention_methods_first():
    assert method_names()[:3] == ("raw", "rollout", "flow")
    for name in method_names():
        method = get_method(name)
        assert method.name == name and method.label and method.help


def test_unknown_method_names_the_known_ones():
    with pytest.raises(core.MethodUnsupportedError, match="raw"):
        get_method("attention_magic")


def test_a_name_registers_once():
    with pytest.raises(ValueError, match="already"):
        register(get_method("raw"))


def test_list_methods_on_the_embedded_model(minilm):
    assert {"raw", "rollout", "flow"} <= set(core.list_methods(minilm))


def test_raw_is_the_model_attention_exactly(minilm):
    scores = core.compute_method(minilm, TEXT, "raw")
    result = core.run_attention(minilm, TEXT)
    np.testing.assert_array_equal(scores.per_head, result.attentions)
    np.testing.assert_allclose(scores.per_layer, result.attentions.mean(axis=1), atol=1e-7)
    np.testing.assert_allclose(scores.rollout, core.attention_rollout(result.attentions))
    assert [t.text for t in scores.tokens] == result.labels


def test_rollout_and_flow_equal_the_pure_functions(minilm):
    result = core.run_attention(minilm, TEXT)
    rollout = core.compute_method(minilm, TEXT, "rollout")
    np.testing.assert_array_equal(rollout.per_layer, core.attention_rollout(result.attentions))
    assert rollout.accumulated and rollout.per_head is None
    flow = core.compute_method(minilm, TEXT, "flow", layers=(2,), rows=(1, 3))
    np.testing.assert_allclose(
        flow.per_layer[2], core.attention_flow(result.attentions, layer=2, rows=[1, 3])
    )
    assert flow.layers_computed == (2,)
    assert np.isnan(flow.per_layer[0]).all()


def test_flow_progress_covers_every_requested_layer(minilm):
    seen: list[tuple[int, int]] = []
    core.compute_method(
        minilm, "A cat.", "flow", layers=(0, 1), progress=lambda d, t: seen.append((d, t))
    )
    assert seen[-1][0] == seen[-1][1]
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_flow_cancel_is_an_atlas_error(minilm):
    with pytest.raises(core.AtlasError):
        core.compute_method(minilm, TEXT, "flow", layers=(5,), progress=lambda d, t: False)


def test_cross_attention_offers_raw_and_gradient_relevance_only(tiny_model_path):
    bart = core.load_model(str(tiny_model_path("bart")))
    # Chaining maps needs square stacks; gradient relevance has its own cross rule.
    assert core.list_methods(bart, CROSS) == ["raw", "grad_attention"]
    assert {"rollout", "flow"} <= set(core.list_methods(bart, DECODER_SELF))
    result = core.run_attention(bart, TEXT, target_text="Le chat.")
    with pytest.raises(core.MethodUnsupportedError, match="target tokens to source tokens"):
        run_method("rollout", MethodRequest(result=result, model=bart, stack=CROSS))
    raw = run_method("raw", MethodRequest(result=result, model=bart, stack=CROSS))
    assert raw.per_layer.shape[1:] == (len(result.decoder_tokens), len(result.tokens))


def test_methods_that_need_the_model_say_so_without_it():
    method = Method(
        name="needs_model",
        label="needs model",
        help="",
        compute=lambda request: None,
        needs=core.methods.Needs.FORWARD,
    )
    spec = core.families.EncoderFamily.stacks[0]
    assert "needs the model" in method.reason_unavailable(None, spec)
    assert get_method("raw").reason_unavailable(None, spec) is None
    assert spec.name == SELF


def test_a_masked_lm_offers_every_method(tiny_model_path):
    bert = core.load_model(str(tiny_model_path("bert")))
    assert core.list_methods(bert) == [
        "raw",
        "rollout",
        "flow",
        "attention_norm",
        "alti",
        "value_zeroing",
        "grad_attention",
    ]


def test_model_reading_methods_need_the_model(minilm):
    result = core.run_attention(minilm, TEXT)
    with pytest.raises(core.MethodUnsupportedError, match="needs the model"):
        run_method("alti", MethodRequest(result=result))


# ------------------------------------------------------------------------ methods at length

LONG_TEXT = "The researchers visualized attention patterns in the garden. " * 12


@pytest.fixture(scope="module", params=["llama", "gemma2"])
def long_pair(request, tiny_model_path):
    """`(model, result refusing the whole array (0-byte budget), result holding it)`."""
    model = core.load_model(str(tiny_model_path(request.param)))
    return (
        model,
        core.run_attention(model, LONG_TEXT, budget=0),
        core.run_attention(model, LONG_TEXT),
    )


@pytest.mark.parametrize(
    ("name", "layers"),
    [("attention_norm", None), ("alti", None), ("value_zeroing", (1,)), ("grad_attention", None)],
)
def test_methods_that_read_the_model_need_no_whole_attention_array(long_pair, name, layers):
    model, pieces, whole = long_pair
    got = run_method(name, MethodRequest(pieces, model, layers=layers))
    expected = run_method(name, MethodRequest(whole, model, layers=layers))
    np.testing.assert_allclose(got.per_layer, expected.per_layer, rtol=1e-6, atol=1e-9)


def test_a_method_beyond_its_memory_budget_says_the_length_it_accepts(long_pair):
    from core.methods.registry import max_tokens

    model, result, _ = long_pair
    n, entry = len(result.tokens), get_method("alti")
    budget = entry.cost.nbytes(n - 1, result.num_layers, result.num_heads)
    assert max_tokens(entry, result, budget=budget) == n - 1
    with pytest.raises(core.MethodTooLongError) as caught:
        run_method("alti", MethodRequest(result, model, memory_budget=budget))
    assert caught.value.max_tokens == n - 1
    message = str(caught.value)
    assert f"ALTI of {n:,} tokens" in message and f"at most {n - 1:,} tokens" in message
    assert "Choose a shorter part of the text" in message
    enough = entry.cost.nbytes(n, result.num_layers, result.num_heads)
    computed = run_method("alti", MethodRequest(result, model, memory_budget=enough))
    np.testing.assert_allclose(computed.per_layer.sum(axis=-1), 1.0, atol=1e-6)


@pytest.mark.parametrize("name", ["raw", "rollout", "flow"])
def test_methods_of_the_whole_array_are_refused_beyond_the_results_budget(long_pair, name):
    model, result, _ = long_pair
    request = MethodRequest(result, model, layers=(0,), rows=(3,))
    with pytest.raises(core.MethodTooLongError, match="the whole attention array") as caught:
        run_method(name, request)
    assert caught.value.max_tokens == 0  # a 0-byte budget holds no array


def test_flow_beyond_the_length_its_time_allows_says_so(long_pair):
    import dataclasses

    from core.methods.registry import check_length

    model, _, whole = long_pair
    n, flow = len(whole.tokens), get_method("flow")
    assert flow.cost.longest == core.flow.FLOW_MAX_TOKENS
    shorter = dataclasses.replace(flow, cost=dataclasses.replace(flow.cost, longest=n - 1))
    with pytest.raises(core.MethodTooLongError, match="n³") as caught:
        check_length(shorter, MethodRequest(whole, model, layers=(0,), rows=(3,)))
    assert caught.value.max_tokens == n - 1 and f"at most {n - 1:,} tokens" in str(caught.value)
    check_length(flow, MethodRequest(whole, model, layers=(0,), rows=(3,)))  # within: computed
