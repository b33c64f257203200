import numpy as np
import pytest

from core import PositionOutOfRangeError, drop_positions, mean_of_heads, merge_groups, select_heads


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


def test_select_heads_and_mean():
    attention = np.arange(2 * 3 * 2 * 2, dtype=float).reshape(2, 3, 2, 2)
    assert select_heads(attention, -1, [0, 2]).shape == (2, 2, 2)
    np.testing.assert_allclose(mean_of_heads(attention, 0), attention[0].mean(0))
    with pytest.raises(PositionOutOfRangeError, match="layers 0 to 1"):
        select_heads(attention, 2, None)
    with pytest.raises(PositionOutOfRangeError, match="heads 0 to 2"):
        select_heads(attention, 0, [3])
    with pytest.raises(PositionOutOfRangeError):
        select_heads(attention, 0, [])
