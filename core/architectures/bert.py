"""BERT and the architectures that share its layer: RoBERTa, XLM-RoBERTa, CamemBERT, ELECTRA.

Post-LN: attention (separate query, key, value projections), output dense, LayerNorm of the
sum with the residual; then the feed-forward block with its own post-LN. Masked-LM heads:
`cls` (BERT, ELECTRA) or `lm_head` (the RoBERTa family).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from core.architectures.base import Architecture, Layer, module_head


class BertLayer(Layer):
    pre_norm: ClassVar[bool] = False
    attention_path: ClassVar[str] = "attention"
    feed_forward_path: ClassVar[str] = "intermediate"
    query_path: ClassVar[str] = "self.query"
    key_path: ClassVar[str] = "self.key"
    value_path: ClassVar[str] = "self.value"
    output_path: ClassVar[str] = "output.dense"
    norm_path: ClassVar[str] = "attention.output.LayerNorm"
    heads_attribute: ClassVar[str] = "self.num_attention_heads"
    head_dim_attribute: ClassVar[str] = "self.attention_head_size"

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
