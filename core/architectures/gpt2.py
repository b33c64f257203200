"""GPT-2: pre-LN causal blocks with one fused query-key-value `Conv1D` (`c_attn`).

`Conv1D` stores `[in, out]` and computes x W + b; `c_attn`'s output is [query | key | value].
The final norm `ln_f` comes before the language-model head.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from core.architectures.base import (
    Architecture,
    Layer,
    Projection,
    cast,
    module_head,
)
from core.errors import UnsupportedModelError


class Gpt2Layer(Layer):
    pre_norm: ClassVar[bool] = True
    attention_path: ClassVar[str] = "attn"
    feed_forward_path: ClassVar[str] = "mlp"
    output_path: ClassVar[str] = "c_proj"
    norm_path: ClassVar[str] = "ln_1"

    def __init__(self, architecture, module, index) -> None:
        super().__init__(architecture, module, index)
        if hasattr(module, "crossattention"):
            raise UnsupportedModelError("GPT-2 blocks with cross-attention are not supported.")

    def _fused(self, part: int) -> Projection:
        """Part 0 (query), 1 (key) or 2 (value) of `c_attn`."""
        fused, width = self.attention.c_attn, self.attention.embed_dim
        columns = slice(part * width, (part + 1) * width)
        return Projection(
            cast(fused.weight[:, columns], self.dtype), cast(fused.bias[columns], self.dtype)
        )

    def value_projection(self) -> Projection:
        return self._fused(2)

    def output_projection(self) -> Projection:
        projection = self.attention.c_proj  # a Conv1D too: [in, out] already
        return Projection(cast(projection.weight, self.dtype), cast(projection.bias, self.dtype))

    def project_queries_keys(self, read: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._fused(0)(read), self._fused(1)(read)

    @property
    def scale(self) -> float:
        attention = self.attention
        scale = 1.0 / math.sqrt(self.head_dim) if attention.scale_attn_weights else 1.0
        if attention.scale_attn_by_inverse_layer_idx:
            scale /= attention.layer_idx + 1
        return scale

    @property
    def causal(self) -> bool:
        return True

    def finish(self, context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        block, x = self.module, self.to_module(x)
        attended = self.output_block(self.to_module(context)) + x
        return (attended + block.mlp(block.ln_2(attended))).to(self.dtype)


class Gpt2(Architecture):
    name: ClassVar[str] = "gpt2"
    label: ClassVar[str] = "GPT-2"
    layer_classes: ClassVar[tuple[str, ...]] = ("GPT2Block",)
    layer_type = Gpt2Layer

    def final_norm(self) -> torch.nn.Module | None:
        return self.network.base_model.ln_f

    def unembedding(self):
        head = getattr(self.network, "lm_head", None)
        return None if head is None else module_head(head, head)
