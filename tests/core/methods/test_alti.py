"""alti equals mt-upc/transformer-contributions' ALTI, family by family."""

from __future__ import annotations

import numpy as np
import pytest

import core
from tests.core.methods import references
from tests.core.methods.conftest import TEXT

FAMILIES = ("bert", "roberta", "albert", "distilbert", "bert-encoder", "gpt2", "bart", "t5")


@pytest.mark.parametrize("family", FAMILIES)
def test_alti_matches_the_reference(perturbed_model, family):
    model = perturbed_model(family)
    result = core.compute_method(model, TEXT, "alti")
    per_layer, rollout = references.alti(model, TEXT)
    np.testing.assert_allclose(result.per_layer, per_layer, atol=1e-5)
    np.testing.assert_allclose(result.rollout, rollout, atol=1e-5)
    np.testing.assert_allclose(result.per_layer.sum(-1), 1.0, atol=1e-9)


def test_causal_alti_never_draws_from_later_tokens(perturbed_model):
    result = core.compute_method(perturbed_model("gpt2"), TEXT, "alti")
    assert np.allclose(np.triu(result.per_layer, k=1), 0.0)
    assert np.allclose(np.triu(result.rollout, k=1), 0.0)
