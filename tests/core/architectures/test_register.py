"""The recipe of docs/architectures.md, followed for a toy architecture: a layer class no
adapter knows is refused with a one-line reason, then one adapter registered through the public
registry makes every model-reading method work, checked by the shared suite."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from transformers.models.llama.modeling_llama import LlamaDecoderLayer

import core
from core.architectures import Projection, RotaryDecoder, RotaryDecoderLayer
from core.corpus import query_key_vectors
from tests.core.architectures.test_adapters import (
    check_attention,
    check_decomposition,
    check_finish,
    check_lens,
    load_perturbed,
    run_layers,
)
from tests.core.methods import references

TEXT = "The researchers visualized attention patterns quickly."


class ToyDecoderLayer(LlamaDecoderLayer):
    """Llama's layer with its attention output halved before the residual: a new architecture
    that no adapter knows (its class name is its own)."""

    def forward(self, hidden_states, position_embeddings=None, attention_mask=None, **kwargs):
        attended, _ = self.self_attn(
            hidden_states=self.input_layernorm(hidden_states),
            position_embeddings=position_embeddings,
            attention_mask=attention_mask,
            **kwargs,
        )
        hidden_states = hidden_states + 0.5 * attended
        return hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))


# ---- the recipe: one Layer subclass, one Architecture subclass, register ------------------
class ToyLayer(RotaryDecoderLayer):
    """What differs from Llama: the halved output, in the weights and in the modules' run."""

    def output_projection(self) -> Projection:
        projection = super().output_projection()
        bias = None if projection.bias is None else 0.5 * projection.bias
        return Projection(0.5 * projection.weight, bias)

    def output_block(self, context: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.attention.o_proj(context)


class Toy(RotaryDecoder):
    name = "toy"
    label = "Toy"
    layer_classes = ("ToyDecoderLayer",)
    layer_type = ToyLayer


# -------------------------------------------------------------------------------------------


@pytest.fixture
def toy_model(tiny_model_path):
    model = load_perturbed(tiny_model_path("llama"))
    for layer in model.model.model.layers:
        layer.__class__ = ToyDecoderLayer
    yield dataclasses.replace(model, architecture=None)  # detected again: none claims it
    core.unregister_architecture(Toy)


def test_an_unknown_architecture_keeps_attention_and_says_what_the_rest_needs(toy_model):
    assert toy_model.architecture is None
    available = core.list_methods(toy_model)
    assert {"raw", "rollout", "flow"} <= set(available)
    for method in ("attention_norm", "alti", "value_zeroing"):
        assert method not in available
        reason = core.get_method(method).reason_unavailable(
            toy_model, toy_model.family.stack_spec("self")
        )
        assert "no adapter" in reason and "\n" not in reason
        with pytest.raises(core.AtlasError, match="no adapter"):
            core.compute_method(toy_model, TEXT, method)
    with pytest.raises(core.UnsupportedModelError, match="logit lens"):
        core.logit_lens(toy_model, TEXT, -1)
    with pytest.raises(core.UnsupportedModelError, match="global view"):
        query_key_vectors(toy_model, [TEXT], 0, 0)
    assert core.compute_method(toy_model, TEXT, "rollout").rollout is not None


def test_a_registered_toy_architecture_passes_the_shared_suite(toy_model):
    core.register_architecture(Toy)
    model = dataclasses.replace(toy_model, architecture=None)
    assert type(model.architecture) is Toy
    run, outputs = run_layers(model)
    check_attention(model, run)
    check_finish(model, run, outputs)
    check_decomposition(model, run)
    check_lens(model, run, outputs)
    # Value zeroing re-runs layers through the adapter; the reference runs the whole model.
    result = core.compute_method(model, TEXT, "value_zeroing")
    per_layer, _ = references.value_zeroing(model, TEXT)
    np.testing.assert_allclose(result.per_layer, per_layer, atol=1e-5)
    for method in ("attention_norm", "alti", "grad_attention"):
        assert np.isfinite(core.compute_method(model, TEXT, method).per_layer).all()
