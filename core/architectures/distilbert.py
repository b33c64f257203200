"""DistilBERT: a post-LN BERT layer under other names (`TransformerBlock`, `v_lin`, `out_lin`)."""

from __future__ import annotations

from typing import ClassVar

import torch

from core.architectures.base import Architecture, Layer, module_head


class DistilBertLayer(Layer):
    pre_norm: ClassVar[bool] = False
    attention_path: ClassVar[str] = "attention"
    feed_forward_path: ClassVar[str] = "ffn"
    query_path: ClassVar[str] = "q_lin"
    key_path: ClassVar[str] = "k_lin"
    value_path: ClassVar[str] = "v_lin"
    output_path: ClassVar[str] = "out_lin"
    norm_path: ClassVar[str] = "sa_layer_norm"
    heads_attribute: ClassVar[str] = "n_heads"

    @property
    def head_dim(self) -> int:
        return self.attention.dim // self.num_heads

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
