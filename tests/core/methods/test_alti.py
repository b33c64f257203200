"""alti equals mt-upc/transformer-contributions' ALTI, family by family."""

from __future__ import annotations

import numpy as np
import pytest

import core
from tests.core.methods import references
from tests.core.methods.conftest import SELF_STACK_FAMILIES, TEXT
from tests.tiny_models import MODERN_FAMILIES


@pytest.mark.parametrize("family", SELF_STACK_FAMILIES)
def test_alti_matches_the_reference(perturbed_model, family):
    model = perturbed_model(family)
    result = core.compute_method(model, TEXT, "alti")
    per_layer, rollout = references.alti(model, TEXT)
    np.testing.assert_allclose(result.per_layer, per_layer, atol=1e-5)
    # The reference's pairwise_distance adds ε = 1e-6 per dimension, which also puts ≈ 1e-7 on
    # every masked (future or windowed) cell; over a windowed model's rollout that reaches 1.1e-5.
    np.testing.assert_allclose(
        result.rollout, rollout, atol=2e-5 if family in MODERN_FAMILIES else 1e-5
    )
    np.testing.assert_allclose(result.per_layer.sum(-1), 1.0, atol=1e-9)


def test_causal_alti_never_draws_from_later_tokens(perturbed_model):
    result = core.compute_method(perturbed_model("gpt2"), TEXT, "alti")
    assert np.allclose(np.triu(result.per_layer, k=1), 0.0)
    assert np.allclose(np.triu(result.rollout, k=1), 0.0)
