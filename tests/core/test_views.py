import numpy as np
import pytest

from core.tokens import Token
from core.views import pool_matrix, prepare_display


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


def test_block_edges_match_pool_matrix():
    from core.views import block_edges, pool_matrix

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
    from core.views import block_labels, window

    labels = ["[CLS]", "a", "b", "c", "d", "[SEP]"]
    assert block_labels(labels, 3) == ["[CLS]…a (0–1)", "b…c (2–3)", "d…[SEP] (4–5)"]
    assert block_labels(labels[:2], 3) == ["[CLS] (0)", "a (1)"]
    assert window(100, 50, 20) == (40, 60)
    assert window(100, 3, 20) == (0, 20)
    assert window(100, 99, 20) == (80, 100)
    assert window(5, 2, 20) == (0, 5)


def test_thumbnail_size_keeps_the_grid_small():
    from core.views import thumbnail_size

    assert thumbnail_size(12, 12, 512) == 16
    assert thumbnail_size(6, 12, 512) == 23
    assert thumbnail_size(6, 12, 13) == 13
    assert 12 * 12 * thumbnail_size(12, 12, 512) ** 2 <= 40_000


def test_pool_keys_averages_key_blocks_and_keeps_heads():
    from core.views import block_edges, pool_keys

    weights = np.random.default_rng(1).random((2, 3, 10))
    pooled = pool_keys(weights, 4)
    edges = block_edges(10, 4)
    assert pooled.shape == (2, 3, 4)
    for b in range(4):
        np.testing.assert_allclose(
            pooled[..., b], weights[..., edges[b] : edges[b + 1]].mean(-1), atol=1e-12
        )
    np.testing.assert_array_equal(pool_keys(weights, 10), weights)


def _cross_tokens():
    # target: <s> dog ##s </s>   source: [CLS] play ##ing ball [SEP]
    spec = [("<s>", None, True), ("dog", 0, False), ("s", 0, False), ("</s>", None, True)]
    target = [
        Token(text=t, index=i, word_index=w, is_special=s) for i, (t, w, s) in enumerate(spec)
    ]
    return target, _tokens()


def test_cross_display_keeps_rows_and_columns_apart():
    from core.views import prepare_cross_display

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
    from core.views import causal_display_mask

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
    from core.views import blank_causal, pad_square

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
