"""Gemma 2: the rotary grouped-query decoder with four norms per layer and soft-caps.

* RMSNorms scale by (1 + weight); the embeddings are multiplied by sqrt(hidden size).
* Pre- and post-norms around both blocks:
  h = x + post_attention_layernorm(o_proj(attention(input_layernorm(x))));
  out = h + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h))).
  The post-attention norm acts on the attention output alone; the contribution methods
  linearise it at the actual output (`Layer.attention_terms`).
* Scores are scaled by query_pre_attn_scalar^-1/2, not d_h^-1/2, then soft-capped:
  50 · tanh(s / 50) (`attn_logit_softcapping`); the final logits are soft-capped too
  (`final_logit_softcapping`).
* Layers alternate a sliding window and global attention (`config.layer_types`).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from core.architectures.base import Norm, module_head
from core.architectures.rotary import RotaryDecoder, RotaryDecoderLayer


class Gemma2Layer(RotaryDecoderLayer):
    norm_gain_offset: ClassVar[float] = 1.0

    def post_attention_norm(self) -> Norm | None:
        return self.norm_of(self.module.post_attention_layernorm)

    @property
    def softcap(self) -> float | None:
        return self.attention.attn_logit_softcapping

    def output_block(self, context: torch.Tensor) -> torch.Tensor:
        return self.module.post_attention_layernorm(self.attention.o_proj(context))

    def finish(self, context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        layer, x = self.module, self.to_module(x)
        attended = x + self.output_block(self.to_module(context))
        forward = layer.post_feedforward_layernorm(
            layer.mlp(layer.pre_feedforward_layernorm(attended))
        )
        return (attended + forward).to(self.dtype)


class Gemma2(RotaryDecoder):
    name: ClassVar[str] = "gemma2"
    label: ClassVar[str] = "Gemma 2"
    layer_classes: ClassVar[tuple[str, ...]] = ("Gemma2DecoderLayer",)
    layer_type = Gemma2Layer

    @property
    def embedding_scale(self) -> float:
        return self.config.hidden_size**0.5

    def unembedding(self):
        head = getattr(self.network, "lm_head", None)
        if head is None:
            return None
        cap = getattr(self.config, "final_logit_softcapping", None)
        logits = module_head(head, head)
        if cap is None:
            return logits
        return lambda hidden: cap * torch.tanh(logits(hidden) / cap)
