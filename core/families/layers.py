"""Architectural access to the layers of a model's "self" stack, in one registry.

Contribution methods (attention norms, ALTI, value zeroing) and the logit lens need more than
the attention weights: each layer's value and output projections, its layer norms and where
they sit, and a way to re-run the rest of a layer. Architectures keep these under different
names (GPT-2 even fuses query, key and value into one `Conv1D`), so every method asks this
module instead of knowing module names. Adding an architecture is one reader function and one
entry in `_READERS`, checked by the exactness tests in tests/core/methods/.

Conventions: hidden size `d`, `H` heads of width `d_h`; weights are in "x @ W" form
(`value_weight` `[d, H*d_h]`, `output_weight` `[H*d_h, d]`) whatever the module stores.

Supported layer classes (the attention inside each was checked against its transformers
source: probabilities times values, heads concatenated, one output projection):

* BERT-like post-LN layers: BERT, RoBERTa, XLM-RoBERTa, CamemBERT, ELECTRA (`BertLayer` …),
  ALBERT (`AlbertLayer`, one shared layer run once per layer);
* DistilBERT (`TransformerBlock`), post-LN;
* GPT-2 (`GPT2Block`), pre-LN, fused `c_attn`;
* BART encoder layers (`BartEncoderLayer`), post-LN;
* T5 / mT5 encoder blocks (`T5Block`), pre-LN with RMSNorm, no biases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from core.errors import UnsupportedModelError
from core.families.base import SELF, Passes
from core.inference import guarded
from core.kinds import ModelKind
from core.models import LoadedModel

LAYER_NORM = "layer_norm"
RMS_NORM = "rms_norm"


@dataclass(frozen=True, eq=False)
class LayerParts:
    """One layer of the self stack, as the contribution methods read it.

    `finish(context, x)` re-runs everything after the attention probabilities: `context`
    `[B, n, H*d_h]` is the heads' weighted values concatenated, `x` `[B, n, d]` the layer's
    input; it returns the layer's output `[B, n, d]`, computed by the model's own modules.
    """

    architecture: str
    module: torch.nn.Module
    num_heads: int
    head_dim: int
    value_weight: torch.Tensor
    value_bias: torch.Tensor | None
    output_weight: torch.Tensor
    output_bias: torch.Tensor | None
    norm: torch.nn.Module
    """The norm around the attention block: applied before it (pre-LN) or after the residual."""
    pre_norm: bool
    norm_kind: str
    """`LAYER_NORM` (centred, with bias) or `RMS_NORM` (T5: scale only)."""
    finish: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    @property
    def norm_weight(self) -> torch.Tensor:
        return self.norm.weight

    @property
    def norm_bias(self) -> torch.Tensor | None:
        return getattr(self.norm, "bias", None)

    def attention_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the attention reads `[..., n, d]`: the layer input, normed first if pre-LN."""
        return self.norm(x) if self.pre_norm else x

    def values(self, x: torch.Tensor) -> torch.Tensor:
        """Value vectors `[H, n, d_h]` of the layer input `x` `[n, d]`."""
        values = self.attention_input(x) @ self.value_weight
        if self.value_bias is not None:
            values = values + self.value_bias
        return values.view(x.shape[0], self.num_heads, self.head_dim).transpose(0, 1)

    def head_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """f^h(x_j) = (x_j W_V^h + b_V^h) W_O^h for every head and token `[H, n, d]`."""
        per_head_output = self.output_weight.view(self.num_heads, self.head_dim, -1)
        return torch.bmm(self.values(x), per_head_output)

    def context(self, attentions: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Heads' weighted values concatenated `[..., n, H*d_h]` from `[..., H, n, n]` weights."""
        mixed = attentions @ values  # [..., H, n, d_h]
        return mixed.transpose(-3, -2).reshape(*mixed.shape[:-3], mixed.shape[-2], -1)


# --------------------------------------------------------------------------------------------
# Readers, one per architecture.
# --------------------------------------------------------------------------------------------


def _linear(module: torch.nn.Linear) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`nn.Linear` stores `[out, in]` and computes x W^T + b; return (W^T, b)."""
    return module.weight.T, module.bias


def _bert_like(layer: torch.nn.Module) -> LayerParts:
    attention = layer.attention
    value_weight, value_bias = _linear(attention.self.value)
    output_weight, output_bias = _linear(attention.output.dense)

    def finish(context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        attended = attention.output(context, x)  # dense, dropout, LayerNorm(· + x)
        return layer.output(layer.intermediate(attended), attended)

    return LayerParts(
        "BERT-like",
        layer,
        attention.self.num_attention_heads,
        attention.self.attention_head_size,
        value_weight,
        value_bias,
        output_weight,
        output_bias,
        attention.output.LayerNorm,
        False,
        LAYER_NORM,
        finish,
    )


def _albert(layer: torch.nn.Module) -> LayerParts:
    attention = layer.attention
    value_weight, value_bias = _linear(attention.value)
    output_weight, output_bias = _linear(attention.dense)

    def finish(context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        attended = attention.LayerNorm(x + attention.dense(context))
        return layer.full_layer_layer_norm(layer.ff_chunk(attended) + attended)

    return LayerParts(
        "ALBERT",
        layer,
        attention.num_attention_heads,
        attention.attention_head_size,
        value_weight,
        value_bias,
        output_weight,
        output_bias,
        attention.LayerNorm,
        False,
        LAYER_NORM,
        finish,
    )


def _distilbert(layer: torch.nn.Module) -> LayerParts:
    attention = layer.attention
    value_weight, value_bias = _linear(attention.v_lin)
    output_weight, output_bias = _linear(attention.out_lin)
    heads = attention.n_heads

    def finish(context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        attended = layer.sa_layer_norm(attention.out_lin(context) + x)
        return layer.output_layer_norm(layer.ffn(attended) + attended)

    return LayerParts(
        "DistilBERT",
        layer,
        heads,
        attention.dim // heads,
        value_weight,
        value_bias,
        output_weight,
        output_bias,
        layer.sa_layer_norm,
        False,
        LAYER_NORM,
        finish,
    )


def _gpt2(block: torch.nn.Module) -> LayerParts:
    attention = block.attn
    if getattr(attention, "reorder_and_upcast_attn", False) or hasattr(block, "crossattention"):
        # Neither changes the decomposition, but neither has been checked; say so honestly.
        raise UnsupportedModelError("GPT-2 blocks with cross-attention are not supported.")
    hidden = attention.embed_dim
    # Conv1D stores [in, out] and computes x W + b; c_attn's output is [query | key | value].
    value_weight = attention.c_attn.weight[:, 2 * hidden : 3 * hidden]
    value_bias = attention.c_attn.bias[2 * hidden : 3 * hidden]

    def finish(context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        attended = attention.c_proj(context) + x
        return attended + block.mlp(block.ln_2(attended))

    return LayerParts(
        "GPT-2",
        block,
        attention.num_heads,
        attention.head_dim,
        value_weight,
        value_bias,
        attention.c_proj.weight,
        attention.c_proj.bias,
        block.ln_1,
        True,
        LAYER_NORM,
        finish,
    )


def _bart_encoder(layer: torch.nn.Module) -> LayerParts:
    attention = layer.self_attn
    value_weight, value_bias = _linear(attention.v_proj)
    output_weight, output_bias = _linear(attention.out_proj)

    def finish(context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        attended = layer.self_attn_layer_norm(x + attention.out_proj(context))
        forward = layer.fc2(layer.activation_fn(layer.fc1(attended)))
        return layer.final_layer_norm(attended + forward)

    return LayerParts(
        "BART",
        layer,
        attention.num_heads,
        attention.head_dim,
        value_weight,
        value_bias,
        output_weight,
        output_bias,
        layer.self_attn_layer_norm,
        False,
        LAYER_NORM,
        finish,
    )


def _t5_encoder(block: torch.nn.Module) -> LayerParts:
    self_layer, feed_forward = block.layer[0], block.layer[-1]
    attention = self_layer.SelfAttention
    if attention.is_decoder:
        raise UnsupportedModelError("T5 decoder blocks are not part of the self stack.")

    def finish(context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return feed_forward(x + attention.o(context))

    return LayerParts(
        "T5",
        block,
        attention.n_heads,
        attention.key_value_proj_dim,
        attention.v.weight.T,
        None,
        attention.o.weight.T,
        None,
        self_layer.layer_norm,
        True,
        RMS_NORM,
        finish,
    )


_BERT_LAYERS = ("BertLayer", "RobertaLayer", "XLMRobertaLayer", "CamembertLayer", "ElectraLayer")
_READERS: dict[str, Callable[[torch.nn.Module], LayerParts]] = {
    **dict.fromkeys(_BERT_LAYERS, _bert_like),
    "AlbertLayer": _albert,
    "TransformerBlock": _distilbert,
    "GPT2Block": _gpt2,
    "BartEncoderLayer": _bart_encoder,
    "T5Block": _t5_encoder,
}
_MODULE_OF = {"TransformerBlock": "distilbert"}
"""Generic class names are only trusted inside the transformers module they were checked in."""

SUPPORTED_ARCHITECTURES = "BERT-like (BERT, RoBERTa, XLM-RoBERTa, CamemBERT, ELECTRA, ALBERT), \
DistilBERT, GPT-2, the BART encoder and the T5 encoder"


def _is_known(module: torch.nn.Module) -> bool:
    name = type(module).__name__
    if name not in _READERS:
        return False
    required = _MODULE_OF.get(name)
    return required is None or required in type(module).__module__


def self_stack_layers(model: LoadedModel) -> list[LayerParts]:
    """The `LayerParts` of every layer of `model`'s "self" stack, in order.

    Raises `UnsupportedModelError` naming what is supported when
    the layers are not ones this registry can read.
    """
    root = model.family.self_attention_root(model.model)
    found = [module for module in root.modules() if _is_known(module)]
    config = model.model.config.get_text_config()
    if type(model.model).__name__.startswith("Albert") and found:
        # ALBERT shares layers: layer i runs group int(i / (layers / groups)), which must hold
        # one layer for the stack to be a plain sequence.
        if config.inner_group_num != 1:
            raise UnsupportedModelError(
                "ALBERT models with several layers per group are not supported."
            )
        groups = config.num_hidden_groups
        found = [found[int(i / (model.num_layers / groups))] for i in range(model.num_layers)]
    if not found or len(found) != model.num_layers:
        architecture = model.model_type or type(model.model).__name__
        raise UnsupportedModelError(
            f"{model.name} ({architecture}) has layers whose value and output projections "
            f"Attention Atlas cannot read. Supported: {SUPPORTED_ARCHITECTURES}."
        )
    return [_READERS[type(module).__name__](module) for module in found]


def unsupported_reason(model: LoadedModel) -> str | None:
    """Why `self_stack_layers(model)` would fail, or None when it reads the model."""
    try:
        self_stack_layers(model)
    except UnsupportedModelError as error:
        return str(error)
    return None


# --------------------------------------------------------------------------------------------
# The output head, for the logit lens.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class OutputHead:
    """How a residual-stream vector becomes logits: the final norm (if any), then the head."""

    final_norm: torch.nn.Module | None
    """Applied to intermediate layers only; the model's last hidden state already has it."""
    head: Callable[[torch.Tensor], torch.Tensor]
    """`[n, d]` normed residual -> `[n, vocab]` logits (the model's own LM head modules)."""


def output_head(model: LoadedModel) -> OutputHead:
    """The final norm and language-model head of a masked-LM or causal model.

    Raises `UnsupportedModelError` for models without a head this registry knows.
    """
    network = model.model
    name = type(network).__name__
    if model.kind is ModelKind.CAUSAL_LM and name == "GPT2LMHeadModel":
        return OutputHead(network.transformer.ln_f, network.lm_head)
    if model.kind is ModelKind.MASKED_LM:
        if name in ("BertForMaskedLM", "ElectraForMaskedLM") and hasattr(network, "cls"):
            return OutputHead(None, network.cls)
        if hasattr(network, "lm_head") and name.endswith("ForMaskedLM"):  # RoBERTa family
            return OutputHead(None, network.lm_head)
        if name == "AlbertForMaskedLM":
            return OutputHead(None, network.predictions)
        if name == "DistilBertForMaskedLM":

            def distilbert_head(hidden: torch.Tensor) -> torch.Tensor:
                hidden = network.activation(network.vocab_transform(hidden))
                return network.vocab_projector(network.vocab_layer_norm(hidden))

            return OutputHead(None, distilbert_head)
    raise UnsupportedModelError(
        f"The logit lens reads masked-LM and causal models whose head it knows (BERT, RoBERTa, "
        f"ALBERT, DistilBERT, GPT-2); {model.name} ({name}) is not one of them."
    )


# --------------------------------------------------------------------------------------------
# One pass with hidden states.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SelfStackPass:
    """The tensors one pass yields for the self stack, batch dimension dropped.

    `hidden_states[l]` `[n, d]` is layer l's input (l = 0: the embeddings); the last entry is
    what the model returns after its last layer (GPT-2 and T5 apply their final norm to it).
    `attentions[l]` `[H, n, n]`; `logits` `[n, vocab]` or None.
    """

    hidden_states: tuple[torch.Tensor, ...]
    attentions: tuple[torch.Tensor, ...]
    logits: torch.Tensor | None


def self_stack_pass(model: LoadedModel, inputs: dict[str, torch.Tensor]) -> SelfStackPass:
    """Run `model` once on `inputs` with hidden states, without gradients.

    An encoder-decoder model runs its encoder only (the self stack).
    """
    with guarded(model), torch.inference_mode():
        passes: Passes = model.family.run(model.model, inputs, None, output_hidden_states=True)
    raw = passes.raw
    hidden = getattr(raw, "hidden_states", None) or getattr(raw, "encoder_hidden_states", None)
    attentions = passes.attentions[SELF]
    if not hidden or not attentions or any(a is None for a in attentions):
        raise UnsupportedModelError(f"{model.name} did not return its hidden states and attention.")
    logits = None if passes.logits is None else passes.logits[0]
    return SelfStackPass(tuple(h[0] for h in hidden), tuple(a[0] for a in attentions), logits)
