"""Encoder-decoder families (BART, T5, Marian): three stacks from one pass."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from core.errors import UnsupportedModelError
from core.families.base import CROSS, DECODER_SELF, SELF, Family, Passes, StackSpec
from core.kinds import ModelKind


class EncoderDecoderFamily(Family):
    """A source text read by an encoder, a target read by a decoder that attends to both."""

    kind: ClassVar[ModelKind] = ModelKind.ENCODER_DECODER
    auto_class_name: ClassVar[str] = "AutoModelForSeq2SeqLM"
    stacks: ClassVar[tuple[StackSpec, ...]] = (
        StackSpec(
            SELF,
            "Encoder",
            "Encoder self-attention: source tokens attend to source tokens.",
            causal=False,
            square=True,
        ),
        StackSpec(
            DECODER_SELF,
            "Decoder",
            "Decoder self-attention: each target token attends to itself and earlier target "
            "tokens.",
            causal=True,
            square=True,
        ),
        StackSpec(
            CROSS,
            "Cross",
            "Cross attention: target tokens (rows) attend to source tokens (columns).",
            causal=False,
            square=False,
        ),
    )
    layer_attributes: ClassVar[tuple[str, ...]] = (
        "encoder_layers",
        "num_layers",
        "num_hidden_layers",
    )
    head_attributes: ClassVar[tuple[str, ...]] = (
        "encoder_attention_heads",
        "num_heads",
        "num_attention_heads",
    )

    def claims_architecture(self, architecture: str) -> bool:
        return architecture.endswith("ForConditionalGeneration")

    def claims_config(self, config: Any) -> bool:
        return bool(getattr(config, "is_encoder_decoder", False))

    def run(
        self,
        network: torch.nn.Module,
        inputs: Mapping[str, torch.Tensor],
        decoder_input_ids: torch.Tensor | None = None,
        **options: Any,
    ) -> Passes:
        if decoder_input_ids is None and "decoder_inputs_embeds" not in options:
            # The encoder alone (neuron view, methods of the "self" stack).
            output = network.get_encoder()(**inputs, output_attentions=True, **options)
            return Passes({SELF: output.attentions}, None, output)
        # The decoder's input as ids, or as embeddings in `options` (gradient methods).
        decoder = {} if decoder_input_ids is None else {"decoder_input_ids": decoder_input_ids}
        output = network(**inputs, **decoder, output_attentions=True, **options)
        return Passes(
            {
                SELF: output.encoder_attentions,
                DECODER_SELF: output.decoder_attentions,
                CROSS: output.cross_attentions,
            },
            getattr(output, "logits", None),
            output,
        )

    def self_attention_root(self, network: torch.nn.Module) -> torch.nn.Module:
        if not hasattr(network, "get_encoder"):
            raise UnsupportedModelError("This encoder-decoder model does not expose its encoder.")
        return network.get_encoder()
