"""DistilBERT: a post-LN BERT layer under other names (`TransformerBlock`, `v_lin`, `out_lin`)."""

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


class DistilBertLayer(Layer):
    pre_norm: ClassVar[bool] = False

    @property
    def attention(self) -> torch.nn.Module:
        return self.module.attention

    @property
    def feed_forward(self) -> torch.nn.Module:
        return self.module.ffn

    @property
    def num_heads(self) -> int:
        return self.attention.n_heads

    @property
    def head_dim(self) -> int:
        return self.attention.dim // self.num_heads

    def value_projection(self) -> Projection:
        return Projection.of_linear(self.attention.v_lin, self.dtype)

    def output_projection(self) -> Projection:
        return Projection.of_linear(self.attention.out_lin, self.dtype)

    def norm(self) -> Norm:
        return Norm.of(self.module.sa_layer_norm, self.dtype, centred=True)

    def queries_keys(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attention = self.attention
        return split_heads(linear(attention.q_lin, x), self.num_heads), split_heads(
            linear(attention.k_lin, x), self.num_heads
        )

    def output_block(self, context: torch.Tensor) -> torch.Tensor:
        return self.attention.out_lin(context)

    def finish(self, context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        layer, x = self.module, self.to_module(x)
        attended = layer.sa_layer_norm(self.output_block(self.to_module(context)) + x)
        return layer.output_layer_norm(layer.ffn(attended) + attended).to(self.dtype)


class DistilBert(Architecture):
    name: ClassVar[str] = "distilbert"
    label: ClassVar[str] = "DistilBERT"
    layer_classes: ClassVar[tuple[str, ...]] = ("TransformerBlock",)
    transformers_module: ClassVar[str | None] = "distilbert"
    layer_type = DistilBertLayer

    def unembedding(self):
        network = self.network
        if not hasattr(network, "vocab_projector"):
            return None

        def transform(hidden: torch.Tensor) -> torch.Tensor:
            hidden = network.activation(network.vocab_transform(hidden))
            return network.vocab_projector(network.vocab_layer_norm(hidden))

        return module_head(transform, network.vocab_projector)
