"""Mistral: Llama's layer with one sliding window for every layer, from the config."""

from __future__ import annotations

from typing import ClassVar

from core.architectures.rotary import RotaryDecoder, RotaryDecoderLayer


class MistralLayer(RotaryDecoderLayer):
    window_from_config: ClassVar[bool] = True


class Mistral(RotaryDecoder):
    name: ClassVar[str] = "mistral"
    label: ClassVar[str] = "Mistral"
    layer_classes: ClassVar[tuple[str, ...]] = ("MistralDecoderLayer",)
    layer_type = MistralLayer
