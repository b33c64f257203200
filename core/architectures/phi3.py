"""Phi-3: Llama's layer with fused projections: `qkv_proj` is [query | key | value] (H, K and K
heads of width d_h) and the feed-forward's `gate_up_proj` is [gate | up] (run by the model's own
`mlp`). Its window, when configured, holds for every layer."""

from __future__ import annotations

from typing import ClassVar

import torch

from core.architectures.base import Projection, linear
from core.architectures.rotary import RotaryDecoder, RotaryDecoderLayer


class Phi3Layer(RotaryDecoderLayer):
    window_from_config: ClassVar[bool] = True

    def _rows(self, part: int) -> slice:
        """Output rows of `qkv_proj` for part 0 (query), 1 (key) or 2 (value)."""
        queries, kv = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        start = (0, queries, queries + kv)[part]
        return slice(start, start + (queries if part == 0 else kv))

    def value_projection(self) -> Projection:
        return Projection.of_linear(self.attention.qkv_proj, self.dtype, self._rows(2))

    def project_queries_keys(self, read: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fused = linear(self.attention.qkv_proj, read)
        return fused[..., self._rows(0)], fused[..., self._rows(1)]


class Phi3(RotaryDecoder):
    name: ClassVar[str] = "phi3"
    label: ClassVar[str] = "Phi-3"
    layer_classes: ClassVar[tuple[str, ...]] = ("Phi3DecoderLayer",)
    layer_type = Phi3Layer
