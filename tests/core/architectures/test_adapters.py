"""The shared suite every architecture adapter passes, on a tiny checkpoint of each family.

Each check compares the adapter with the model's own computation (its eager attention, its
layers' outputs, its logits), on models whose biases, norms and projections were redrawn so
that a missing bias, a transposed matrix or a wrong norm shows. Adding an architecture = its
module, a tiny checkpoint in tests/tiny_models.py and an entry in `EXPECTED` below.
"""

from __future__ import annotations

import pytest
import torch

import core
from core.architectures import (
    T5,
    Albert,
    Bart,
    Bert,
    DistilBert,
    Gemma2,
    Gemma3,
    Gpt2,
    Llama,
    Mistral,
    Phi3,
    Qwen2,
    Qwen3,
    RotaryDecoder,
)
from core.families.layers import self_stack_pass
from tests.core.methods.references import perturb
from tests.tiny_models import FAMILIES, MODERN_FAMILIES, NUM_KV_HEADS, SLIDING_WINDOW

EXPECTED = {
    "bert": Bert,
    "bert-encoder": Bert,
    "roberta": Bert,
    "distilbert": DistilBert,
    "albert": Albert,
    "gpt2": Gpt2,
    "bart": Bart,
    "t5": T5,
    "llama": Llama,
    "mistral": Mistral,
    "qwen2": Qwen2,
    "qwen3": Qwen3,
    "gemma2": Gemma2,
    "gemma3": Gemma3,
    "phi3": Phi3,
}
WITH_LENS = ("bert", "roberta", "distilbert", "albert", "gpt2", *MODERN_FAMILIES)
# Longer than the sliding window (8), so windowed layers differ from global ones.
TEXT = "The researchers visualized attention patterns quickly, and the students read them twice."
ATOL = 2e-5


def test_every_family_has_an_expected_adapter():
    assert set(EXPECTED) == set(FAMILIES)


@pytest.fixture(scope="module")
def loaded(tiny_model_path):
    """Factory: a perturbed `LoadedModel` per family, with one pass and its layers' outputs."""
    cache = {}

    def get(family: str):
        if family not in cache:
            model = load_perturbed(tiny_model_path(family))
            cache[family] = (model, *run_layers(model))
        return cache[family]

    return get


def run_layers(model: core.LoadedModel):
    """(one self-stack pass, each layer module's real output `[n, d]` in layer order)."""
    encoded = core.inference.encode(model, TEXT)
    architecture = model.architecture
    outputs: dict[int, list[torch.Tensor]] = {}

    def keep(module, args, output):
        output = output[0] if isinstance(output, tuple) else output
        outputs.setdefault(id(module), []).append(output[0].detach())

    modules = {id(layer.module): layer.module for layer in architecture.layers}
    handles = [module.register_forward_hook(keep) for module in modules.values()]
    try:
        run = self_stack_pass(model, encoded.inputs)
    finally:
        for handle in handles:
            handle.remove()
    seen: dict[int, int] = {}
    layer_outputs = []
    for layer in architecture.layers:  # ALBERT's shared module: one call per layer, in order
        key = id(layer.module)
        layer_outputs.append(outputs[key][seen.get(key, 0)])
        seen[key] = seen.get(key, 0) + 1
    return run, layer_outputs


def load_perturbed(path) -> core.LoadedModel:
    model = core.load_model(str(path))
    perturb(model.model)
    return model


@pytest.mark.parametrize("family", FAMILIES)
def test_the_registry_picks_the_adapter(loaded, family):
    model, _, _ = loaded(family)
    assert type(model.architecture) is EXPECTED[family]
    assert len(model.architecture.layers) == model.num_layers
    assert core.unsupported_reason(model) is None
    for layer in model.architecture.layers:
        assert layer.num_heads == model.num_heads
        assert layer.num_heads % layer.num_kv_heads == 0
        if family in MODERN_FAMILIES:
            assert layer.num_kv_heads == NUM_KV_HEADS
            assert [layer.kv_group(h) for h in range(4)] == [0, 0, 1, 1]


def check_attention(model: core.LoadedModel, run) -> None:
    """Queries, keys, scale, soft-cap, score bias and masks reproduce the eager attention, and
    the mask is exactly where the model computes weights."""
    n = run.attentions[0].shape[-1]
    for index, layer in enumerate(model.architecture.layers):
        x, attentions = run.hidden_states[index], run.attentions[index]
        recomputed = layer.attention_weights(x)
        torch.testing.assert_close(recomputed, attentions.to(layer.dtype), atol=ATOL, rtol=0)
        assert torch.equal((attentions > 0).all(dim=0), layer.mask(n))


def check_finish(model: core.LoadedModel, run, outputs) -> None:
    """The heads' values weighted by the model's own attention, then `finish`, give each
    layer's real output."""
    for index, layer in enumerate(model.architecture.layers):
        x, attentions = run.hidden_states[index].to(layer.dtype), run.attentions[index]
        context = layer.context(attentions.to(layer.dtype), layer.values(x))
        finished = layer.finish(context[None], x[None])[0]
        torch.testing.assert_close(finished, outputs[index].to(layer.dtype), atol=ATOL, rtol=1e-5)


def check_decomposition(model: core.LoadedModel, run) -> None:
    """Σ_h Σ_j α_ij^h f^h(x_j) (+ bias, a post-norm linearised) is the block's output."""
    for index, layer in enumerate(model.architecture.layers):
        x = run.hidden_states[index].to(layer.dtype)
        attentions = run.attentions[index].to(layer.dtype)
        moved, row_scale, bias = layer.attention_terms(x, attentions)
        summed = torch.einsum("hij,hjd->id", attentions, moved) + bias
        block = layer.attention_output(layer.context(attentions, layer.values(x))[None])[0]
        torch.testing.assert_close(row_scale[:, None] * summed, block, atol=1e-5, rtol=1e-5)


def check_lens(model: core.LoadedModel, run, outputs) -> None:
    """Final norm and head (with soft-cap) applied to the last layer's output give the logits."""
    logits = model.architecture.lens_logits(outputs[-1])
    torch.testing.assert_close(logits, run.logits.to(logits.dtype), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_recomputed_attention_is_the_models(loaded, family):
    model, run, _ = loaded(family)
    check_attention(model, run)


@pytest.mark.parametrize("family", FAMILIES)
def test_windows_are_the_configured_ones(loaded, family):
    model, _, _ = loaded(family)
    windows = [layer.window for layer in model.architecture.layers]
    expected = {
        "mistral": [SLIDING_WINDOW] * model.num_layers,
        "gemma2": [SLIDING_WINDOW, None],
        "gemma3": [SLIDING_WINDOW, None],
    }.get(family, [None] * model.num_layers)
    assert windows == expected


@pytest.mark.parametrize("family", FAMILIES)
def test_finish_reproduces_the_layer_output(loaded, family):
    check_finish(*loaded(family))


@pytest.mark.parametrize("family", FAMILIES)
def test_head_and_token_parts_sum_to_the_attention_block(loaded, family):
    model, run, _ = loaded(family)
    check_decomposition(model, run)


@pytest.mark.parametrize("family", WITH_LENS)
def test_the_lens_at_the_last_layer_is_the_models_prediction(loaded, family):
    check_lens(*loaded(family))


@pytest.mark.parametrize("family", sorted(set(FAMILIES) - set(WITH_LENS)))
def test_a_self_stack_without_a_head_has_no_lens(loaded, family):
    model, _, _ = loaded(family)
    with pytest.raises(core.UnsupportedModelError, match="logit lens needs"):
        core.logit_lens(model, TEXT, 1)


@pytest.mark.parametrize("family", MODERN_FAMILIES)
def test_embeddings_are_scaled_as_the_adapter_says(loaded, family):
    model, run, _ = loaded(family)
    architecture = model.architecture
    assert isinstance(architecture, RotaryDecoder)
    ids = core.inference.encode(model, TEXT).inputs["input_ids"][0]
    table = model.model.get_input_embeddings().weight.detach()
    expected = table[ids] * architecture.embedding_scale
    torch.testing.assert_close(run.hidden_states[0], expected, atol=1e-4, rtol=1e-5)
    assert (architecture.embedding_scale == 1.0) is (not family.startswith("gemma"))


def test_gemma2_soft_caps_and_scales_as_configured(loaded):
    model, _, _ = loaded("gemma2")
    layer = model.architecture.layers[0]
    assert layer.softcap == 50.0
    assert layer.scale == pytest.approx(16**-0.5)
    assert model.architecture.layers[0].post_attention_norm() is not None
