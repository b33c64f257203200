"""Qwen3: Qwen2's layer without projection biases, with RMSNorms on each head's query and key
(`q_norm`, `k_norm`, before rotary; `RotaryDecoderLayer.queries_keys` applies them)."""

from __future__ import annotations

from typing import ClassVar

from core.architectures.rotary import RotaryDecoder


class Qwen3(RotaryDecoder):
    name: ClassVar[str] = "qwen3"
    label: ClassVar[str] = "Qwen3"
    layer_classes: ClassVar[tuple[str, ...]] = ("Qwen3DecoderLayer",)
