"""Qwen2 / Qwen2.5: Llama's layer with biases on the query, key and value projections and, when
configured, a sliding window on some layers (read from each attention module)."""

from __future__ import annotations

from typing import ClassVar

from core.architectures.rotary import RotaryDecoder


class Qwen2(RotaryDecoder):
    name: ClassVar[str] = "qwen2"
    label: ClassVar[str] = "Qwen2"
    layer_classes: ClassVar[tuple[str, ...]] = ("Qwen2DecoderLayer",)
