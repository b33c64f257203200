"""T5 encoder blocks: pre-RMSNorm, no biases, no 1/sqrt(d_h) scale, and a relative position
bias that the first block computes and every block adds to its scores.

Its language-model head reads the decoder, so the self stack has no logit lens.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from core.architectures.base import Architecture, Layer
from core.errors import UnsupportedModelError


class T5EncoderBlock(Layer):
    pre_norm: ClassVar[bool] = True
    attention_path: ClassVar[str] = "layer.0.SelfAttention"
    feed_forward_path: ClassVar[str] = "layer.1"
    query_path: ClassVar[str] = "q"
    key_path: ClassVar[str] = "k"
    value_path: ClassVar[str] = "v"
    output_path: ClassVar[str] = "o"
    norm_path: ClassVar[str] = "layer.0.layer_norm"
    norm_centred: ClassVar[bool] = False
    heads_attribute: ClassVar[str] = "n_heads"
    head_dim_attribute: ClassVar[str] = "key_value_proj_dim"

    def __init__(self, architecture, module, index) -> None:
        super().__init__(architecture, module, index)
        if self.attention.is_decoder:
            raise UnsupportedModelError("T5 decoder blocks are not part of the self stack.")

    @property
    def scale(self) -> float:
        return 1.0

    def score_bias(self, n: int) -> torch.Tensor:
        first = self.architecture.layers[0].attention
        with torch.no_grad():
            return first.compute_bias(n, n)[0].to(self.dtype)

    def finish(self, context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        x = self.to_module(x)
        attended = x + self.output_block(self.to_module(context))
        return self.feed_forward(attended).to(self.dtype)


class T5(Architecture):
    name: ClassVar[str] = "t5"
    label: ClassVar[str] = "T5 encoder"
    layer_classes: ClassVar[tuple[str, ...]] = ("T5Block",)
    layer_type = T5EncoderBlock
