"""Tiny models with random biases, norm parameters and sharper attention, for exactness tests.

Tiny random models start with zero biases, identity layer norms and nearly uniform attention,
which would hide convention errors (a missing bias, a transposed matrix, the norm's scale);
`perturbed_model(family)` loads a fresh copy and redraws them from a seeded generator.
"""

from __future__ import annotations

import pytest

import core
from tests.core.methods.references import perturb
from tests.tiny_models import MODERN_FAMILIES

TEXT = "The researchers visualized attention patterns quickly."
MASKED_TEXT = "The researchers [MASK] attention patterns quickly."
SELF_STACK_FAMILIES = (
    *("bert", "roberta", "albert", "distilbert", "bert-encoder", "gpt2", "bart", "t5"),
    *MODERN_FAMILIES,
)
"""Every family whose self stack the layer-reading methods compare with a reference."""


@pytest.fixture(scope="module")
def perturbed_model(tiny_model_path):
    """Factory: `perturbed_model("bert")` -> a LoadedModel of its own, perturbed (cached)."""
    cache: dict[str, core.LoadedModel] = {}

    def get(family: str) -> core.LoadedModel:
        if family not in cache:
            model = core.load_model(str(tiny_model_path(family)))
            perturb(model.model)
            cache[family] = model
        return cache[family]

    return get
