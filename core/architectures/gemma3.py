"""Gemma 3 (text): Gemma 2's layer with RMSNorms on each head's query and key (`q_norm`,
`k_norm`, scaled by 1 + weight) and separate rotary embeddings for windowed and global layers.

Its attention modules carry `attn_logit_softcapping` but do not apply it (the model's attention
call passes no soft-cap), so the adapter reports none; the final logits are soft-capped.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from core.architectures.base import Layer
from core.architectures.gemma2 import Gemma2, Gemma2Layer


class Gemma3Layer(Gemma2Layer):
    @property
    def softcap(self) -> float | None:
        return None


class Gemma3(Gemma2):
    name: ClassVar[str] = "gemma3"
    label: ClassVar[str] = "Gemma 3"
    layer_classes: ClassVar[tuple[str, ...]] = ("Gemma3DecoderLayer",)
    layer_type = Gemma3Layer

    def rotary(self, layer: Layer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(x.shape[0], device=x.device)[None]
        layer_type = self.config.layer_types[layer.index]
        cos, sin = self.base.rotary_emb(x[None], positions, layer_type)
        return cos[0].to(x.dtype), sin[0].to(x.dtype)
