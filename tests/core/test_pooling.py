"""Long inputs: block means, their edges and labels, detail windows, thumbnail sizes."""

from __future__ import annotations

import numpy as np
import pytest

from core.pooling import (
    block_edges,
    block_labels,
    pool_keys,
    pool_matrix,
    pool_signed_max,
    thumbnail_size,
    window,
)


def test_block_edges_match_pool_matrix():
    n, size = 10, 4
    edges = block_edges(n, size)
    assert list(edges) == [0, 2, 5, 7, 10]
    values = np.arange(n * n, dtype=float).reshape(n, n)
    pooled = pool_matrix(values, size)
    for b in range(size):
        block = values[edges[b] : edges[b + 1], edges[1] : edges[2]]
        assert pooled[b, 1] == block.mean()
    assert list(block_edges(3, 8)) == [0, 1, 2, 3]


def test_block_labels_and_window():
    labels = ["[CLS]", "a", "b", "c", "d", "[SEP]"]
    assert block_labels(labels, 3) == ["[CLS]…a (0–1)", "b…c (2–3)", "d…[SEP] (4–5)"]
    assert block_labels(labels[:2], 3) == ["[CLS] (0)", "a (1)"]
    assert window(100, 50, 20) == (40, 60)
    assert window(100, 3, 20) == (0, 20)
    assert window(100, 99, 20) == (80, 100)
    assert window(5, 2, 20) == (0, 5)


def test_thumbnail_size_keeps_the_grid_small():
    assert thumbnail_size(12, 12, 512) == 16
    assert thumbnail_size(6, 12, 512) == 23
    assert thumbnail_size(6, 12, 13) == 13
    assert 12 * 12 * thumbnail_size(12, 12, 512) ** 2 <= 40_000


def test_pool_keys_averages_key_blocks_and_keeps_heads():
    weights = np.random.default_rng(1).random((2, 3, 10))
    pooled = pool_keys(weights, 4)
    edges = block_edges(10, 4)
    assert pooled.shape == (2, 3, 4)
    for b in range(4):
        np.testing.assert_allclose(
            pooled[..., b], weights[..., edges[b] : edges[b + 1]].mean(-1), atol=1e-12
        )
    np.testing.assert_array_equal(pool_keys(weights, 10), weights)


def test_pool_matrix_is_exact_when_small():
    a = np.arange(9, dtype=np.float32).reshape(3, 3)
    out = pool_matrix(a, 3)
    assert out.dtype == np.float64 and np.array_equal(out, a)
    assert np.array_equal(pool_matrix(a, 10), a)
    out[0, 0] = 99
    assert a[0, 0] == 0  # a copy, not a view


def test_pool_matrix_block_means():
    a = np.arange(16, dtype=np.float64).reshape(4, 4)
    assert np.array_equal(pool_matrix(a, 2), [[2.5, 4.5], [10.5, 12.5]])

    # 5 is not divisible by 2: blocks are rows/cols [0, 2) and [2, 5).
    b = np.arange(25, dtype=np.float64).reshape(5, 5)
    expected = [
        [b[:2, :2].mean(), b[:2, 2:].mean()],
        [b[2:, :2].mean(), b[2:, 2:].mean()],
    ]
    assert np.allclose(pool_matrix(b, 2), expected)
    assert pool_matrix(np.ones((7, 7)), 3).shape == (3, 3)


def test_pool_matrix_leading_axes_and_nan():
    stack = np.stack([np.full((4, 4), 1.0), np.full((4, 4), 3.0)]).reshape(1, 2, 4, 4)
    assert np.array_equal(pool_matrix(stack, 2), np.array([[[[1, 1], [1, 1]], [[3, 3], [3, 3]]]]))
    c = np.array([[1.0, np.nan, 5.0, 5.0], [3.0, np.nan, 5.0, 5.0]] + [[np.nan] * 4] * 2)
    out = pool_matrix(c, 2)
    assert out[0, 0] == 2.0 and out[0, 1] == 5.0  # NaN left out of the block mean
    assert np.isnan(out[1, 0]) and np.isnan(out[1, 1])  # all-NaN block
    with pytest.raises(ValueError):
        pool_matrix(c, 0)


def test_extremes_keep_a_sparse_change_with_its_sign():
    change = np.zeros((120, 120))
    change[5, 7], change[60, 61], change[61, 60] = 0.3, -0.5, 0.4
    change[100:, :3] = np.nan
    pooled = pool_signed_max(change, 40)
    assert pooled.shape == (40, 40)
    # Blocks of 3 × 3: each change stays whole in its block, the larger one in a shared block.
    assert pooled[1, 2] == 0.3 and pooled[20, 20] == -0.5
    assert np.count_nonzero(np.nan_to_num(pooled)) == 2
    assert np.isnan(pooled[34, 0])  # an all-NaN block
    assert pool_matrix(change, 40)[20, 20] == pytest.approx(-0.1 / 9)  # a mean cancels it
    np.testing.assert_array_equal(pool_signed_max(change[:30, :30], 40), change[:30, :30])
    with pytest.raises(ValueError):
        pool_signed_max(np.zeros(3), 2)


def test_a_single_change_survives_signed_max_pooling_where_a_mean_washes_it_out():
    difference = np.zeros((64, 64))
    difference[37, 5] = -0.04
    difference[3, 60] = 0.01
    pooled = pool_signed_max(difference, 8)
    assert pooled.shape == (8, 8)
    assert pooled[4, 0] == -0.04 and pooled[0, 7] == 0.01  # sign and size kept
    assert np.count_nonzero(pooled) == 2
    # The block mean of the same cell is 64 times smaller: next to nothing on a ±0.04 scale.
    assert abs(pool_matrix(difference, 8)[4, 0]) == pytest.approx(0.04 / 64)


def test_signed_max_pooling_leaves_out_nan_and_keeps_short_axes():
    values = np.array([[np.nan, np.nan, 0.5], [np.nan, np.nan, -0.7]])
    pooled = pool_signed_max(values, 2)  # 3 columns to 2 blocks (0:1, 1:3); 2 rows kept
    assert pooled.shape == (2, 2)
    assert np.isnan(pooled[0, 0]) and np.isnan(pooled[1, 0])
    assert pooled[0, 1] == 0.5 and pooled[1, 1] == -0.7
    stacked = pool_signed_max(np.ones((3, 10, 10)), 5)
    assert stacked.shape == (3, 5, 5)
    with pytest.raises(ValueError):
        pool_signed_max(np.ones(4), 2)
