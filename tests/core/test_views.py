import numpy as np

from core.tokens import Token
from core.views import prepare_display


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
