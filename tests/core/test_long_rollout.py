"""Rollout of chosen rows streamed from a result, against `core.attention_rollout` of the whole
array of the same text.

The streamed rows come from a result whose budget (0 bytes) refuses the whole array, so they can
only be recomputed from the capture; the reference is the whole array of a second run.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings

import numpy as np
import pytest

import core
from core import ComputationCancelled, InvalidSelectionError, run_attention
from core.exact import DenseStack
from core.families import SELF
from core.long_rollout import rollout_rows

TEXT = "The researchers visualized attention patterns in the garden. " * 12
TOL = 1e-6


@pytest.fixture(scope="module", params=["llama", "mistral", "gemma2", "gemma3"])
def pair(request, loaded_tiny):
    """`(pieces-only result, whole [layers, heads, n, n] of the same text)`: grouped-query
    attention in all four (2 key-value heads), a sliding window of 8 in Mistral and in the
    Gemmas' local layers, Gemma 2's soft-cap and Gemma 3's query pre-scaling."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", core.TruncationWarning)
        runs = [run_attention(loaded_tiny(request.param), TEXT, budget=b) for b in (0, 1 << 30)]
    return runs[0], runs[1].attentions


@pytest.mark.parametrize("layer", [0, -1])
def test_rows_equal_the_rollout_of_the_whole_array(pair, layer):
    result, whole = pair
    n = whole.shape[-1]
    rows = [0, 5, n // 2, n - 1]
    expected = core.attention_rollout(whole)[layer][rows]
    got = rollout_rows(result, rows, layer)
    assert got.shape == (4, n)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=TOL)


def test_heads_and_ignored_tokens_follow_the_rollout_rules(pair):
    result, whole = pair
    n = whole.shape[-1]
    rows, heads, ignored = [3, n - 2], [1, 2], [0, 7]
    expected = core.attention_rollout(whole, heads=heads, ignore_tokens=ignored)[-1][rows]
    got = rollout_rows(result, rows, heads=heads, ignore_tokens=ignored)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)


def test_a_whole_array_result_gives_the_same_rows(embedded):
    result = run_attention(embedded, "The cat sat on the mat because it was warm.")
    n = len(result.tokens)
    expected = core.attention_rollout(result.attentions)[2][[1, n - 1]]
    np.testing.assert_allclose(rollout_rows(result, [n - 1, 1], 2), expected, rtol=0, atol=TOL)


def test_progress_counts_up_to_the_rows_of_the_layers_read_and_can_stop(pair):
    result, _ = pair
    n = len(result.tokens)
    seen: list[tuple[int, int]] = []
    rollout_rows(result, [n - 1], progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, result.num_layers * n) and seen[-1] == (seen[-1][1],) * 2
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(seen))
    with pytest.raises(ComputationCancelled):
        rollout_rows(result, [n - 1], progress=lambda done, total: done == 0)
    with pytest.raises(ComputationCancelled):
        rollout_rows(result, [n - 1], cancel=lambda: True)


def test_bad_requests_are_refused_with_typed_errors(pair):
    result, _ = pair
    n = len(result.tokens)
    for rows in ([], [n], [1, 1]):
        with pytest.raises(InvalidSelectionError):
            rollout_rows(result, rows)
    with pytest.raises(core.PositionOutOfRangeError):
        rollout_rows(result, [0], layer=result.num_layers)
    with pytest.raises(InvalidSelectionError):
        rollout_rows(result, [0], heads=[])


@pytest.mark.parametrize("family", ["gemma2", "mistral"])
def test_head_mean_block_is_the_mean_of_the_heads_tiles(loaded_tiny, family):
    """Grouped-query heads, sliding windows (and Gemma 2's soft-cap) in one torch pass."""
    model = loaded_tiny(family)
    result = run_attention(model, TEXT[:200], budget=0)
    pieces = result.pieces()
    n = len(result.tokens)
    assert pieces.keys_per_query_head > 1
    assert any(pieces.window(layer) for layer in range(result.num_layers))
    # Blocks wider and narrower than the window of 8 keys, and the first row.
    blocks = (range(12, n - 2), range(40, 43), range(0, 1), range(n - 1, n))
    for layer, heads, rows in itertools.product(range(result.num_layers), (None, [0, 3]), blocks):
        first, mean = pieces.head_mean_block(layer, rows, heads)
        chosen = range(result.num_heads) if heads is None else heads
        tiles = np.nan_to_num([pieces.tile(layer, h, rows, range(n)) for h in chosen])
        expected = tiles.mean(axis=0)
        np.testing.assert_allclose(
            mean.numpy(), expected[:, first : first + mean.shape[1]], atol=1e-6
        )
        assert not expected[:, :first].any() and not expected[:, first + mean.shape[1] :].any()
        if pieces.window(layer) and rows.start >= 8:
            assert first > 0  # a windowed layer's block reads only the keys in its window
    with pytest.raises(InvalidSelectionError):
        pieces.head_mean_block(0, range(0), None)
    with pytest.raises(core.PositionOutOfRangeError):
        pieces.head_mean_block(0, range(2), [result.num_heads])


def test_a_dense_stack_gives_the_same_rows_and_head_means(pair):
    """The decoder stacks of encoder-decoders are held whole: the same rows from a `DenseStack`."""
    result, whole = pair
    dense = dataclasses.replace(result, attention_stacks={SELF: whole})
    assert isinstance(dense.pieces(), DenseStack)
    n = whole.shape[-1]
    rows = [2, n - 1]
    expected = core.attention_rollout(whole, heads=[0, 2])[-1][rows]
    got = rollout_rows(dense, rows, heads=[0, 2])
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)
    first, mean = dense.pieces().head_mean_block(1, range(4, 9), [0, 2])
    np.testing.assert_allclose(
        mean.numpy(), whole[1, [0, 2], 4:9, first : first + mean.shape[1]].mean(0), atol=1e-7
    )
