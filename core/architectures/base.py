"""The interface every architecture adapter implements (in the spirit of the LLM Transparency
Tool's `TransparentLlm`): what the model-reading methods need to know about one architecture.

A model has two independent axes. Its *kind* (`core.families`) says which head it was saved with
and how one forward pass runs: masked LM, causal LM, encoder, encoder-decoder. Its
*architecture* (this package) says how one layer computes: where the attention and feed-forward
modules are, how queries, keys and values are projected (fused or not, grouped-query or not,
rotary or not, q/k norms), where the norms sit (LayerNorm or RMSNorm, pre or post, extra norms),
the attention scale, masks, soft-caps, and how residual vectors become logits. The contribution
methods, the logit lens and the corpus global view ask an `Architecture`, never a model type.

Conventions. Hidden size `d`; `H` query heads of width `d_h` in `K` key-value groups (`K = H`
without grouped-query attention; query head `h` reads key-value head `h // (H / K)`). One
layer's tensors drop the batch dimension: `x` `[n, d]`. Weights are in "x @ W" form whatever the
module stores (`Projection`: values `[d, K*d_h]`, output `[H*d_h, d]`). Every tensor an adapter
returns is in its *compute dtype*: float32 for float32, float16 and bfloat16 models, float64 for
float64 ones; weights are cast to it. Only `output_block`, `finish` and the lens's head call the
model's own modules, with inputs in the modules' dtype.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from operator import attrgetter
from typing import ClassVar

import torch
import torch.nn.functional as F


def compute_dtype(module: torch.nn.Module) -> torch.dtype:
    """float64 for a float64 module, float32 for every other (half types lose digits)."""
    parameter = next(module.parameters(), None)
    dtype = torch.float32 if parameter is None else parameter.dtype
    return torch.float64 if dtype == torch.float64 else torch.float32


def cast(tensor: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    return None if tensor is None else tensor.detach().to(dtype)


def linear(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`module(x)` for an `nn.Linear`, computed in `x`'s dtype from cast weights."""
    return F.linear(x, module.weight.to(x.dtype), cast(getattr(module, "bias", None), x.dtype))


@dataclass(frozen=True)
class Projection:
    """An affine map in "x @ weight + bias" form: `weight` `[in, out]`, `bias` `[out]` or None."""

    weight: torch.Tensor
    bias: torch.Tensor | None

    @staticmethod
    def of_linear(module: torch.nn.Module, dtype: torch.dtype, rows: slice = slice(None)):
        """An `nn.Linear` (stored `[out, in]`), optionally only the output rows `rows`."""
        bias = getattr(module, "bias", None)
        return Projection(
            module.weight[rows].detach().T.to(dtype),
            cast(None if bias is None else bias[rows], dtype),
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight if self.bias is None else x @ self.weight + self.bias


@dataclass(frozen=True, eq=False)
class Norm:
    """A LayerNorm (`centred`) or RMSNorm as maths, in the compute dtype.

    y = (x − mean(x) if centred) / sqrt(mean of squares + eps) · gain + bias. `gain` is the
    effective scale: the module's weight, or 1 + weight for Gemma's RMSNorm.
    """

    module: torch.nn.Module
    centred: bool
    gain: torch.Tensor
    bias: torch.Tensor | None
    eps: float

    @staticmethod
    def of(module: torch.nn.Module, dtype: torch.dtype, *, centred: bool, gain_offset: float = 0.0):
        eps = getattr(module, "eps", None)
        if eps is None:
            eps = module.variance_epsilon
        gain = module.weight.detach().to(dtype) + gain_offset
        return Norm(module, centred, gain, cast(getattr(module, "bias", None), dtype), float(eps))

    def inverse_scale(self, x: torch.Tensor) -> torch.Tensor:
        """1 / sqrt(var + eps) per row `[...]` (var about the mean if centred, else about 0)."""
        if self.centred:
            x = x - x.mean(dim=-1, keepdim=True)
        return torch.rsqrt(x.pow(2).mean(dim=-1) + self.eps)

    def linear_part(self, x: torch.Tensor) -> torch.Tensor:
        """The norm without its 1/σ and bias: centred (LayerNorm only), times the gain."""
        if self.centred:
            x = x - x.mean(dim=-1, keepdim=True)
        return x * self.gain

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear_part(x) * self.inverse_scale(x)[..., None]
        return out if self.bias is None else out + self.bias


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding of `x` `[heads, n, d_h]` with `cos`, `sin` `[n, r]` (r ≤ d_h:
    partial rotary leaves the last d_h − r dimensions as they are)."""
    width = cos.shape[-1]
    turned, kept = x[..., :width], x[..., width:]
    return torch.cat([turned * cos + rotate_half(turned) * sin, kept], dim=-1)


def split_heads(projected: torch.Tensor, count: int) -> torch.Tensor:
    """`[n, count*d_h]` → `[count, n, d_h]`."""
    return projected.view(projected.shape[0], count, -1).transpose(0, 1)


def module_head(
    function: Callable[[torch.Tensor], torch.Tensor], dtype_of: torch.nn.Module
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A head (`function` of the model's modules) called with inputs in `dtype_of`'s dtype,
    returning logits in the compute dtype."""

    def head(hidden: torch.Tensor) -> torch.Tensor:
        return function(hidden.to(next(dtype_of.parameters()).dtype)).to(compute_dtype(dtype_of))

    return head


class Layer(ABC):
    """One layer of the "self" stack, as the model-reading methods see it.

    Subclasses (one per architecture) say where the layer's modules are, as dotted paths in
    class attributes (`attention_path`, `value_path` …), which the default methods read; an
    architecture whose projections are not plain `nn.Linear` modules (GPT-2's `Conv1D`,
    Phi-3's fused `qkv_proj`) overrides the method instead. `finish` is always its own. The
    maths shared by every architecture (grouped values, per-head outputs, masks, recomputed
    attention) lives here.
    """

    pre_norm: ClassVar[bool]
    """True when `norm` is applied to the attention's input (pre-LN), False when it is applied
    after the residual (post-LN: BERT, DistilBERT, ALBERT, BART)."""
    attention_path: ClassVar[str]
    """The self-attention module, from the layer module (e.g. "self_attn"; a `ModuleList`'s
    items are named by their index: "layer.0.SelfAttention")."""
    feed_forward_path: ClassVar[str]
    """The feed-forward module, from the layer module."""
    query_path: ClassVar[str] = "q_proj"
    key_path: ClassVar[str] = "k_proj"
    value_path: ClassVar[str] = "v_proj"
    output_path: ClassVar[str] = "o_proj"
    """The four `nn.Linear` projections, from the attention module."""
    norm_path: ClassVar[str]
    """The norm `norm()` describes, from the layer module."""
    norm_centred: ClassVar[bool] = True
    """LayerNorm (True) or RMSNorm (False)."""
    norm_gain_offset: ClassVar[float] = 0.0
    """Gemma's RMSNorms scale by (1 + weight)."""
    heads_attribute: ClassVar[str] = "num_heads"
    head_dim_attribute: ClassVar[str] = "head_dim"
    """Attributes (dotted paths) of the attention module holding H and d_h."""

    def __init__(self, architecture: Architecture, module: torch.nn.Module, index: int) -> None:
        self.architecture = architecture
        self.module = module
        self.index = index
        self.dtype = compute_dtype(module)

    def part(self, path: str, within: torch.nn.Module | None = None) -> torch.nn.Module:
        """The submodule at dotted `path` of `within` (the layer module by default)."""
        return attrgetter(path)(self.module if within is None else within)

    # ------------------------------------------------------------------ modules
    @property
    def attention(self) -> torch.nn.Module:
        """The layer's self-attention module (the one that computes the weights)."""
        return self.part(self.attention_path)

    @property
    def feed_forward(self) -> torch.nn.Module:
        """The layer's feed-forward module (MLP)."""
        return self.part(self.feed_forward_path)

    # ------------------------------------------------------------------ shapes
    @property
    def num_heads(self) -> int:
        """H, the query heads."""
        return int(attrgetter(self.heads_attribute)(self.attention))

    @property
    def num_kv_heads(self) -> int:
        """K, the key-value heads (H without grouped-query attention)."""
        return self.num_heads

    @property
    def head_dim(self) -> int:
        """d_h."""
        return int(attrgetter(self.head_dim_attribute)(self.attention))

    # ------------------------------------------------------------------ projections and norms
    def value_projection(self) -> Projection:
        """x (what the attention reads) → values of every key-value head `[d, K*d_h]`."""
        return Projection.of_linear(self.part(self.value_path, self.attention), self.dtype)

    def output_projection(self) -> Projection:
        """Heads' weighted values concatenated → attention block output `[H*d_h, d]`."""
        return Projection.of_linear(self.part(self.output_path, self.attention), self.dtype)

    def norm(self) -> Norm:
        """The norm around the attention block: before it (`pre_norm`) or after the residual."""
        return self.norm_of(self.part(self.norm_path))

    def norm_of(self, module: torch.nn.Module) -> Norm:
        """A norm module of this layer, as maths (this architecture's kind of norm)."""
        return Norm.of(
            module, self.dtype, centred=self.norm_centred, gain_offset=self.norm_gain_offset
        )

    def post_attention_norm(self) -> Norm | None:
        """A norm applied to the attention block's output alone, before the residual (Gemma)."""
        return None

    def project_queries_keys(self, read: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries `[n, H*d_h]` and keys `[n, K*d_h]` of what the attention reads."""
        attention = self.attention
        return (
            linear(self.part(self.query_path, attention), read),
            linear(self.part(self.key_path, attention), read),
        )

    def queries_keys(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries `[H, n, d_h]` and keys `[K, n, d_h]` as the dot product sees them (after
        q/k norms and rotary positions 0..n-1), from the layer's input `x` `[n, d]`."""
        queries, keys = self.project_queries_keys(self.attention_input(x))
        return split_heads(queries, self.num_heads), split_heads(keys, self.num_kv_heads)

    # ------------------------------------------------------------------ the attention's rules
    @property
    def scale(self) -> float:
        """What q·k is multiplied by before the soft-cap and softmax."""
        return 1.0 / math.sqrt(self.head_dim)

    @property
    def softcap(self) -> float | None:
        """Logits become softcap · tanh(logit / softcap) before the softmax (Gemma 2)."""
        return None

    @property
    def causal(self) -> bool:
        return False

    @property
    def window(self) -> int | None:
        """Sliding window: query i sees keys j with i − window < j ≤ i; None when global."""
        return None

    def score_bias(self, n: int) -> torch.Tensor | None:
        """An additive bias on the scores `[H, n, n]` (T5's relative positions), or None."""
        return None

    def output_block(self, context: torch.Tensor) -> torch.Tensor:
        """The model's own modules from the heads' weighted values concatenated `[B, n, H*d_h]`
        to the attention block's output `[B, n, d]` before the residual (output projection;
        Gemma's post-attention norm), in the modules' dtype."""
        return self.part(self.output_path, self.attention)(context)

    @abstractmethod
    def finish(self, context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The layer's output `[B, n, d]` from the heads' weighted values concatenated
        `context` `[B, n, H*d_h]` and the layer's input `x` `[B, n, d]`: output projection,
        residual, norms and feed-forward, run by the model's own modules (inputs cast to their
        dtype; the result in the compute dtype)."""

    # ------------------------------------------------------------------ shared maths
    def upcast(self) -> Layer:
        """This layer, or for a half-precision model an adapter on a float32 copy of its
        module (for methods that re-run it and compare nearly equal outputs)."""
        if self.module_dtype() == self.dtype:
            return self
        copy = deepcopy(self.module).to(self.dtype)
        return type(self)(self.architecture, copy, self.index)

    def module_dtype(self) -> torch.dtype:
        return next(self.module.parameters()).dtype

    def to_module(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(self.module_dtype())

    def attention_output(self, context: torch.Tensor) -> torch.Tensor:
        """`output_block` called with the modules' dtype, the result in the compute dtype."""
        return self.output_block(self.to_module(context)).to(self.dtype)

    def attention_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the attention reads `[..., n, d]`: the layer input, normed first if pre-LN."""
        return self.norm()(x) if self.pre_norm else x

    def kv_group(self, head: int) -> int:
        """The key-value head that query head `head` reads."""
        return head // (self.num_heads // self.num_kv_heads)

    def expand_groups(self, per_kv_head: torch.Tensor) -> torch.Tensor:
        """`[K, ...]` → `[H, ...]`: each query head gets its key-value group's tensor."""
        return per_kv_head.repeat_interleave(self.num_heads // self.num_kv_heads, dim=0)

    def values(self, x: torch.Tensor) -> torch.Tensor:
        """Value vectors read by each query head `[H, n, d_h]` from the layer input `[n, d]`."""
        values = self.value_projection()(self.attention_input(x.to(self.dtype)))
        grouped = values.view(x.shape[0], self.num_kv_heads, self.head_dim).transpose(0, 1)
        return self.expand_groups(grouped)

    def head_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """f^h(x_j) = v_j^(group of h) W_O^h for every head and token `[H, n, d]`, times the
        post-attention norm's gain when there is one (its linear part, see `attention_terms`)."""
        return self._moved(self.values(x))

    def _moved(self, values: torch.Tensor) -> torch.Tensor:
        output = self.output_projection().weight.view(self.num_heads, self.head_dim, -1)
        moved = torch.bmm(values, output)
        post = self.post_attention_norm()
        return moved if post is None else moved * post.gain

    def context(self, attentions: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Heads' weighted values concatenated `[..., n, H*d_h]` from `[..., H, n, n]` weights
        and `values` `[H, n, d_h]`."""
        mixed = attentions @ values  # [..., H, n, d_h]
        return mixed.transpose(-3, -2).reshape(*mixed.shape[:-3], mixed.shape[-2], -1)

    def attention_terms(
        self, x: torch.Tensor, attentions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The attention block's output as a sum over (head, token): `(moved, row_scale, bias)`.

        Block output of token i = row_scale_i · (Σ_h Σ_j α_ij^h moved[h, j] + bias), with
        `moved` `[H, n, d]` (`head_outputs`), `row_scale` `[n]`, `bias` `[d]`. Without a
        post-attention norm row_scale is 1 and bias the output projection's. With Gemma's
        post-attention RMSNorm the norm is linearised at the actual output, as ALTI linearises
        LayerNorm: its 1/rms_i (from the block's real output, ε included) is fixed per row, so
        the sum reproduces the normed output exactly while each part is scaled like the whole.
        """
        x = x.to(self.dtype)
        values = self.values(x)
        moved = self._moved(values)
        output = self.output_projection()
        bias = output.bias if output.bias is not None else torch.zeros_like(x[0])
        post = self.post_attention_norm()
        if post is None:
            return moved, torch.ones(x.shape[0], dtype=x.dtype), bias
        raw = output(self.context(attentions.to(x.dtype), values))
        return moved, post.inverse_scale(raw), bias * post.gain

    def mask(self, n: int) -> torch.Tensor:
        """`[n, n]` bool: True where query i may attend to key j (causal, sliding window)."""
        positions = torch.arange(n)
        distance = positions[:, None] - positions[None, :]
        allowed = torch.ones(n, n, dtype=torch.bool)
        if self.causal:
            allowed &= distance >= 0
        if self.window is not None:
            allowed &= distance < self.window
            if not self.causal:
                allowed &= distance > -self.window
        return allowed

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's attention `[H, n, n]` recomputed from `x` `[n, d]` by the adapter's rules
        (scale, soft-cap, score bias, mask); for checking an adapter against the model."""
        queries, keys = self.queries_keys(x.to(self.dtype))
        scores = queries @ self.expand_groups(keys).transpose(-1, -2) * self.scale
        if self.softcap is not None:
            scores = self.softcap * torch.tanh(scores / self.softcap)
        bias = self.score_bias(x.shape[0])
        if bias is not None:
            scores = scores + bias.to(scores.dtype)
        scores = scores.masked_fill(~self.mask(x.shape[0]), float("-inf"))
        return scores.softmax(dim=-1)


class Architecture(ABC):
    """Everything specific to one architecture, for one loaded network.

    Registered subclasses (`core.architectures.register`) are matched to a network by the class
    name of its layers (`layer_classes`, trusted only inside `transformers_module` when given).
    """

    name: ClassVar[str]
    """Short id, e.g. "llama"."""
    label: ClassVar[str]
    """For people, e.g. "Llama"."""
    layer_classes: ClassVar[tuple[str, ...]]
    """`transformers` class names of one layer of the self stack (e.g. "LlamaDecoderLayer")."""
    transformers_module: ClassVar[str | None] = None
    """When set, a layer class is only trusted inside this module (generic class names)."""
    layer_type: ClassVar[type[Layer]]

    def __init__(self, network: torch.nn.Module, root: torch.nn.Module) -> None:
        """`network` the loaded model (with its head, if any); `root` its self stack's part."""
        self.network = network
        self.root = root
        self._layers = [
            self.layer_type(self, module, index)
            for index, module in enumerate(self.layer_modules())
        ]

    @classmethod
    def claims(cls, module: torch.nn.Module) -> bool:
        """Whether `module` is one of this architecture's layers."""
        kind = type(module)
        if kind.__name__ not in cls.layer_classes:
            return False
        return cls.transformers_module is None or cls.transformers_module in kind.__module__

    def layer_modules(self) -> list[torch.nn.Module]:
        """The self stack's layer modules, once per layer, in order."""
        return [module for module in self.root.modules() if self.claims(module)]

    @property
    def layers(self) -> list[Layer]:
        return self._layers

    @property
    def config(self):
        config = self.network.config
        return config.get_text_config() if hasattr(config, "get_text_config") else config

    @property
    def embedding_scale(self) -> float:
        """What the model multiplies its token embeddings by (Gemma: sqrt(hidden size))."""
        return 1.0

    # ------------------------------------------------------------------ the logit lens
    def final_norm(self) -> torch.nn.Module | None:
        """The norm the model applies after its last layer (None for post-LN models)."""
        return None

    def unembedding(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """`[n, d]` normed residual → `[n, vocab]` logits in the compute dtype, with the
        model's own head modules (final soft-cap included); None when the self stack has no
        language-model head (encoders; an encoder-decoder's head reads the decoder)."""
        return None

    def require_unembedding(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """`unembedding()`, or `UnsupportedModelError` saying in one line why there is none."""
        from core.errors import UnsupportedModelError

        head = self.unembedding()
        if head is None:
            raise UnsupportedModelError(
                f"The logit lens needs a language-model head that reads the {self.label} self "
                "stack; this model has none (an encoder, or an encoder-decoder whose head "
                "reads the decoder)."
            )
        return head

    def lens_logits(self, residual: torch.Tensor) -> torch.Tensor:
        """Logits `[L, vocab]` (compute dtype) of intermediate residual vectors `[L, d]`: the
        final norm, then the head. Raises `UnsupportedModelError` without a head."""
        head = self.require_unembedding()
        norm = self.final_norm()
        if norm is not None:
            residual = norm(residual.to(next(norm.parameters()).dtype))
        return head(residual)
