"""ALBERT: BERT's post-LN layer with one set of weights shared by every layer.

Layer i runs the shared layer of group int(i / (layers / groups)); only models with one layer
per group are a plain sequence of layers (every released ALBERT).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from core.architectures.base import Architecture, Layer, module_head
from core.errors import UnsupportedModelError


class AlbertLayer(Layer):
    pre_norm: ClassVar[bool] = False
    attention_path: ClassVar[str] = "attention"
    feed_forward_path: ClassVar[str] = "ffn"
    query_path: ClassVar[str] = "query"
    key_path: ClassVar[str] = "key"
    value_path: ClassVar[str] = "value"
    output_path: ClassVar[str] = "dense"
    norm_path: ClassVar[str] = "attention.LayerNorm"
    heads_attribute: ClassVar[str] = "num_attention_heads"
    head_dim_attribute: ClassVar[str] = "attention_head_size"

    def finish(self, context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        layer, x = self.module, self.to_module(x)
        attended = self.attention.LayerNorm(x + self.output_block(self.to_module(context)))
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
