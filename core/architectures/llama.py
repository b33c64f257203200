"""Llama (2, 3.x): the rotary grouped-query decoder as `RotaryDecoder` describes it."""

from __future__ import annotations

from typing import ClassVar

from core.architectures.rotary import RotaryDecoder


class Llama(RotaryDecoder):
    name: ClassVar[str] = "llama"
    label: ClassVar[str] = "Llama"
    layer_classes: ClassVar[tuple[str, ...]] = ("LlamaDecoderLayer",)
