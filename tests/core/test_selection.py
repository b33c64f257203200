"""The A/B segment start and a selection that never lands on a hidden token."""

from __future__ import annotations

from core import run_attention
from core.display_matrix import prepare_display
from core.selection import first_shown_token, segment_b_start, shown_selection
from tests.core.attention_inputs import tokens_of

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
