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

from core.architectures.base import Architecture, Layer, apply_rotary, module_head


class RotaryDecoderLayer(Layer):
    pre_norm: ClassVar[bool] = True
    attention_path: ClassVar[str] = "self_attn"
    feed_forward_path: ClassVar[str] = "mlp"
    norm_path: ClassVar[str] = "input_layernorm"
    norm_centred: ClassVar[bool] = False
    window_from_config: ClassVar[bool] = False
    """True when one window from the config holds for every layer (Mistral, Phi-3); else each
    attention module carries its own (`sliding_window`, set per layer by Qwen2/3 and Gemma)."""

    @property
    def num_heads(self) -> int:
        return self.architecture.config.num_attention_heads

    @property
    def num_kv_heads(self) -> int:
        return self.architecture.config.num_key_value_heads

    def queries_keys(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        queries, keys = super().queries_keys(x)
        attention = self.attention
        if hasattr(attention, "q_norm"):  # Qwen3, Gemma3: an RMSNorm over each head's vector
            queries = self.norm_of(attention.q_norm)(queries)
            keys = self.norm_of(attention.k_norm)(keys)
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
        owner = self.architecture.config if self.window_from_config else self.attention
        return getattr(owner, "sliding_window", None)

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
