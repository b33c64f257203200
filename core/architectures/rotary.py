"""The common base of rotary, grouped-query, pre-RMSNorm decoders (Llama and its descendants).

One layer: h = x + o_proj(attention(input_layernorm(x)));
out = h + mlp(post_attention_layernorm(h)).
Queries and keys are projected, optionally normed per head (`q_norm`, `k_norm`: Qwen3, Gemma3),
then rotated by their positions; query head h reads key-value head h // (H / K). The model's
final norm (`norm`) comes before `lm_head`. Each architecture module subclasses these two
classes and changes only what differs (Mistral's window, Phi3's fused projections, Gemma's
extra norms, scale and soft-caps).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from core.architectures.base import (
    Architecture,
    Layer,
    Norm,
    Projection,
    apply_rotary,
    linear,
    module_head,
    split_heads,
)


class RotaryDecoderLayer(Layer):
    pre_norm: ClassVar[bool] = True
    norm_gain_offset: ClassVar[float] = 0.0
    """Gemma's RMSNorms scale by (1 + weight)."""

    @property
    def attention(self) -> torch.nn.Module:
        return self.module.self_attn

    @property
    def feed_forward(self) -> torch.nn.Module:
        return self.module.mlp

    @property
    def num_heads(self) -> int:
        return self.architecture.config.num_attention_heads

    @property
    def num_kv_heads(self) -> int:
        return self.architecture.config.num_key_value_heads

    @property
    def head_dim(self) -> int:
        return self.attention.head_dim

    def rms_norm(self, module: torch.nn.Module) -> Norm:
        return Norm.of(module, self.dtype, centred=False, gain_offset=self.norm_gain_offset)

    def value_projection(self) -> Projection:
        return Projection.of_linear(self.attention.v_proj, self.dtype)

    def output_projection(self) -> Projection:
        return Projection.of_linear(self.attention.o_proj, self.dtype)

    def norm(self) -> Norm:
        return self.rms_norm(self.module.input_layernorm)

    def project_queries_keys(self, read: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries `[n, H*d_h]` and keys `[n, K*d_h]` of the normed input, before rotary."""
        return linear(self.attention.q_proj, read), linear(self.attention.k_proj, read)

    def queries_keys(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        queries, keys = self.project_queries_keys(self.norm()(x))
        queries, keys = split_heads(queries, self.num_heads), split_heads(keys, self.num_kv_heads)
        for name, role in (("q_norm", "queries"), ("k_norm", "keys")):
            module = getattr(self.attention, name, None)
            if module is not None:  # Qwen3, Gemma3: an RMSNorm over each head's vector
                normed = self.rms_norm(module)(queries if role == "queries" else keys)
                queries, keys = (normed, keys) if role == "queries" else (queries, normed)
        cos, sin = self.architecture.rotary(self, x)
        return apply_rotary(queries, cos, sin), apply_rotary(keys, cos, sin)

    @property
    def scale(self) -> float:
        return float(self.attention.scaling)

    @property
    def causal(self) -> bool:
        return bool(getattr(self.attention, "is_causal", True))

    @property
    def window(self) -> int | None:
        """The attention module's own window (Qwen2/3 and Gemma set it per layer)."""
        return getattr(self.attention, "sliding_window", None)

    def output_block(self, context: torch.Tensor) -> torch.Tensor:
        return self.attention.o_proj(context)

    def finish(self, context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        layer, x = self.module, self.to_module(x)
        attended = x + self.output_block(self.to_module(context))
        return (attended + layer.mlp(layer.post_attention_layernorm(attended))).to(self.dtype)


class RotaryDecoder(Architecture):
    """A Llama-like decoder; subclasses name their layer classes."""

    layer_type = RotaryDecoderLayer

    @property
    def base(self) -> torch.nn.Module:
        return self.network.base_model

    def rotary(self, layer: Layer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin `[n, r]` for positions 0..n-1 of `x` `[n, d]`, in `x`'s dtype."""
        positions = torch.arange(x.shape[0], device=x.device)[None]
        cos, sin = self.base.rotary_emb(x[None], positions)
        return cos[0].to(x.dtype), sin[0].to(x.dtype)

    def final_norm(self) -> torch.nn.Module | None:
        return self.base.norm

    def unembedding(self):
        head = getattr(self.network, "lm_head", None)
        return None if head is None else module_head(head, head)
