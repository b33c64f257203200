"""ALBERT: BERT's post-LN layer with one set of weights shared by every layer.

Layer i runs the shared layer of group int(i / (layers / groups)); only models with one layer
per group are a plain sequence of layers (every released ALBERT).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from core.architectures.base import (
    Architecture,
    Layer,
    Norm,
    Projection,
    linear,
    module_head,
    split_heads,
)
from core.errors import UnsupportedModelError


class AlbertLayer(Layer):
    pre_norm: ClassVar[bool] = False

    @property
    def attention(self) -> torch.nn.Module:
        return self.module.attention

    @property
    def feed_forward(self) -> torch.nn.Module:
        return self.module.ffn

    @property
    def num_heads(self) -> int:
        return self.attention.num_attention_heads

    @property
    def head_dim(self) -> int:
        return self.attention.attention_head_size

    def value_projection(self) -> Projection:
        return Projection.of_linear(self.attention.value, self.dtype)

    def output_projection(self) -> Projection:
        return Projection.of_linear(self.attention.dense, self.dtype)

    def norm(self) -> Norm:
        return Norm.of(self.attention.LayerNorm, self.dtype, centred=True)

    def queries_keys(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attention = self.attention
        return split_heads(linear(attention.query, x), self.num_heads), split_heads(
            linear(attention.key, x), self.num_heads
        )

    def output_block(self, context: torch.Tensor) -> torch.Tensor:
        return self.attention.dense(context)

    def finish(self, context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        layer, attention, x = self.module, self.attention, self.to_module(x)
        attended = attention.LayerNorm(x + self.output_block(self.to_module(context)))
        return layer.full_layer_layer_norm(layer.ff_chunk(attended) + attended).to(self.dtype)


class Albert(Architecture):
    name: ClassVar[str] = "albert"
    label: ClassVar[str] = "ALBERT"
    layer_classes: ClassVar[tuple[str, ...]] = ("AlbertLayer",)
    layer_type = AlbertLayer

    def layer_modules(self) -> list[torch.nn.Module]:
        shared = super().layer_modules()
        config = self.config
        if config.inner_group_num != 1:
            raise UnsupportedModelError(
                "ALBERT models with several layers per group are not supported."
            )
        count, groups = config.num_hidden_layers, config.num_hidden_groups
        return [shared[int(i / (count / groups))] for i in range(count)]

    def unembedding(self):
        head = getattr(self.network, "predictions", None)
        return None if head is None else module_head(head, head)
