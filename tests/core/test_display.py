"""Display maths: shared maxima, domains and titles per scale mode, label thinning, token-bar
plans, the A/B segment start and a selection that never lands on a hidden token."""

from __future__ import annotations

import numpy as np
import pytest

from core import run_attention
from core.display import (
    LABEL_PX,
    first_shown_token,
    plan_axis,
    plan_token_bars,
    scale_caption,
    scale_title,
    segment_b_start,
    shared_max,
    shown_selection,
    value_domain,
)
from core.tokens import Token
from core.views import prepare_display


def tokens_of(spec):
    """Tokens from (text, word, special, segment) tuples."""
    return [
        Token(text=t, index=i, word_index=w, is_special=s, segment=g)
        for i, (t, w, s, g) in enumerate(spec)
    ]


PAIR = tokens_of(
    [
        ("[CLS]", None, True, None),
        ("the", 0, False, 0),
        ("cat", 1, False, 0),
        ("[SEP]", None, True, None),
        ("it", 2, False, 1),
        ("sle", 3, False, 1),
        ("pt", 3, False, 1),
        ("[SEP]", None, True, None),
    ]
)


def test_shared_max_ignores_nan_and_takes_magnitudes_when_asked():
    a = np.array([[0.2, np.nan], [0.1, 0.05]])
    b = np.array([-0.7, 0.3])
    assert shared_max([a, b]) == 0.3
    assert shared_max([a, b], absolute=True) == 0.7
    assert shared_max([np.zeros(3), np.full(2, np.nan)]) == 1.0  # never an empty domain


def test_value_domain_per_mode():
    values = np.array([0.0, 0.12, 0.4])
    assert value_domain(values, "chart") == (0.0, 0.4)
    assert value_domain(values, "shared", shared=0.9) == (0.0, 0.9)
    assert value_domain(values, "fixed") == (0.0, 1.0)
    assert value_domain(np.array([-0.2, 0.1]), "chart", diverging=True) == (-0.2, 0.2)
    with pytest.raises(ValueError, match="shared_max"):
        value_domain(values, "shared", shared=0.0)
    with pytest.raises(ValueError, match="scale must be one of"):
        value_domain(values, "own")  # type: ignore[arg-type]


def test_titles_say_which_scale():
    assert scale_title("attention", "fixed", (0.0, 1.0)) == ["attention", "0–1 fixed"]
    assert scale_title("attention", "shared", (0.0, 0.0834)) == ["attention", "0–0.083 shared"]
    assert scale_title("change", "chart", (-0.25, 0.25), diverging=True) == [
        "change",
        "±0.25 this chart",
    ]
    assert scale_caption("attention", "fixed", (0.0, 1.0)) == "attention (0–1 fixed)"


@pytest.mark.parametrize(
    ("n", "length", "step"),
    [(10, 220, 1), (18, 220, 1), (19, 220, 2), (80, 260, 4), (512, 680, 10)],
)
def test_plan_axis_keeps_a_label_height_between_labels(n, length, step):
    plan = plan_axis(n, length)
    assert plan.step == step
    assert plan.values == list(range(0, n, step))
    assert length / n * plan.step >= LABEL_PX
    assert (plan.note == "") == (step == 1)
    if step > 1:
        assert f"{n} in {length} px" in plan.note


def test_token_bar_plan_keeps_the_selected_token_among_the_top():
    out = np.linspace(1, 0, 100)
    plan = plan_token_bars(out / out.sum(), None, 99, 360, top_n=10)
    assert plan.orientation == "horizontal"
    assert len(plan.positions) == 10 and 99 in plan.positions
    assert plan.positions[:9] == list(range(9))
    assert "Top 10 of 100" in plan.note
    with pytest.raises(ValueError):
        plan_token_bars(out, None, None, 360, top_n=0)


def test_segment_b_starts_at_the_first_word_of_the_second_sentence():
    assert segment_b_start(PAIR, [[t.index] for t in PAIR]) == 4
    # With hidden specials and merged words the units shift: [the] [cat] [it] [sle pt].
    assert segment_b_start(PAIR, [[1], [2], [4], [5, 6]]) == 2
    single = [t for t in PAIR[:3]]
    assert segment_b_start(single, [[t.index] for t in single]) is None


def test_segment_b_of_a_real_pair(embedded):
    result = run_attention(embedded, "The cat sat.", "It was tired.")
    view = prepare_display(result.attentions[0, 0], result.tokens, hide_special=True)
    start = segment_b_start(result.tokens, view.groups)
    assert view.labels[start] == "it"
    assert all(result.tokens[g[0]].segment == 0 for g in view.groups[:start])


def test_first_shown_token_skips_hidden_specials():
    assert first_shown_token(PAIR, hide_special=False) == 0
    assert first_shown_token(PAIR, hide_special=True) == 1
    only_specials = tokens_of([("[CLS]", None, True, None), ("[SEP]", None, True, None)])
    assert first_shown_token(only_specials, hide_special=True) == 0


def test_first_shown_token_is_the_start_of_its_word_when_merging():
    tokens = tokens_of([("[CLS]", None, True, None), ("play", 0, False, 0), ("ing", 0, False, 0)])
    assert first_shown_token(tokens, hide_special=True, merge_words=True) == 1


def test_shown_selection_moves_off_a_hidden_token():
    assert shown_selection(PAIR, 0, hide_special=True) == 1  # [CLS] -> "the"
    assert shown_selection(PAIR, 3, hide_special=True) == 4  # middle [SEP] -> "it"
    assert shown_selection(PAIR, 7, hide_special=True) == 6  # last [SEP] -> back to "pt"
    assert shown_selection(PAIR, 5, hide_special=True) == 5  # shown: kept
    assert shown_selection(PAIR, 0, hide_special=False) == 0
    assert shown_selection(PAIR, 99, hide_special=True) == 1  # out of range: first shown
