"""The family adapters: detection from configs, stacks, and the one guarded forward pass."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig

import core
from core.families import (
    CROSS,
    DECODER_SELF,
    FAMILIES,
    SELF,
    STACKS,
    CausalLMFamily,
    EncoderDecoderFamily,
    EncoderFamily,
    MaskedLMFamily,
    detect_family,
    family_for_kind,
)
from core.inference import encode, forward, forward_with_grad
from tests.tiny_models import (
    CAUSAL_FAMILIES,
    ENCODER_FAMILIES,
    MLM_FAMILIES,
    MODERN_FAMILIES,
    SEQ2SEQ_FAMILIES,
)

EXPECTED_KIND = {
    **dict.fromkeys(MLM_FAMILIES, core.ModelKind.MASKED_LM),
    **dict.fromkeys(ENCODER_FAMILIES, core.ModelKind.ENCODER),
    **dict.fromkeys((*CAUSAL_FAMILIES, *MODERN_FAMILIES), core.ModelKind.CAUSAL_LM),
    **dict.fromkeys(SEQ2SEQ_FAMILIES, core.ModelKind.ENCODER_DECODER),
}


def test_every_kind_has_exactly_one_family():
    kinds = [family.kind for family in FAMILIES]
    assert sorted(kinds) == sorted(core.ModelKind)
    for family in FAMILIES:
        assert family_for_kind(family.kind) is family


def test_detects_each_tiny_family_from_its_config(any_family, tiny_model_path):
    config = AutoConfig.from_pretrained(tiny_model_path(any_family))
    assert detect_family(config).kind is EXPECTED_KIND[any_family]


@pytest.mark.parametrize(
    ("architectures", "flags", "expected"),
    [
        (["BertForMaskedLM"], {}, MaskedLMFamily),
        (["BertForPreTraining"], {}, MaskedLMFamily),
        (["GPT2LMHeadModel"], {}, CausalLMFamily),
        (["LlamaForCausalLM"], {}, CausalLMFamily),
        # "…WithLMHeadModel" (e.g. old XLM) is not a causal LM head.
        (["XLMWithLMHeadModel"], {}, EncoderFamily),
        (["BartForConditionalGeneration"], {}, EncoderDecoderFamily),
        (["BertModel"], {}, EncoderFamily),
        (["BertModel"], {"is_encoder_decoder": True}, EncoderDecoderFamily),
        ([], {"is_decoder": True}, CausalLMFamily),
        # The first architecture that a family claims decides.
        (["BertModel", "BertForMaskedLM"], {}, MaskedLMFamily),
    ],
)
def test_detection_rules(architectures, flags, expected):
    config = AutoConfig.for_model("bert", architectures=architectures, **flags)
    assert type(detect_family(config)) is expected


def test_config_without_architectures_falls_back_to_its_model_type():
    assert type(detect_family(AutoConfig.for_model("bert"))) is MaskedLMFamily
    assert type(detect_family(AutoConfig.for_model("gpt2"))) is CausalLMFamily


def test_stack_specs_name_what_they_are():
    assert STACKS == (SELF, DECODER_SELF, CROSS)
    for family in FAMILIES:
        names = [spec.name for spec in family.stacks]
        assert names[0] == SELF
        assert set(names) <= set(STACKS)
    assert CausalLMFamily.stacks[0].causal
    assert not MaskedLMFamily.stacks[0].causal
    seq2seq = family_for_kind(core.ModelKind.ENCODER_DECODER)
    assert seq2seq.stack_spec(DECODER_SELF).causal
    assert not seq2seq.stack_spec(CROSS).square
    with pytest.raises(core.UnsupportedModelError, match="cross"):
        family_for_kind(core.ModelKind.ENCODER).stack_spec(CROSS)


def test_layer_and_head_counts_come_from_the_family(any_family, tiny_model_path):
    model = core.load_model(str(tiny_model_path(any_family)))
    config = AutoConfig.from_pretrained(tiny_model_path(any_family))
    assert model.family.kind is model.kind
    assert model.num_layers == model.family.layer_count(config)
    assert model.num_heads == model.family.head_count(config)


def test_forward_yields_the_family_stacks(any_family, tiny_model_path):
    model = core.load_model(str(tiny_model_path(any_family)))
    result = core.run_attention(model, "The cat sat on the mat.", target_text="A cat.")
    assert result.stacks == tuple(spec.name for spec in model.family.stacks)
    for name in result.stacks:
        attentions, queries, keys = result.stack(name)
        assert attentions.shape == (model.num_layers, model.num_heads, len(queries), len(keys))
        assert result.is_causal(name) is model.family.stack_spec(name).causal


def test_a_failing_forward_is_a_clear_error_for_every_family(any_family, tiny_model_path):
    model = core.load_model(str(tiny_model_path(any_family)))
    encoded = encode(model, "The cat sat on the mat.")
    broken = {**encoded.inputs, "input_ids": encoded.inputs["input_ids"] + 10**7}
    with pytest.raises(core.UnsupportedModelError, match="could not run on this text"):
        forward(model, broken)


def test_forward_with_grad_keeps_attention_in_the_graph(tiny_model_path):
    model = core.load_model(str(tiny_model_path("bert")))
    encoded = encode(model, "The cat sat on the mat.")
    passes, embeddings = forward_with_grad(model, encoded.inputs)
    attention = passes.attentions[SELF][-1]
    (gradient,) = torch.autograd.grad(attention.sum() + passes.logits.sum(), [embeddings])
    assert gradient.shape == embeddings.shape and torch.isfinite(gradient).all()
    # The shared model stays frozen: no parameter ever asks for gradients.
    assert not any(p.requires_grad for p in model.model.parameters())
    # Same weights as the inference pass.
    torch.testing.assert_close(
        attention[0].detach(), torch.from_numpy(forward(model, encoded.inputs).attentions[-1])
    )


class _SentenceEncoderFamily(EncoderFamily):
    """An encoder-kind family of its own, as the recipe for a new family builds one."""

    def claims_architecture(self, architecture: str) -> bool:
        return architecture == "BertModel"


def test_an_encoder_kind_family_is_detected_and_stored(monkeypatch, tiny_model_path):
    import core.families

    custom = _SentenceEncoderFamily()
    monkeypatch.setattr(core.families, "FAMILIES", (custom, *FAMILIES))
    config = AutoConfig.for_model("bert", architectures=["BertModel"])
    assert detect_family(config) is custom
    model = core.load_model(str(tiny_model_path("bert-encoder")))
    # The family found at load is the one the model keeps, not the default of its kind.
    assert model.family is custom and model.kind is core.ModelKind.ENCODER
    assert family_for_kind(core.ModelKind.ENCODER) is not custom


def test_the_loaded_model_keeps_its_family_and_architecture(tiny_model_path):
    model = core.load_model(str(tiny_model_path("bert")))
    assert type(model.family) is MaskedLMFamily
    assert type(model.architecture).__name__ == "Bert"
