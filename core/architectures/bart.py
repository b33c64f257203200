"""BART's encoder (the self stack of an encoder-decoder): post-LN layers, separate projections.

Its language-model head reads the decoder, so the self stack has no logit lens.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from core.architectures.base import Architecture, Layer, Norm, Projection, linear, split_heads


class BartEncoderLayer(Layer):
    pre_norm: ClassVar[bool] = False

    @property
    def attention(self) -> torch.nn.Module:
        return self.module.self_attn

    @property
    def feed_forward(self) -> torch.nn.Module:
        return self.module.fc1

    @property
    def num_heads(self) -> int:
        return self.attention.num_heads

    @property
    def head_dim(self) -> int:
        return self.attention.head_dim

    def value_projection(self) -> Projection:
        return Projection.of_linear(self.attention.v_proj, self.dtype)

    def output_projection(self) -> Projection:
        return Projection.of_linear(self.attention.out_proj, self.dtype)

    def norm(self) -> Norm:
        return Norm.of(self.module.self_attn_layer_norm, self.dtype, centred=True)

    def queries_keys(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attention = self.attention
        return (
            split_heads(linear(attention.q_proj, x), self.num_heads),
            split_heads(linear(attention.k_proj, x), self.num_heads),
        )

    @property
    def scale(self) -> float:
        return self.attention.scaling

    def output_block(self, context: torch.Tensor) -> torch.Tensor:
        return self.attention.out_proj(context)

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
