import numpy as np
import pytest

from core.head_stats import head_statistics, is_punctuation
from core.tokens import Token


def _tokens(texts, special=()):
    return [
        Token(text=t, index=i, word_index=None if i in special else i, is_special=i in special)
        for i, t in enumerate(texts)
    ]


def test_previous_token_head_is_recognised():
    n = 5
    previous = np.zeros((n, n))
    previous[0, 0] = 1.0
    for i in range(1, n):
        previous[i, i - 1] = 1.0
    uniform = np.full((n, n), 1 / n)
    attentions = np.stack([np.stack([previous, uniform])])  # [1 layer, 2 heads, n, n]
    stats = head_statistics(
        attentions, _tokens(["a", "b", ",", "c", "d"]), content_queries_only=False
    )
    prev_head, uniform_head = stats.iloc[0], stats.iloc[1]
    assert prev_head.to_previous == pytest.approx(1.0)
    assert prev_head.to_next == pytest.approx(0.0)
    assert prev_head.entropy == pytest.approx(0.0)
    # Distances 0,1,1,1,1 over 5 queries.
    assert prev_head.mean_distance == pytest.approx(4 / 5)
    assert uniform_head.entropy == pytest.approx(np.log2(n))
    assert uniform_head.to_punctuation == pytest.approx(1 / n)
    assert uniform_head.to_self == pytest.approx(1 / n)


def test_special_rows_are_left_out_and_special_share_counted():
    attention = np.array([[1.0, 0, 0], [0.5, 0.5, 0], [0.25, 0.25, 0.5]])
    stats = head_statistics(attention[None, None], _tokens(["[CLS]", "x", "y"], special={0}))
    # Content rows 1 and 2 send 0.5 and 0.25 to [CLS].
    assert stats.loc[0, "to_special"] == pytest.approx(0.375)
    assert stats.loc[0, "to_self"] == pytest.approx(0.5)
    assert list(stats.columns[:2]) == ["layer", "head"]


def test_real_model_statistics_are_in_range(embedded):
    from core import run_attention

    result = run_attention(embedded, "The cat, the dog and the bird sat on the mat.")
    stats = head_statistics(result.attentions, result.tokens)
    assert len(stats) == 6 * 12
    shares = stats[["to_special", "to_self", "to_previous", "to_next", "to_punctuation"]]
    assert ((shares >= 0) & (shares <= 1 + 1e-6)).all().all()
    assert (stats.entropy <= np.log2(len(result.tokens)) + 1e-6).all()


def test_punctuation():
    assert is_punctuation(",") and is_punctuation("...") and is_punctuation("«")
    assert not is_punctuation("a,") and not is_punctuation("") and not is_punctuation("1")
