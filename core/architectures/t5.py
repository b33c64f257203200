"""T5 / mT5 encoder blocks: pre-RMSNorm, no biases, no 1/sqrt(d_h) scale, and a relative
position bias that the first block computes and every block adds to its scores.

Its language-model head reads the decoder, so the self stack has no logit lens.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from core.architectures.base import Architecture, Layer, Norm, Projection, linear, split_heads
from core.errors import UnsupportedModelError


class T5EncoderBlock(Layer):
    pre_norm: ClassVar[bool] = True

    def __init__(self, architecture, module, index) -> None:
        super().__init__(architecture, module, index)
        if self.attention.is_decoder:
            raise UnsupportedModelError("T5 decoder blocks are not part of the self stack.")

    @property
    def attention(self) -> torch.nn.Module:
        return self.module.layer[0].SelfAttention

    @property
    def feed_forward(self) -> torch.nn.Module:
        return self.module.layer[-1]

    @property
    def num_heads(self) -> int:
        return self.attention.n_heads

    @property
    def head_dim(self) -> int:
        return self.attention.key_value_proj_dim

    def value_projection(self) -> Projection:
        return Projection.of_linear(self.attention.v, self.dtype)

    def output_projection(self) -> Projection:
        return Projection.of_linear(self.attention.o, self.dtype)

    def norm(self) -> Norm:
        return Norm.of(self.module.layer[0].layer_norm, self.dtype, centred=False)

    def queries_keys(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        read, attention = self.norm()(x), self.attention
        return (
            split_heads(linear(attention.q, read), self.num_heads),
            split_heads(linear(attention.k, read), self.num_heads),
        )

    @property
    def scale(self) -> float:
        return 1.0

    def score_bias(self, n: int) -> torch.Tensor:
        first = self.architecture.layers[0].attention
        with torch.no_grad():
            return first.compute_bias(n, n)[0].to(self.dtype)

    def output_block(self, context: torch.Tensor) -> torch.Tensor:
        return self.attention.o(context)

    def finish(self, context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        x = self.to_module(x)
        attended = x + self.output_block(self.to_module(context))
        return self.feed_forward(attended).to(self.dtype)


class T5(Architecture):
    name: ClassVar[str] = "t5"
    label: ClassVar[str] = "T5 encoder"
    layer_classes: ClassVar[tuple[str, ...]] = ("T5Block",)
    layer_type = T5EncoderBlock
