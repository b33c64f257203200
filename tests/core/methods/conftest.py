"""Tiny models with random biases, norm parameters and sharper attention, for exactness tests.

Tiny random models start with zero biases, identity layer norms and nearly uniform attention,
which would hide convention errors (a missing bias, a transposed matrix, the norm's scale);
`perturbed_model(family)` loads a fresh copy and redraws them from a seeded generator.
"""

from __future__ import annotations

import pytest
import torch

import core

TEXT = "The researchers visualized attention patterns quickly."
MASKED_TEXT = "The researchers [MASK] attention patterns quickly."


def perturb(network: torch.nn.Module, seed: int = 7) -> None:
    """Redraw biases, norm weights and projection matrices of `network` in place."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in network.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if "embed" in name or "shared" in name or "relative_attention_bias" in name:
                continue
            if name.endswith("bias"):
                parameter.copy_(0.2 * noise)
            elif parameter.dim() == 1:  # norm scales (LayerNorm, T5's RMSNorm)
                parameter.copy_(1.0 + 0.3 * noise)
            elif parameter.dim() == 2:  # projections: sharper attention, larger values
                parameter.copy_(0.25 * noise)


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
