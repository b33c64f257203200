"""Positions to mask or replace, prediction rows and a mask's attention profile."""

from __future__ import annotations

import numpy as np

from core import Prediction
from core.masking import mask_profile, maskable_positions, prediction_rows, replaceable_words
from tests.core.attention_inputs import tokens_of

TOKENS = tokens_of(
    [
        ("[CLS]", None, True, 0),
        ("em", 0, False, 0),
        ("##bed", 0, False, 0),
        ("cats", 1, False, 0),
        ("[SEP]", None, True, 0),
        ("dogs", 2, False, 1),
        ("[SEP]", None, True, 1),
    ]
)


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
