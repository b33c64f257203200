"""BERT and the architectures that share its layer: RoBERTa, XLM-RoBERTa, CamemBERT, ELECTRA.

Post-LN: attention (separate query, key, value projections), output dense, LayerNorm of the
sum with the residual; then the feed-forward block with its own post-LN. Masked-LM heads:
`cls` (BERT, ELECTRA's `generator_lm_head` is not read) or `lm_head` (the RoBERTa family).
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


class BertLayer(Layer):
    pre_norm: ClassVar[bool] = False

    @property
    def attention(self) -> torch.nn.Module:
        return self.module.attention

    @property
    def feed_forward(self) -> torch.nn.Module:
        return self.module.intermediate

    @property
    def num_heads(self) -> int:
        return self.attention.self.num_attention_heads

    @property
    def head_dim(self) -> int:
        return self.attention.self.attention_head_size

    def value_projection(self) -> Projection:
        return Projection.of_linear(self.attention.self.value, self.dtype)

    def output_projection(self) -> Projection:
        return Projection.of_linear(self.attention.output.dense, self.dtype)

    def norm(self) -> Norm:
        return Norm.of(self.attention.output.LayerNorm, self.dtype, centred=True)

    def queries_keys(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inner = self.attention.self
        return split_heads(linear(inner.query, x), self.num_heads), split_heads(
            linear(inner.key, x), self.num_heads
        )

    def output_block(self, context: torch.Tensor) -> torch.Tensor:
        return self.attention.output.dense(context)

    def finish(self, context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        layer, x = self.module, self.to_module(x)
        attended = self.attention.output.LayerNorm(self.output_block(self.to_module(context)) + x)
        return layer.output(layer.intermediate(attended), attended).to(self.dtype)


class Bert(Architecture):
    name: ClassVar[str] = "bert"
    label: ClassVar[str] = "BERT"
    layer_classes: ClassVar[tuple[str, ...]] = (
        "BertLayer",
        "RobertaLayer",
        "XLMRobertaLayer",
        "CamembertLayer",
        "ElectraLayer",
    )
    layer_type = BertLayer

    def unembedding(self):
        network = self.network
        if not type(network).__name__.endswith("ForMaskedLM"):
            return None
        head = getattr(network, "cls", None) or getattr(network, "lm_head", None)
        return None if head is None else module_head(head, head)
