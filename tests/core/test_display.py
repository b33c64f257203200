"""Display maths: shared maxima, domains and titles per scale mode, label thinning, token-bar
plans, the A/B segment start and a selection that never lands on a hidden token."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core import MethodRequest, Prediction, Token, run_attention, run_method
from core.attention import AttentionResult
from core.display import (
    BAR_AXIS_PX,
    LABEL_PX,
    LEGEND_PX,
    MIN_PLOT_PX,
    bar_plot_width,
    corpus_example_rows,
    corpus_head_rows,
    first_shown_token,
    generated_rows,
    head_matrix,
    layer_export,
    layer_view,
    mask_profile,
    maskable_positions,
    plan_axis,
    plan_token_bars,
    prediction_rows,
    replaceable_words,
    scale_caption,
    scale_title,
    segment_b_start,
    shared_max,
    shown_selection,
    token_bars,
    value_domain,
)
from core.families import EncoderFamily
from core.views import prepare_display
from tests.core.attention_inputs import dirichlet_attention


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
    plan = plan_token_bars(out / out.sum(), None, 99, 360, legend=False, top_n=10)
    assert plan.orientation == "horizontal"
    assert len(plan.positions) == 10 and 99 in plan.positions
    assert plan.positions[:9] == list(range(9))
    assert "Top 10 of 100" in plan.note
    with pytest.raises(ValueError):
        plan_token_bars(out, None, None, 360, legend=False, top_n=0)


def test_bar_plot_leaves_the_legend_its_room():
    assert bar_plot_width(272, legend=True) == 272 - BAR_AXIS_PX - LEGEND_PX
    assert bar_plot_width(272, legend=False) == 272 - BAR_AXIS_PX
    assert bar_plot_width(100, legend=True) == MIN_PLOT_PX


@pytest.mark.parametrize("legend", [True, False])
def test_vertical_token_bars_keep_a_label_width_each_beside_the_legend(legend):
    # The Attention page's column: the most tokens that still get LABEL_PX each are vertical,
    # one more turns the bars horizontal, with or without the legend's room taken out.
    column = 272
    fits = bar_plot_width(column, legend=legend) // LABEL_PX
    flat = np.full(fits + 1, 1.0)
    assert plan_token_bars(flat[:fits], None, 0, column, legend=legend).orientation == "vertical"
    assert plan_token_bars(flat, None, 0, column, legend=legend).orientation == "horizontal"
    # A legend beside the bars costs the page's column 7 vertical labels.
    assert fits == (10 if legend else 17)
    with pytest.raises(ValueError):
        plan_token_bars(flat, None, 0, 0, legend=False)


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


def token(index, text, word=None, special=False, segment=0):
    return Token(text=text, index=index, word_index=word, is_special=special, segment=segment)


TOKENS = [
    token(0, "[CLS]", special=True),
    token(1, "em", 0),
    token(2, "##bed", 0),
    token(3, "cats", 1),
    token(4, "[SEP]", special=True),
    token(5, "dogs", 2, segment=1),
    token(6, "[SEP]", special=True, segment=1),
]


@pytest.fixture(scope="module")
def attentions():
    return dirichlet_attention(np.random.default_rng(0), 3, 4, 5, 0.5)


def raw_result(attentions):
    return AttentionResult(
        model_name="test",
        text="x",
        text_pair=None,
        tokens=TOKENS[:5],
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


def test_replaceable_words_and_maskable_positions():
    assert replaceable_words(TOKENS) == {0: "em##bed", 1: "cats"}
    assert maskable_positions(TOKENS) == [1, 2, 3, 5]


def test_prediction_rows():
    ranked = [[Prediction("a", 0.5, 1), Prediction("b", 0.25, 2)], [Prediction("c", 0.9, 3)]]
    rows = prediction_rows([4, 7], ranked)
    assert rows[1] == {"mask": 1, "position": 4, "rank": 2, "token": "b", "score": 0.25}
    assert rows[2]["mask"] == 2 and rows[2]["position"] == 7 and len(rows) == 3


def test_mask_profile_pools_long_inputs():
    weights = np.random.default_rng(2).random((2, 3, 100, 100))
    labels = [str(i) for i in range(100)]
    profile, shown = mask_profile(weights, 5, labels, limit=200, blocks=10)
    np.testing.assert_array_equal(profile, weights[:, :, 5, :])
    assert shown == labels
    pooled, blocks = mask_profile(weights, 5, labels, limit=80, blocks=10)
    assert pooled.shape == (2, 3, 10) and len(blocks) == 10
    np.testing.assert_allclose(pooled[..., 0], weights[:, :, 5, :10].mean(-1))


def test_generated_rows():
    weights = np.random.default_rng(3).random((2, 2, 5, 5))
    tokens = [token(i, t) for i, t in enumerate("abcde")]
    matrix, rows, keys = generated_rows(weights, tokens, 3, 1, 0)
    np.testing.assert_array_equal(matrix, weights[1, 0, 3:, :3])
    assert rows == ["1·d", "2·e"] and keys == ["a", "b", "c"]
    mean, _, _ = generated_rows(weights, tokens, 3, 1, "all")
    np.testing.assert_allclose(mean, weights[1].mean(0)[3:, :3])


# ---------------------------------------------------------------- corpus page
def corpus_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "layer": [0, 0],
            "head": [0, 1],
            "to_previous": [0.9, 0.1],
            "to_previous_low": [0.8, np.nan],
            "to_previous_high": [1.0, np.nan],
            "to_previous_n": [5, 1],
            "labels": ["previous-token", ""],
        }
    )


def test_corpus_head_rows_keep_means_and_interval_half_widths():
    rows = corpus_head_rows(corpus_table(), ["to_previous"])
    assert list(rows.columns) == [
        "layer",
        "head",
        "labels",
        "sentences",
        "to_previous",
        "to_previous ±",
    ]
    assert rows["to_previous ±"].iloc[0] == pytest.approx(0.1)
    assert np.isnan(rows["to_previous ±"].iloc[1])  # one sentence: no interval
    assert rows["sentences"].tolist() == [5, 1]
    with pytest.raises(ValueError):
        corpus_head_rows(corpus_table(), ["entropy"])


def test_corpus_example_rows_spell_out_the_pair():
    examples = pd.DataFrame(
        {
            "rank": [0, 1],
            "value": [0.7, 0.5],
            "sentence_index": [3, 1],
            "sentence": ["a b", "c d"],
            "query": [2, -1],
            "key": [1, -1],
        }
    )
    rows = corpus_example_rows(examples, [["[CLS]", "a", "b"], ["[CLS]", "c", "d"]])
    assert rows["rank"].tolist() == [1, 2]
    assert rows["pair"].tolist() == ["2: b → 1: a", ""]
    with pytest.raises(ValueError):
        corpus_example_rows(examples, [["a"]])
