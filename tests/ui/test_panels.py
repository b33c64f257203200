"""The Attention page's panels: shortcuts that must not change what is shown."""

from types import SimpleNamespace

import numpy as np
import pytest

from core.display_matrix import prepare_display
from core.tokens import Token
from ui import panels
from ui.explorer import model_max


def _tokens(n: int) -> list[Token]:
    texts = ["[CLS]", *[f"w{i}" for i in range(n - 2)], "[SEP]"]
    return [
        Token(text=t, index=i, word_index=None if t.startswith("[") else i, is_special="[" in t)
        for i, t in enumerate(texts)
    ]


def _page(tokens: list[Token], hide_special: bool = False, merge_words: bool = False):
    view = SimpleNamespace(hide_special=hide_special, merge_words=merge_words)
    result = SimpleNamespace(stack_tokens=lambda stack: (tokens, tokens))
    return SimpleNamespace(view=view, result=result)


@pytest.mark.parametrize("hide_special", [False, True])
def test_displayed_shows_what_prepare_display_shows(hide_special: bool) -> None:
    tokens = _tokens(9)
    weights = np.random.default_rng(0).dirichlet(np.ones(9), size=(3, 9)).astype(np.float32)
    shown = panels.displayed(_page(tokens, hide_special), weights, "self")
    expected = prepare_display(weights, tokens, hide_special=hide_special)
    np.testing.assert_array_equal(np.asarray(shown.matrix, np.float64), expected.matrix)
    assert shown.matrix.shape == expected.matrix.shape
    assert (shown.labels, shown.groups, shown.notes) == (
        expected.labels,
        expected.groups,
        expected.notes,
    )


def test_displayed_keeps_the_layer_without_options_and_prepares_nan_rows() -> None:
    tokens = _tokens(6)
    weights = np.random.default_rng(1).dirichlet(np.ones(6), size=(2, 6)).astype(np.float32)
    # No option, nothing NaN: the layer's own array, no float64 copy.
    assert panels.displayed(_page(tokens), weights, "self").matrix is weights
    # A row partly NaN becomes zeros where prepare_display says so: prepared, not kept.
    weights[0, 2, :3] = np.nan
    shown = panels.displayed(_page(tokens), weights, "self")
    np.testing.assert_array_equal(shown.matrix, prepare_display(weights, tokens).matrix)


@pytest.mark.parametrize("hide_special", [False, True])
def test_displayed_like_the_pages_display_prepares_nothing_more(hide_special: bool) -> None:
    tokens = _tokens(7)
    weights = np.random.default_rng(3).dirichlet(np.ones(7), size=(4, 7)).astype(np.float32)
    page = _page(tokens, hide_special)
    like = prepare_display(weights[0], tokens, hide_special=hide_special)
    shown = panels.displayed(page, weights, "self", like)
    expected = panels.displayed(page, weights, "self")
    np.testing.assert_array_equal(shown.matrix, expected.matrix)
    assert (shown.labels, shown.groups, shown.notes) == (
        expected.labels,
        expected.groups,
        expected.notes,
    )
    # With no option the layer's own array is kept, with the labels of the page's display.
    assert (shown.matrix is weights) == (not hide_special)


def test_scores_max_is_the_model_max_of_the_same_array() -> None:
    per_head = np.random.default_rng(2).random((2, 3, 4, 4)).astype(np.float32)
    scores = SimpleNamespace(per_head=per_head, per_layer=per_head.mean(1))
    assert panels.scores_max(scores) == model_max(per_head, scores.per_layer)
    other = SimpleNamespace(per_head=per_head * 2, per_layer=per_head.mean(1) * 2)
    assert panels.scores_max(other) == pytest.approx(2 * panels.scores_max(scores))
