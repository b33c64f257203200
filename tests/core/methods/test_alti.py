"""alti equals mt-upc/transformer-contributions' ALTI, family by family: as defined (the
distance without pairwise_distance's ε) by default, and exactly as released on request."""

from __future__ import annotations

import numpy as np
import pytest

import core
from core.methods.alti import DEFINITION, RELEASED
from tests.core.methods import references
from tests.core.methods.conftest import SELF_STACK_FAMILIES, TEXT
from tests.tiny_models import MODERN_FAMILIES


@pytest.mark.parametrize("family", SELF_STACK_FAMILIES)
def test_alti_matches_the_reference(perturbed_model, family):
    model = perturbed_model(family)
    result = core.compute_method(model, TEXT, "alti")
    per_layer, rollout = references.alti(model, TEXT, epsilon=0.0)
    np.testing.assert_allclose(result.per_layer, per_layer, atol=1e-5)
    np.testing.assert_allclose(result.rollout, rollout, atol=1e-5)
    np.testing.assert_allclose(result.per_layer.sum(-1), 1.0, atol=1e-9)


@pytest.mark.parametrize("family", SELF_STACK_FAMILIES)
def test_released_alti_matches_the_released_code(perturbed_model, family):
    model = perturbed_model(family)
    result = core.compute_alti(model, TEXT, variant=RELEASED)
    per_layer, rollout = references.alti(model, TEXT)
    np.testing.assert_allclose(result.per_layer, per_layer, atol=1e-5)
    # ε = 1e-6 per dimension puts ≈ 1e-7 on every masked (future or windowed) cell in both; the
    # rollouts' float32 rounding of those cells reaches 1.1e-5 over a windowed model.
    np.testing.assert_allclose(
        result.rollout, rollout, atol=2e-5 if family in MODERN_FAMILIES else 1e-5
    )
    assert "ε = 1e-6" in " ".join(result.notes)


def test_the_two_variants_differ_where_the_released_epsilon_matters(tiny_model_path):
    # An unperturbed tiny GPT-2 has small hidden vectors (d = 32): ε = 1e-6 per coordinate is
    # not lost there, and it gives later tokens a share. Each variant matches its own reference
    # to float32 noise (≈ 4e-6), and the two differ by far more.
    model = core.load_model(str(tiny_model_path("gpt2")))
    defined = core.compute_alti(model, TEXT, variant=DEFINITION).per_layer
    released = core.compute_alti(model, TEXT, variant=RELEASED).per_layer
    defined_reference, _ = references.alti(model, TEXT, epsilon=0.0)
    released_reference, _ = references.alti(model, TEXT)
    np.testing.assert_allclose(defined, defined_reference, atol=1e-5)
    np.testing.assert_allclose(released, released_reference, atol=1e-5)
    assert np.abs(defined - released).max() > 1e-4
    assert np.triu(released, k=1).max() > 1e-5 and np.triu(defined, k=1).max() == 0
    np.testing.assert_array_equal(defined, core.compute_method(model, TEXT, "alti").per_layer)


def test_causal_alti_never_draws_from_later_tokens_but_the_released_code_does(perturbed_model):
    model = perturbed_model("gpt2")
    result = core.compute_method(model, TEXT, "alti")
    assert np.allclose(np.triu(result.per_layer, k=1), 0.0)
    assert np.allclose(np.triu(result.rollout, k=1), 0.0)
    released = core.compute_alti(model, TEXT, variant=RELEASED)
    assert np.triu(released.per_layer, k=1).max() > 0


def test_an_unknown_variant_is_refused(perturbed_model):
    with pytest.raises(core.InvalidSelectionError, match="variant"):
        core.compute_alti(perturbed_model("bert"), TEXT, variant="paper")
