import numpy as np
import pytest

from core import EmptyReplacementError, PositionOutOfRangeError, compare_replacement
from core.display_matrix import merge_groups
from core.layer_views import select_heads


def test_replacement_with_more_pieces_is_aligned_by_word(embedded):
    comparison = compare_replacement(embedded, "The cat sat on the mat.", 1, "hippopotamus")
    alignment = comparison.alignment
    assert comparison.original_word == "cat"
    assert alignment.labels == [
        "[CLS]",
        "the",
        "cat→hippopotamus",
        "sat",
        "on",
        "the",
        "mat",
        ".",
        "[SEP]",
    ]
    assert len(alignment.after[alignment.replaced]) > 1
    # Every other unit maps one token to one token with the same text.
    for unit, (b, a) in enumerate(zip(alignment.before, alignment.after, strict=True)):
        if unit != alignment.replaced:
            assert [comparison.before.labels[i] for i in b] == [
                comparison.after.labels[i] for i in a
            ]
    layers, heads, units, _ = comparison.difference.shape
    assert (layers, heads, units) == (6, 12, 9)
    np.testing.assert_allclose(comparison.before_words.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(comparison.after_words.sum(-1), 1.0, atol=1e-5)
    assert np.abs(comparison.difference).max() > 0


def test_multi_word_replacement(embedded):
    comparison = compare_replacement(embedded, "The cat sat on the mat.", 5, "big red rug")
    assert comparison.alignment.labels[6] == "mat→big red rug"
    assert len(comparison.alignment.after[6]) == 3
    assert comparison.after.text == "The cat sat on the big red rug."


def test_same_word_gives_zero_difference(embedded):
    comparison = compare_replacement(embedded, "The cat sat.", 1, "cat")
    np.testing.assert_array_equal(comparison.difference, 0)


def test_predictions_before_and_after(loaded_tiny):
    comparison = compare_replacement(loaded_tiny("bert"), "the cat sat on the [MASK]", 1, "dog")
    assert len(comparison.before_predictions) == len(comparison.after_predictions) == 1
    assert comparison.before_predictions != comparison.after_predictions


def test_mask_pairs_match_masks_through_the_alignment(loaded_tiny):
    model = loaded_tiny("bert")
    kept = compare_replacement(model, "the [MASK] sat on the [MASK]", 2, "lay")
    assert [(p.before, p.after) for p in kept.mask_pairs] == [(2, 2), (6, 6)]
    assert [p.before_predictions for p in kept.mask_pairs] == kept.before_predictions
    assert [p.after_predictions for p in kept.mask_pairs] == kept.after_predictions
    # Replacing the only mask removes it: the pair has no "after" side.
    [removed] = compare_replacement(model, "the cat sat on the [MASK]", 5, "mat").mask_pairs
    assert removed.before == 6 and removed.after is None and removed.after_predictions == []
    assert removed.before_predictions
    # Typing a mask as the replacement adds one, which has no "before" side.
    pairs = compare_replacement(model, "the [MASK] sat on it", 4, "the [MASK]").mask_pairs
    assert [(p.before, p.after) for p in pairs] == [(2, 2), (None, 6)]
    # A model without a masked-word head predicts nothing to pair.
    assert compare_replacement(loaded_tiny("bert-encoder"), "a [MASK] b", 0, "c").mask_pairs == []


def test_replacing_a_word_in_a_roberta_sentence(loaded_tiny):
    comparison = compare_replacement(loaded_tiny("roberta"), "the cat sat on the mat", 4, "a")
    assert comparison.original_word == "the"
    assert comparison.after.text == "the cat sat on a mat"
    assert comparison.difference.shape[-1] == len(comparison.alignment.labels)


@pytest.mark.parametrize("replacement", ["", "   ", None])
def test_empty_replacement(embedded, replacement):
    with pytest.raises(EmptyReplacementError):
        compare_replacement(embedded, "The cat sat.", 1, replacement)


@pytest.mark.parametrize("word_index", [-1, 3, 99])
def test_word_index_out_of_range(embedded, word_index):
    with pytest.raises(PositionOutOfRangeError):
        compare_replacement(embedded, "The cat sat", word_index, "dog")


@pytest.mark.parametrize(("layer", "head"), [(0, 0), (3, 11), (-1, 5), (2, None), (-1, None)])
def test_difference_for_one_head_equals_that_slice_of_the_difference(embedded, layer, head):
    comparison = compare_replacement(embedded, "The cat sat on the mat.", 1, "hippopotamus")
    expected = (
        comparison.difference[layer].mean(axis=0)
        if head is None
        else comparison.difference[layer, head]
    )
    shown = comparison.difference_for(layer, head)
    units = len(comparison.alignment.labels)
    assert shown.shape == (units, units)
    np.testing.assert_allclose(shown, expected, atol=1e-6)


@pytest.mark.parametrize(("layer", "head"), [(6, 0), (0, 12), (0, -1)])
def test_difference_for_a_missing_layer_or_head(embedded, layer, head):
    comparison = compare_replacement(embedded, "The cat sat.", 1, "dog")
    with pytest.raises(PositionOutOfRangeError):
        comparison.difference_for(layer, head)


def test_word_level_stacks_are_computed_once(embedded):
    comparison = compare_replacement(embedded, "The cat sat.", 1, "dog")
    assert comparison.difference is comparison.difference
    assert comparison.before_words is comparison.before_words
    assert comparison.after_words is comparison.after_words


@pytest.mark.parametrize("head", [0, None])
def test_difference_without_the_first_token_is_of_the_transformed_matrices(embedded, head):
    comparison = compare_replacement(embedded, "The cat sat on the mat.", 1, "hippopotamus")
    heads = None if head is None else [head]
    sides = []
    for result, groups in (
        (comparison.before, comparison.alignment.before),
        (comparison.after, comparison.alignment.after),
    ):
        matrix = select_heads(result.attentions, 2, heads).mean(axis=0)
        rest = matrix[:, 1:] / matrix[:, 1:].sum(axis=-1, keepdims=True)
        sides.append(merge_groups(np.pad(rest, ((0, 0), (1, 0))), groups))
    shown = comparison.difference_for(2, head, without_first=True)
    # [CLS] is its own unit in both: its column is left out; every other cell is the
    # difference of the renormalised matrices merged to words.
    assert comparison.alignment.before[0] == [0] and comparison.alignment.after[0] == [0]
    assert np.isnan(shown[:, 0]).all()
    np.testing.assert_allclose(shown[:, 1:], (sides[1] - sides[0])[:, 1:], atol=1e-6)
    assert not np.allclose(shown[:, 1:], comparison.difference_for(2, head)[:, 1:])


@pytest.mark.parametrize(
    "groups",
    [
        [[0], [1, 2, 3], [4], [5, 6]],  # runs in order: summed over runs
        [[0], [1, 3], [2], [4, 5, 6]],  # not runs (a truncated text's replaced unit): reordered
        [[0], [1, 3], [2], [4, 5]],  # position 6 in no group: the dense product
    ],
)
def test_the_fast_merge_equals_merge_groups(groups):
    from core.compare import _merge

    rng = np.random.default_rng(0)
    attentions = rng.dirichlet(np.ones(7), size=(2, 3, 7)).astype(np.float32)
    merged = _merge(attentions, groups)
    assert merged.dtype == np.float32 and merged.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(merged, merge_groups(attentions, groups), rtol=1e-6, atol=1e-7)


def test_layer_difference_is_difference_for_of_each_head(embedded):
    comparison = compare_replacement(embedded, "The cat sat on the mat.", 1, "hippopotamus")
    for without_first in (False, True):
        layer = comparison.layer_difference(3, without_first=without_first)
        assert layer.shape == (12, 9, 9)
        for head in (0, 11):
            np.testing.assert_allclose(
                layer[head],
                comparison.difference_for(3, head, without_first=without_first),
                atol=1e-6,
            )
    np.testing.assert_allclose(comparison.shown_difference()[3], comparison.layer_difference(3))
    shown = comparison.shown_difference(without_first=True)
    assert shown.shape == comparison.difference.shape and np.isnan(shown[:, :, :, 0]).all()
