"""value_zeroing equals hmohebbi/ValueZeroing's scores, family by family."""

from __future__ import annotations

import numpy as np
import pytest

import core
from tests.core.methods import references
from tests.core.methods.conftest import TEXT
from tests.tiny_models import MODERN_FAMILIES

FAMILIES = ("bert", "roberta", "albert", "distilbert", "gpt2", "bart", "t5", *MODERN_FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_value_zeroing_matches_the_reference(perturbed_model, family):
    model = perturbed_model(family)
    result = core.compute_method(model, TEXT, "value_zeroing")
    per_layer, rollout = references.value_zeroing(model, TEXT)
    np.testing.assert_allclose(result.per_layer, per_layer, atol=1e-5)
    np.testing.assert_allclose(result.rollout, rollout, atol=1e-5)


def test_batches_do_not_change_the_scores(perturbed_model, monkeypatch):
    from core.methods import value_zeroing

    model = perturbed_model("bert")
    whole = core.compute_method(model, TEXT, "value_zeroing")
    monkeypatch.setattr(value_zeroing, "BATCH_BUDGET", 1)  # one zeroed token per batch
    one_by_one = core.compute_method(model, TEXT, "value_zeroing")
    # float32 matrix products round differently per batch shape: agreement to ~1e-7.
    np.testing.assert_allclose(whole.per_layer, one_by_one.per_layer, atol=1e-6)


def test_chosen_layers_progress_and_stop(perturbed_model):
    model = perturbed_model("bert")
    seen = []
    result = core.compute_method(
        model, TEXT, "value_zeroing", layers=(1,), progress=lambda d, t: seen.append((d, t))
    )
    assert result.layers_computed == (1,) and result.rollout is None
    assert np.isnan(result.per_layer[0]).all() and not np.isnan(result.per_layer[1]).any()
    assert seen[-1][0] == seen[-1][1]
    with pytest.raises(core.ComputationCancelled):
        core.compute_method(model, TEXT, "value_zeroing", progress=lambda d, t: False)
