"""Display data of a long input read in pieces, against the whole array of the same text.

The pieces come from a result whose budget (0 bytes) refuses the whole array, so they cannot
read it; the reference is the whole array of a second run within the default budget.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import core
from core import AttentionTooLargeError, InvalidSelectionError, run_attention
from core.long_views import (
    block_labels,
    detail_window,
    max_whole_tokens,
    pooled_overview,
    query_row,
    top_weights,
    whole_fits,
    window_start,
)
from tests.tiny_models import SLIDING_WINDOW

TEXT = "The researchers visualized attention patterns in the garden. " * 25


@pytest.fixture(scope="module", params=["llama", "mistral"])
def pair(request, loaded_tiny):
    """`(pieces-only result, whole [layers, heads, n, n] of the same text)`."""
    model = loaded_tiny(request.param)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", core.TruncationWarning)
        pieces = run_attention(model, TEXT, budget=0)
        whole = run_attention(model, TEXT).attentions
    return pieces, whole


def masked(result, whole: np.ndarray, layer: int) -> np.ndarray:
    """`[heads, n, n]` of `layer` with the cells the model never computes as NaN."""
    n = whole.shape[-1]
    computed = result.computed(layer, range(n), range(n))
    return np.where(computed, whole[layer], np.nan)


def test_the_pieces_never_need_the_whole_array(pair):
    result, _ = pair
    assert not whole_fits(result) and max_whole_tokens(result) == 0
    assert result.stack_tokens() == (result.tokens, result.tokens)  # tokens without the array
    with pytest.raises(AttentionTooLargeError):
        _ = result.attentions


@pytest.mark.parametrize("head", [1, None])
@pytest.mark.parametrize("reduce", ["mean", "max"])
def test_overview_pools_the_whole_array(pair, head, reduce):
    result, whole = pair
    overview = pooled_overview(result, 1, head, size=16, reduce=reduce)
    values = masked(result, whole, 1)
    edges = overview.row_edges
    assert overview.grid.shape == (16, 16) and list(edges) == list(overview.col_edges)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # blocks with no computed weight
        for a in range(16):
            for b in range(16):
                block = values[:, edges[a] : edges[a + 1], edges[b] : edges[b + 1]]
                if head is not None:
                    expected = (
                        np.nanmean(block[head]) if reduce == "mean" else np.nanmax(block[head])
                    )
                elif reduce == "mean":
                    expected = np.nanmean(np.nanmean(block, axis=0))
                else:
                    expected = np.nanmax(block)
                if np.isnan(expected):
                    assert np.isnan(overview.grid[a, b])  # empty, not 0
                else:
                    assert overview.grid[a, b] == pytest.approx(expected, abs=1e-5)
    assert reduce in overview.what
    assert overview.row_labels[0] == f"0–{edges[1] - 1}"


def test_detail_is_the_exact_window_clipped_to_the_input(pair):
    result, whole = pair
    n = whole.shape[-1]
    detail = detail_window(result, 0, 2, row_start=100, col_start=n - 10, size=32)
    assert detail.rows == range(100, 132) and detail.cols == range(n - 32, n)
    expected = masked(result, whole, 0)[2, 100:132, n - 32 :]
    np.testing.assert_allclose(detail.matrix, expected, atol=1e-5)
    np.testing.assert_array_equal(np.isnan(detail.matrix), np.isnan(expected))
    np.testing.assert_allclose(
        detail.matrix, result.tile(0, 2, range(100, 132), range(n - 32, n)), atol=0
    )
    mean = detail_window(result, 0, None, 0, 0, size=8).matrix
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # later tokens: NaN in every head
        expected = np.nanmean(masked(result, whole, 0)[:, :8, :8], 0)
    np.testing.assert_allclose(mean, expected, atol=1e-5)


def test_a_row_lists_its_largest_computed_weights(pair):
    result, whole = pair
    query = 200
    row = query_row(result, 1, 0, query)
    expected = masked(result, whole, 1)[0, query]
    np.testing.assert_allclose(row, expected, atol=1e-5)
    table = top_weights(row, result.labels, count=5)
    assert len(table) == 5
    order = np.argsort(-np.nan_to_num(expected, nan=-1.0), kind="stable")[:5]
    assert table["position"].tolist() == order.tolist()
    assert table["token"].tolist() == [result.labels[i] for i in order]
    assert (np.diff(table["weight"]) <= 0).all()
    window = result.window(1)
    if window is not None:
        assert window == SLIDING_WINDOW and table["position"].min() > query - window


def test_never_computed_keys_are_not_listed_as_zero():
    table = top_weights(np.array([0.5, np.nan, 0.5, np.nan]), ["a", "b", "c", "d"], count=10)
    assert table["position"].tolist() == [0, 2]
    with pytest.raises(InvalidSelectionError):
        top_weights(np.ones(3), ["a"])


def test_window_start_and_block_labels():
    assert window_start(0, 4096) == 0 and window_start(4095, 4096) == 4096 - 64
    assert window_start(1000, 4096) == 1000 - 32 and window_start(3, 10) == 0
    assert block_labels(np.array([0, 1, 4])) == ["0", "1–3"]
    with pytest.raises(InvalidSelectionError):
        pooled_overview(None, 0, 0, reduce="median")  # type: ignore[arg-type]
