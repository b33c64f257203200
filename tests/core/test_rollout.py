"""Attention rollout against a plain-loop reference, hand-worked cases and input checks."""

from __future__ import annotations

import numpy as np
import pytest

from core.rollout import (
    InvalidAttentionError,
    InvalidSelectionError,
    attention_rollout,
    residual_attention,
)
from tests.core.attention_inputs import dirichlet_attention, softmax_attention

ROLLOUT_TOL = 1e-9


def loop_rollout(attentions, heads=None, ignore_tokens=()):
    """Rollout written straight from the definition with Python loops, float64."""
    att = np.asarray(attentions, dtype=np.float64)
    layers, n_heads, n, _ = att.shape
    heads = list(range(n_heads)) if heads is None else list(heads)
    out = []
    previous = None
    for layer in range(layers):
        w = np.zeros((n, n))
        for h in heads:
            w += att[layer, h]
        w /= len(heads)
        if len(ignore_tokens):
            # Only the ignore option renormalises W; plain W rows keep their float32 sums.
            for i in range(n):
                for k in ignore_tokens:
                    w[i, k] = 0.0
                total = w[i].sum()
                if total > 0:
                    w[i] /= total
        a = w + np.eye(n)
        for i in range(n):
            a[i] /= a[i].sum()
        current = a if previous is None else a @ previous
        out.append(current)
        previous = current
    return np.stack(out)


# ----------------------------------------------------------------------------- references


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("alpha", [0.05, 0.5, 5.0])
def test_rollout_matches_loop_on_dirichlet(seed, alpha):
    rng = np.random.default_rng(seed)
    att = dirichlet_attention(rng, layers=1 + seed * 3, heads=3, n=4 + 5 * seed, alpha=alpha)
    np.testing.assert_allclose(attention_rollout(att), loop_rollout(att), rtol=0, atol=ROLLOUT_TOL)


def test_rollout_matches_loop_on_float32_softmax():
    rng = np.random.default_rng(11)
    att = softmax_attention(rng, layers=12, heads=12, n=24)
    out = attention_rollout(att)
    assert out.dtype == np.float64 and out.shape == (12, 24, 24)
    np.testing.assert_allclose(out, loop_rollout(att), rtol=0, atol=ROLLOUT_TOL)


def test_rollout_matches_loop_on_minilm(minilm_attentions):
    for n, att in minilm_attentions.items():
        out = attention_rollout(att)
        assert out.shape == (6, n, n)
        np.testing.assert_allclose(out, loop_rollout(att), rtol=0, atol=ROLLOUT_TOL)
        np.testing.assert_allclose(out.sum(-1), 1.0, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- by hand

# Two layers, three tokens, one head.
#   W_1: tokens 0 and 1 attend to token 0, token 2 to itself.
#   W_2: every token attends to token 1.
HAND = np.array(
    [
        [[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]],
        [[[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]],
    ]
)


def test_rollout_by_hand():
    # A_l = (W_l + I) / 2 row-wise (each W row sums to 1, so every row of W + I sums to 2):
    #   A_1 = [[1, 0, 0], [.5, .5, 0], [0, 0, 1]]
    #   A_2 = [[.5, .5, 0], [0, 1, 0], [0, .5, .5]]
    # R_1 = A_1.
    # R_2 = A_2 @ A_1:
    #   row 0 = .5*[1, 0, 0] + .5*[.5, .5, 0]            = [.75, .25, 0]
    #   row 1 = 1*[.5, .5, 0]                              = [.5, .5, 0]
    #   row 2 = .5*[.5, .5, 0] + .5*[0, 0, 1]              = [.25, .25, .5]
    expected = np.array(
        [
            [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]],
            [[0.75, 0.25, 0.0], [0.5, 0.5, 0.0], [0.25, 0.25, 0.5]],
        ]
    )
    np.testing.assert_allclose(attention_rollout(HAND), expected, rtol=0, atol=1e-15)


def test_residual_attention_with_ignored_token_by_hand():
    # W_1 row 1 is [1, 0, 0]: ignoring token 0 leaves nothing, the row becomes 0 and
    # A_1 row 1 = e_1. Row 0 is [1, 0, 0] too -> A_1 row 0 = e_0. Row 2 = [0, 0, 1] is
    # untouched -> (W + I)/2 = [0, 0, 1].
    # W_2 rows are [0, 1, 0] (no weight on token 0), so A_2 is unchanged:
    #   [[.5, .5, 0], [0, 1, 0], [0, .5, .5]].
    mixed = residual_attention(HAND, ignore_tokens=[0])
    np.testing.assert_allclose(mixed[0], np.eye(3), rtol=0, atol=1e-15)
    np.testing.assert_allclose(
        mixed[1], [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.5, 0.5]], rtol=0, atol=1e-15
    )


def test_ignored_token_partial_row_by_hand():
    # One layer, one head, W = [[.5, .25, .25], [.2, .6, .2], [1/3, 1/3, 1/3]].
    # Ignore token 2: rows lose column 2 and are rescaled,
    #   row 0: [.5, .25] / .75 = [2/3, 1/3, 0]
    #   row 1: [.2, .6] / .8   = [.25, .75, 0]
    #   row 2: [1/3, 1/3] / (2/3) = [.5, .5, 0]
    # then A = (W' + I) / 2 = [[5/6, 1/6, 0], [1/8, 7/8, 0], [1/4, 1/4, 1/2]].
    att = np.array([[[[0.5, 0.25, 0.25], [0.2, 0.6, 0.2], [1 / 3, 1 / 3, 1 / 3]]]])
    expected = np.array([[5 / 6, 1 / 6, 0.0], [1 / 8, 7 / 8, 0.0], [0.25, 0.25, 0.5]])
    np.testing.assert_allclose(
        residual_attention(att, ignore_tokens=[2])[0], expected, rtol=0, atol=1e-15
    )
    np.testing.assert_allclose(attention_rollout(att, ignore_tokens=[2])[0], expected, atol=1e-15)


# ----------------------------------------------------------------------------- options


def test_heads_option_averages_only_the_chosen_heads():
    rng = np.random.default_rng(3)
    att = dirichlet_attention(rng, layers=4, heads=5, n=9, alpha=0.3)
    chosen = [4, 1]
    out = attention_rollout(att, heads=chosen)
    np.testing.assert_allclose(out, loop_rollout(att, heads=chosen), rtol=0, atol=ROLLOUT_TOL)
    np.testing.assert_allclose(out, attention_rollout(att[:, [1, 4]]), rtol=0, atol=1e-15)
    assert not np.allclose(out, attention_rollout(att))


def test_ignore_tokens_option_matches_loop_and_cuts_the_token_off():
    rng = np.random.default_rng(4)
    att = softmax_attention(rng, layers=5, heads=4, n=10)
    ignored = [0, 9]
    out = attention_rollout(att, ignore_tokens=ignored)
    np.testing.assert_allclose(
        out, loop_rollout(att, ignore_tokens=ignored), rtol=0, atol=ROLLOUT_TOL
    )
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-12)
    # Nobody draws from an ignored token except the token itself through its residual.
    for k in ignored:
        others = np.delete(np.arange(10), k)
        assert np.all(out[:, others, k] == 0.0)
        np.testing.assert_allclose(out[:, k, k], 0.5 ** np.arange(1, 6), rtol=1e-12)


def test_empty_ignore_list_is_the_default():
    rng = np.random.default_rng(5)
    att = dirichlet_attention(rng, layers=3, heads=2, n=6, alpha=1.0)
    np.testing.assert_array_equal(attention_rollout(att, ignore_tokens=[]), attention_rollout(att))


# ----------------------------------------------------------------------------- validation


def _valid(layers=2, heads=2, n=4):
    return np.full((layers, heads, n, n), 1.0 / n)


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (np.full((2, 4, 4), 0.25), "4 dimensions"),
        (np.full((2, 2, 4, 5), 0.2), "square"),
        (np.zeros((0, 2, 4, 4)), "empty"),
        (np.zeros((2, 0, 4, 4)), "empty"),
        (np.zeros((2, 2, 0, 0)), "empty"),
        (np.array([[[["a", "b"], ["c", "d"]]]]), "real numbers"),
    ],
)
def test_malformed_input_is_rejected(bad, fragment):
    with pytest.raises(InvalidAttentionError, match=fragment):
        attention_rollout(bad)


def test_nan_negative_inf_and_row_sums_are_rejected():
    att = _valid()
    att[1, 0, 2, 3] = np.nan
    with pytest.raises(InvalidAttentionError, match="NaN"):
        attention_rollout(att)
    att = _valid()
    att[0, 1, 0, :] = [0.5, 0.75, -0.25, 0.0]
    with pytest.raises(InvalidAttentionError, match="non-negative"):
        attention_rollout(att)
    att = _valid()
    att[0, 0, 0, 0] = np.inf
    with pytest.raises(InvalidAttentionError, match="infinite"):
        attention_rollout(att)
    att = _valid()
    att[1, 1, 3] *= 1.01  # row sums to 1.01
    with pytest.raises(InvalidAttentionError, match="layer 1, head 1, query 3"):
        attention_rollout(att)


def test_row_sum_tolerance_accepts_float32_noise():
    att = _valid().astype(np.float32)
    att[0, 0, 0, 0] += 5e-4  # inside the 1e-3 tolerance
    out = attention_rollout(att)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"heads": [2]}, "out of range"),
        ({"heads": [-1]}, "out of range"),
        ({"heads": []}, "at least one head"),
        ({"heads": [0, 0]}, "duplicate"),
        ({"heads": [0.5]}, "integers"),
        ({"ignore_tokens": [4]}, "out of range"),
    ],
)
def test_bad_options_are_rejected(kwargs, fragment):
    with pytest.raises(InvalidSelectionError, match=fragment):
        attention_rollout(_valid(), **kwargs)


def test_error_classes_are_value_errors():
    assert issubclass(InvalidAttentionError, ValueError)
    assert issubclass(InvalidSelectionError, ValueError)
