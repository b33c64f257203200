"""BART's encoder (the self stack of an encoder-decoder): post-LN layers, separate projections.

Its language-model head reads the decoder, so the self stack has no logit lens.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from core.architectures.base import Architecture, Layer


class BartEncoderLayer(Layer):
    pre_norm: ClassVar[bool] = False
    attention_path: ClassVar[str] = "self_attn"
    feed_forward_path: ClassVar[str] = "fc1"
    output_path: ClassVar[str] = "out_proj"
    norm_path: ClassVar[str] = "self_attn_layer_norm"

    @property
    def scale(self) -> float:
        return self.attention.scaling

    def finish(self, context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        layer, x = self.module, self.to_module(x)
        attended = layer.self_attn_layer_norm(x + self.output_block(self.to_module(context)))
        forward = layer.fc2(layer.activation_fn(layer.fc1(attended)))
        return layer.final_layer_norm(attended + forward).to(self.dtype)


class Bart(Architecture):
    name: ClassVar[str] = "bart"
    label: ClassVar[str] = "BART encoder"
    layer_classes: ClassVar[tuple[str, ...]] = ("BartEncoderLayer",)
    layer_type = BartEncoderLayer
