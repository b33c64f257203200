"""The display options on a matrix: merged words, hidden specials, cross attention, causal
blanks."""

from __future__ import annotations

import numpy as np
import pytest

from core import PositionOutOfRangeError, drop_positions, merge_groups, without_first_token
from core.display_matrix import (
    blank_causal,
    causal_display_mask,
    pad_square,
    prepare_cross_display,
    prepare_display,
)
from core.tokens import Token


def test_merge_groups_sums_keys_and_averages_queries():
    attention = np.array(
        [
            [0.5, 0.25, 0.25],
            [0.1, 0.6, 0.3],
            [0.2, 0.2, 0.6],
        ]
    )
    merged = merge_groups(attention, [[0], [1, 2]])
    # Row "word 1" = mean of rows 1 and 2 = [0.15, 0.4, 0.45]; keys 1+2 summed -> [0.15, 0.85].
    np.testing.assert_allclose(merged, [[0.5, 0.5], [0.15, 0.85]])
    np.testing.assert_allclose(merged.sum(-1), 1.0)


def test_merge_groups_keeps_leading_axes():
    rng = np.random.default_rng(0)
    attention = rng.dirichlet(np.ones(5), size=(2, 3, 5)).astype(np.float32)
    merged = merge_groups(attention, [[0], [1, 2, 3], [4]])
    assert merged.shape == (2, 3, 3, 3) and merged.dtype == np.float32
    np.testing.assert_allclose(merged.sum(-1), 1.0, atol=1e-6)


def test_drop_positions_renormalises_rows():
    attention = np.array([[0.5, 0.25, 0.25], [0.2, 0.4, 0.4], [1.0, 0.0, 0.0]])
    reduced, keep = drop_positions(attention, [0])
    assert keep == [1, 2]
    # Row 1 kept [0.4, 0.4] -> [0.5, 0.5]; row 2 sent everything to the dropped token -> zeros.
    np.testing.assert_allclose(reduced, [[0.5, 0.5], [0.0, 0.0]])
    raw, _ = drop_positions(attention, [0], renormalize=False)
    np.testing.assert_allclose(raw, [[0.4, 0.4], [0.0, 0.0]])
    with pytest.raises(PositionOutOfRangeError):
        drop_positions(attention, [3])


def _tokens():
    # [CLS] play ##ing ball [SEP]
    spec = [
        ("[CLS]", None, True),
        ("play", 0, False),
        ("ing", 0, False),
        ("ball", 1, False),
        ("[SEP]", None, True),
    ]
    return [Token(text=t, index=i, word_index=w, is_special=s) for i, (t, w, s) in enumerate(spec)]


def _matrix():
    rng = np.random.default_rng(3)
    return rng.dirichlet(np.ones(5), size=5)


def test_defaults_change_nothing():
    view = prepare_display(_matrix(), _tokens())
    np.testing.assert_allclose(view.matrix, _matrix())
    assert view.labels == ["[CLS]", "play", "ing", "ball", "[SEP]"] and view.notes == []


def test_merge_and_hide():
    view = prepare_display(_matrix(), _tokens(), hide_special=True, merge_words=True)
    assert view.labels == ["playing", "ball"]
    assert view.groups == [[1, 2], [3]]
    np.testing.assert_allclose(view.matrix.sum(-1), 1.0)
    m = _matrix()
    row = (m[1] + m[2]) / 2  # mean over the pieces of "playing"
    expected = np.array([row[1] + row[2], row[3]])
    np.testing.assert_allclose(view.matrix[0], expected / expected.sum())
    assert len(view.notes) == 2
    assert view.unit_of(2) == 0 and view.unit_of(0) is None


def test_nan_rows_survive():
    m = _matrix()
    m[1] = np.nan
    view = prepare_display(m, _tokens(), hide_special=True)
    assert np.isnan(view.matrix[0]).all()
    assert not np.isnan(view.matrix[1:]).any()


def _cross_tokens():
    # target: <s> dog ##s </s>   source: [CLS] play ##ing ball [SEP]
    spec = [("<s>", None, True), ("dog", 0, False), ("s", 0, False), ("</s>", None, True)]
    target = [
        Token(text=t, index=i, word_index=w, is_special=s) for i, (t, w, s) in enumerate(spec)
    ]
    return target, _tokens()


def test_cross_display_keeps_rows_and_columns_apart():
    target, source = _cross_tokens()
    m = np.random.default_rng(5).dirichlet(np.ones(5), size=4)  # [4 target, 5 source]
    plain = prepare_cross_display(m, target, source)
    np.testing.assert_allclose(plain.matrix, m)
    assert plain.labels == ["<s>", "dog", "s", "</s>"]
    assert plain.column_labels == ["[CLS]", "play", "ing", "ball", "[SEP]"]

    view = prepare_cross_display(m, target, source, hide_special=True, merge_words=True)
    assert view.matrix.shape == (1, 2)
    assert view.labels == ["dogs"] and view.column_labels == ["playing", "ball"]
    assert view.groups == [[1, 2]] and view.key_groups == [[1, 2], [3]]
    row = (m[1] + m[2]) / 2  # mean over the target pieces, sum over the source pieces
    expected = np.array([row[1] + row[2], row[3]])
    np.testing.assert_allclose(view.matrix[0], expected / expected.sum())
    assert len(view.notes) == 2
    # Self-attention views have no separate columns.
    assert (
        prepare_display(_matrix(), _tokens()).column_labels
        == prepare_display(_matrix(), _tokens()).labels
    )


def test_causal_display_mask_follows_merged_and_hidden_units():
    np.testing.assert_array_equal(
        causal_display_mask([[0], [1], [2]]), np.triu(np.ones((3, 3), dtype=bool), 1)
    )
    # Units [1, 2] and [3]: the merged word sees its own second piece, so only (0, 1) is empty.
    np.testing.assert_array_equal(
        causal_display_mask([[1, 2], [3]]), np.array([[False, True], [False, False]])
    )
    # A window: query units 5..6 against key units 4..7.
    mask = causal_display_mask([[5], [6]], [[4], [5], [6], [7]])
    np.testing.assert_array_equal(mask, [[False, False, True, True], [False, False, False, True]])


def test_blank_causal_and_pad_square():
    a = np.random.default_rng(2).random((2, 3, 4, 4)).astype(np.float32)
    blank = blank_causal(a)
    assert blank.dtype == np.float64 and blank.shape == a.shape
    upper = np.triu(np.ones((4, 4), dtype=bool), 1)
    assert np.isnan(blank[..., upper]).all()
    np.testing.assert_allclose(blank[..., ~upper], a[..., ~upper])

    padded = pad_square(np.ones((2, 3, 2, 5)))
    assert padded.shape == (2, 3, 5, 5)
    assert (padded[..., :2, :] == 1).all() and np.isnan(padded[..., 2:, :]).all()
    assert pad_square(np.ones((3, 3))).shape == (3, 3)


def test_without_first_token_renormalises_the_rest_and_keeps_positions():
    weights = np.array(
        [
            [1.0, np.nan, np.nan],  # a causal model's first query: nothing but the first key
            [0.5, 0.25, np.nan],
            [0.8, 0.1, 0.1],
            [0.0, 0.0, 0.0],  # a row with no weight anywhere
        ]
    )
    shown = without_first_token(weights)
    assert shown.shape == weights.shape
    assert np.isnan(shown[:, 0]).all()  # the first key is left out (drawn empty)
    assert np.isnan(shown[0]).all() and np.isnan(shown[3]).all()  # nothing left: NaN rows
    np.testing.assert_allclose(shown[1, 1], 1.0)
    assert np.isnan(shown[1, 2])  # never computed: stays NaN
    np.testing.assert_allclose(shown[2, 1:], [0.5, 0.5])
    np.testing.assert_allclose(np.nansum(shown[1:3], axis=-1), 1.0)
    assert not np.isnan(weights[1, 0])  # the input is not changed


def test_without_first_token_keeps_leading_axes_and_is_idempotent():
    rng = np.random.default_rng(3)
    stack = rng.dirichlet(np.ones(6), size=(2, 3, 6))  # [layers, heads, q, k]
    shown = without_first_token(stack)
    assert shown.shape == stack.shape
    expected = stack[..., 1:] / stack[..., 1:].sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(shown[..., 1:], expected)
    np.testing.assert_allclose(without_first_token(shown), shown, rtol=1e-12)  # idempotent
    with pytest.raises(ValueError, match="q, k"):
        without_first_token(np.ones(3))
