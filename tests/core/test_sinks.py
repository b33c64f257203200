"""`core.sink_profile` against the definitions computed from each family's eager attention."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import core
from core import InvalidSelectionError, PositionOutOfRangeError, run_attention, sink_profile
from core.attention import AttentionResult
from core.families import CausalLMFamily
from tests.core.attention_inputs import tokens_of
from tests.core.long_context_reference import SINK_TEXT, eager_pass, sink_reference
from tests.tiny_models import FAMILIES

ATOL = 1e-5


@pytest.fixture(scope="module")
def captured(loaded_tiny, tiny_model_path):
    """Factory: `(result, eager [layers, heads, n, n])` for a family, once per module."""
    cache = {}

    def get(family: str):
        if family not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", core.TruncationWarning)
                result = run_attention(loaded_tiny(family), SINK_TEXT, target_text="Yes.")
            ids = [token.token_id for token in result.tokens]
            attentions, _ = eager_pass(tiny_model_path(family), family, ids)
            cache[family] = (result, attentions)
        return cache[family]

    return get


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(("epsilon", "window"), [(0.3, 64), (0.02, 5)])
def test_sink_profile_equals_the_definitions_on_the_eager_attention(
    captured, family, epsilon, window
):
    result, eager = captured(family)
    assert isinstance(result.attention_stacks["self"], core.CapturedStack)
    assert eager.shape[-1] > 200  # longer than both windows: every measure is exercised
    profile = sink_profile(result, epsilon=epsilon, window=window)
    expected = pd.DataFrame(sink_reference(eager, epsilon, window))
    assert list(profile.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(profile[["layer", "head"]], expected[["layer", "head"]])
    for column in ("first_token_share", "local_share", "entropy_without_first"):
        np.testing.assert_allclose(profile[column], expected[column], atol=ATOL, err_msg=column)
    # The threshold is applied to the measured share (no share sits within ATOL of it).
    assert (np.abs(expected["first_token_share"] - epsilon) > ATOL).all()
    np.testing.assert_array_equal(profile["is_sink"], expected["is_sink"])
    assert profile.attrs == {"epsilon": epsilon, "window": window, "stack": "self"}


def causal_dense_result(attentions: np.ndarray) -> AttentionResult:
    n = attentions.shape[-1]
    return AttentionResult(
        model_name="hand-built",
        text="x",
        text_pair=None,
        tokens=tokens_of([(f"t{i}", i, False, 0) for i in range(n)]),
        attention_stacks={"self": attentions},
        stack_specs=CausalLMFamily().stacks,
    )


def hand_built_sinks() -> np.ndarray:
    """`[2, 3, 12, 12]` causal rows: head (0, 0) parks 0.9 on the first token, (1, 2) reads
    only the previous token, the rest spread evenly over what they see (a first-token share of
    H₁₂ / 12 ≈ 0.26: at a handful of tokens even an even head would pass ε = 0.3)."""
    n = 12
    attentions = np.zeros((2, 3, n, n))
    for t in range(n):
        attentions[:, :, t, : t + 1] = 1.0 / (t + 1)
        attentions[0, 0, t, : t + 1] = 0.1 / t if t else 1.0
        if t:
            attentions[0, 0, t, 0] = 0.9
        attentions[1, 2, t, :] = 0.0
        attentions[1, 2, t, max(0, t - 1)] = 1.0
    return attentions


def test_sink_profile_of_a_dense_result_finds_the_sink_head():
    attentions = hand_built_sinks()
    np.testing.assert_allclose(attentions.sum(-1), 1.0)
    profile = sink_profile(causal_dense_result(attentions), epsilon=0.3, window=2)
    expected = pd.DataFrame(sink_reference(attentions, 0.3, 2))
    pd.testing.assert_frame_equal(profile, expected, check_dtype=False, atol=1e-12)
    assert profile.loc[profile["is_sink"], ["layer", "head"]].values.tolist() == [[0, 0]]
    previous = profile.set_index(["layer", "head"]).loc[(1, 2)]
    assert previous["local_share"] == pytest.approx(1.0)
    # The first query sees only the first token: it has no entropy off it and is left out.
    assert previous["entropy_without_first"] == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"epsilon": 1.5}, "threshold"),
        ({"epsilon": -0.1}, "threshold"),
        ({"epsilon": "0.3"}, "threshold"),
        ({"window": 0}, "window"),
        ({"window": 2.5}, "window"),
        ({"window": True}, "window"),
    ],
)
def test_bad_thresholds_and_windows_are_refused(options, match):
    with pytest.raises(InvalidSelectionError, match=match):
        sink_profile(causal_dense_result(hand_built_sinks()), **options)


def test_a_stack_the_result_does_not_have_is_refused():
    with pytest.raises(PositionOutOfRangeError, match="cross"):
        sink_profile(causal_dense_result(hand_built_sinks()), stack="cross")
