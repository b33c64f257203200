"""attention_norm equals the norms of Kobayashi et al.'s released code, family by family."""

from __future__ import annotations

import numpy as np
import pytest

import core
from core.families import CROSS, DECODER_SELF
from tests.core.methods import references
from tests.core.methods.conftest import SELF_STACK_FAMILIES, TEXT


@pytest.mark.parametrize("family", SELF_STACK_FAMILIES)
def test_attention_norm_matches_the_reference(perturbed_model, family):
    model = perturbed_model(family)
    result = core.compute_method(model, TEXT, "attention_norm")
    per_head, per_layer = references.kobayashi_norms(model, TEXT)
    np.testing.assert_allclose(result.per_head, per_head, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.per_layer, per_layer, rtol=1e-5, atol=1e-5)
    assert result.rollout is None and result.per_layer.dtype == np.float64


def test_norms_are_not_the_attention_weights(perturbed_model):
    model = perturbed_model("bert")
    norms = core.compute_method(model, TEXT, "attention_norm")
    raw = core.compute_method(model, TEXT, "raw")
    # Rescaled weights would keep each row's ranking; the value norms reorder it somewhere.
    assert (np.argsort(norms.per_head, -1) != np.argsort(raw.per_head, -1)).any()


def test_only_the_self_stack(perturbed_model):
    bart = perturbed_model("bart")
    assert "attention_norm" in core.list_methods(bart)
    assert "attention_norm" not in core.list_methods(bart, DECODER_SELF)
    assert "attention_norm" not in core.list_methods(bart, CROSS)
    reason = core.get_method("attention_norm").reason_unavailable(
        bart, bart.family.stack_spec(DECODER_SELF)
    )
    assert "self-attention stack" in reason
