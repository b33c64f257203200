"""BertViz's "neuron view" for any supported model: how one query vector meets every key vector.

For one layer, head and query token, `neuron_view` shows the query vector, every key vector,
their elementwise product, the scores the model turned into attention and the softmax of those
scores. The vectors are read with forward hooks on the attention projections of the model's own
transformers modules during one ordinary forward pass — no forked model code — so what is shown
is what the model computed.

Supported attention modules (matched by class; see `_LAYOUTS`):

* BERT, RoBERTa, XLM-RoBERTa, CamemBERT, ELECTRA (`query` / `key` projections) and ALBERT, whose
  single shared layer runs once per layer;
* DistilBERT (`q_lin` / `k_lin`);
* GPT-2 (one fused `c_attn` projection holding query, key and value side by side), causal;
* BART / mBART encoder self-attention (`q_proj` / `k_proj`);
* T5 / mT5 encoder self-attention (`q` / `k`): T5 does not divide by √d and adds a learned
  relative position bias, which is reported in `NeuronView.bias`.

Anything else (rotary or relative-position models such as Llama, DeBERTa, MPNet, …) is refused
with `NeuronViewUnsupportedError`: their projection outputs are not the vectors that meet in
the dot product.
"""

from __future__ import annotations

import inspect
import math
import operator
import threading
import weakref
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.errors import NeuronViewUnsupportedError, PositionOutOfRangeError
from core.inference import encode, forward
from core.models import LoadedModel, ModelKind
from core.tokens import Token


@dataclass(frozen=True)
class _Layout:
    """Where one attention module class keeps its query and key projections."""

    query: str
    """Name of the child module producing the queries (the fused projection if `fused`)."""
    key: str
    fused: bool = False
    """GPT-2's `c_attn` outputs `[query | key | value]` along the last axis."""
    mask_argument: str = "attention_mask"
    """The forward argument carrying the additive attention mask."""
    position_bias: bool = False
    """T5: the module returns the relative position bias it added as `output[1]`."""


_BERT_LIKE = _Layout("query", "key")
_BART_LIKE = _Layout("q_proj", "k_proj")
_T5_LIKE = _Layout("q", "k", mask_argument="mask", position_bias=True)

# Matched by class name rather than structure: a module with q/k projections is not enough,
# since rotary models (Llama, RoFormer, ESM) rotate the projections before the dot product and
# others (DeBERTa, MPNet, Longformer) add terms we would not see. Each class below was checked
# against its transformers source: scores = (q·k) · module.scaling (+ mask, + T5's bias).
_LAYOUTS: dict[str, _Layout] = {
    "BertSelfAttention": _BERT_LIKE,
    "RobertaSelfAttention": _BERT_LIKE,
    "XLMRobertaSelfAttention": _BERT_LIKE,
    "CamembertSelfAttention": _BERT_LIKE,
    "ElectraSelfAttention": _BERT_LIKE,
    "AlbertAttention": _BERT_LIKE,
    "DistilBertSelfAttention": _Layout("q_lin", "k_lin"),
    "GPT2Attention": _Layout("c_attn", "c_attn", fused=True),
    "BartAttention": _BART_LIKE,
    "MBartAttention": _BART_LIKE,
    "T5Attention": _T5_LIKE,
    "MT5Attention": _T5_LIKE,
}
_SUPPORTED_NAMES = (
    "BERT, RoBERTa, XLM-RoBERTa, CamemBERT, ELECTRA, ALBERT, DistilBERT, GPT-2, BART and T5"
)

# Largest |softmax(rebuilt scores) - model attention| accepted before refusing the view: float32
# agrees to ~1e-7 (1e-6 for long inputs), half precision to a few 1e-3.
_TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-4}
_LOW_PRECISION_TOLERANCE = 3e-2


@dataclass(frozen=True, eq=False)
class NeuronView:
    """How query token `query` of head `head` in layer `layer` scores every key.

    With `n` tokens and head width `d`:

    * `query_vector` float32 `[d]` and `key_vectors` float32 `[n, d]`: this head's slice of the
      query and key projections, as the model computed them.
    * `products` float64 `[n, d]`: `query_vector * key_vectors[j]` elementwise, so
      `products[j].sum()` is the dot product q·k_j.
    * `scale`: what the model multiplies q·k by — 1/√d, except T5 (1) and GPT-2 checkpoints
      with `scale_attn_by_inverse_layer_idx` (1/(√d·(layer+1))).
    * `bias` float64 `[n]`: additive terms other than masking (T5's relative position bias);
      zeros for the other models.
    * `masked` bool `[n]`: keys the model hides from this query (later tokens in a causal model
      like GPT-2, padding). Their score is `-inf` and their weight 0.
    * `scores` float64 `[n]`: the logits the softmax saw, `products.sum(-1) * scale + bias` (plus
      the mask, which is 0 on visible keys for every supported model), and `-inf` where masked.
      The model itself adds the most negative float (not -inf) there; -inf says the same thing
      honestly and keeps charts from showing a meaningless -3.4e38.
    * `weights` float64 `[n]`: softmax of `scores` (0 where masked), rows sum to 1.
    * `attention` float32 `[n]`: the model's own attention row from `output_attentions`, for
      checking; `neuron_view` refuses to return a view whose `weights` disagree with it.
    """

    tokens: list[Token]
    layer: int
    head: int
    query: int
    query_vector: np.ndarray
    key_vectors: np.ndarray
    products: np.ndarray
    scores: np.ndarray
    weights: np.ndarray
    attention: np.ndarray
    scale: float
    bias: np.ndarray
    masked: np.ndarray
    dropped_tokens: int = 0
    """Tokens cut off because the input exceeded the model's maximum length."""

    @property
    def labels(self) -> list[str]:
        return [t.text for t in self.tokens]

    @property
    def head_dim(self) -> int:
        return int(self.query_vector.shape[0])


# --------------------------------------------------------------------------------------------
# Finding the attention modules.
# --------------------------------------------------------------------------------------------


def _attention_root(model: LoadedModel) -> torch.nn.Module:
    """The part of the network `core.inference.forward` runs (the encoder of a seq2seq model)."""
    return model.family.self_attention_root(model.model)


def _attention_modules(model: LoadedModel) -> list[tuple[torch.nn.Module, _Layout]]:
    """Known self-attention modules in registration order (ALBERT's shared one appears once)."""
    found = []
    for module in _attention_root(model).modules():
        layout = _LAYOUTS.get(type(module).__name__)
        # GPT-2 cross-attention reuses GPT2Attention with a separate query projection.
        if layout is None or getattr(module, "is_cross_attention", False):
            continue
        projections = (getattr(module, layout.query, None), getattr(module, layout.key, None))
        if all(isinstance(p, torch.nn.Module) for p in projections):
            found.append((module, layout))
    return found


@dataclass(frozen=True, eq=False)
class QueryKeyProjection:
    """One self-attention module and the child modules that compute its queries and keys.

    Forward hooks on `query` and `key` see `[batch, seq, heads * head_dim]` outputs; head `h`
    is the slice `h * head_dim : (h + 1) * head_dim` of the last axis. With `fused` (GPT-2)
    `query is key` and its output is `[query | key | value]` along the last axis.
    """

    attention: torch.nn.Module
    query: torch.nn.Module
    key: torch.nn.Module
    fused: bool


def query_key_projections(model: LoadedModel) -> list[QueryKeyProjection]:
    """The query/key projections of every supported self-attention module, in module order.

    Empty when the model's attention is not one `neuron_view` supports. ALBERT's single shared
    module appears once and runs once per layer, so hooks count calls to tell layers apart.
    """
    return [
        QueryKeyProjection(
            attention=module,
            query=getattr(module, layout.query),
            key=getattr(module, layout.key),
            fused=layout.fused,
        )
        for module, layout in _attention_modules(model)
    ]


def supports_neuron_view(model: LoadedModel) -> bool:
    """True when `neuron_view` knows how to read this model's query and key vectors."""
    return bool(_attention_modules(model))


def _unsupported_message(model: LoadedModel) -> str:
    root = _attention_root(model)
    attention = next(
        (type(m).__name__ for m in root.modules() if type(m).__name__.endswith("Attention")),
        None,
    )
    architecture = model.model_type or type(model.model).__name__
    what = f"its attention module {attention}" if attention else type(model.model).__name__
    return (
        f"The neuron view does not support {model.name} ({architecture}): {what} is not one "
        f"whose query and key vectors can be read from its projections. It supports "
        f"{_SUPPORTED_NAMES}."
    )


# --------------------------------------------------------------------------------------------
# Capturing one attention call.
# --------------------------------------------------------------------------------------------

# Why an owner-thread check in every hook *and* a lock per model:
# * Hooks live on the model's modules, which every Streamlit session shares, and torch fires
#   whatever hooks are registered at that moment for *any* thread's forward. Other code
#   (run_attention, predict_masked) runs forwards on the same model without taking any lock of
#   ours, so a lock alone cannot keep their calls out of our capture. Correctness rests on the
#   check: each hook ignores calls from threads other than the one that registered it.
# * The lock serialises neuron views on one model, so at most one capture's hooks are ever
#   registered on it and torch's hook dictionaries have one writer at a time (torch iterates them
#   unguarded when a forward fails). Views are one forward pass each, so the wait is short.
# * A private copy of the model would avoid both, at the price of duplicating hundreds of MB per
#   view; rejected.
_MODEL_LOCKS: weakref.WeakKeyDictionary[torch.nn.Module, threading.Lock] = (
    weakref.WeakKeyDictionary()
)
_MODEL_LOCKS_GUARD = threading.Lock()


def _lock_for(network: torch.nn.Module) -> threading.Lock:
    with _MODEL_LOCKS_GUARD:
        lock = _MODEL_LOCKS.get(network)
        if lock is None:
            lock = _MODEL_LOCKS[network] = threading.Lock()
        return lock


class _Capture:
    """What the hooks record, in the owner thread, for the attention call that is `target`.

    Attention calls are counted in execution order across all supported modules, so call `i`
    is layer `i` — which also handles ALBERT, whose one shared module runs once per layer.
    """

    def __init__(self, target: int) -> None:
        self.owner = threading.get_ident()
        self.target = target
        self.calls = 0
        self.active = False
        self.layout: _Layout | None = None
        self.scale: float | None = None
        self.num_heads: int | None = None
        self.query: torch.Tensor | None = None
        self.key: torch.Tensor | None = None
        self.mask: torch.Tensor | None = None
        self.position_bias: torch.Tensor | None = None

    def mine(self) -> bool:
        return threading.get_ident() == self.owner

    def before_attention(
        self, module: torch.nn.Module, layout: _Layout, args: tuple, kwargs: dict[str, Any]
    ) -> None:
        if not self.mine():
            return
        self.active = self.calls == self.target
        self.calls += 1
        if not self.active:
            return
        self.layout = layout
        self.scale = getattr(module, "scaling", None)
        self.num_heads = next(
            (
                value
                for name in ("num_attention_heads", "num_heads", "n_heads")
                if isinstance(value := getattr(module, name, None), int)
            ),
            None,
        )
        try:
            arguments = inspect.signature(module.forward).bind_partial(*args, **kwargs).arguments
        except TypeError:
            arguments = kwargs
        mask = arguments.get(layout.mask_argument)
        self.mask = mask.detach().to("cpu", copy=True) if isinstance(mask, torch.Tensor) else None

    def after_attention(self, layout: _Layout, output: Any) -> None:
        if not self.mine() or not self.active:
            return
        self.active = False
        if layout.position_bias and isinstance(output, tuple) and len(output) > 2:
            bias = output[1]
            if isinstance(bias, torch.Tensor):
                self.position_bias = bias.detach().to("cpu", copy=True)

    def projection(self, role: str, output: Any) -> None:
        if not self.mine() or not self.active or not isinstance(output, torch.Tensor):
            return
        value = output.detach()[0].to("cpu", copy=True)  # batch of one: [seq, width]
        if role in ("query", "fused"):
            self.query = value
        if role in ("key", "fused"):
            self.key = value


@contextmanager
def _hooked(modules: list[tuple[torch.nn.Module, _Layout]], capture: _Capture) -> Iterator[None]:
    """Register the capture's hooks; remove every one of them on exit, even after an error."""
    with ExitStack() as handles:
        for module, layout in modules:

            def before(
                mod: torch.nn.Module, args: tuple, kwargs: dict[str, Any], layout: _Layout = layout
            ) -> None:
                capture.before_attention(mod, layout, args, kwargs)

            def after(
                _mod: torch.nn.Module, _args: tuple, output: Any, layout: _Layout = layout
            ) -> None:
                capture.after_attention(layout, output)

            handles.callback(module.register_forward_pre_hook(before, with_kwargs=True).remove)
            handles.callback(module.register_forward_hook(after).remove)
            roles = (
                [(layout.query, "fused")]
                if layout.fused
                else [(layout.query, "query"), (layout.key, "key")]
            )
            for child, role in roles:

                def record(
                    _mod: torch.nn.Module, _args: tuple, output: Any, role: str = role
                ) -> None:
                    capture.projection(role, output)

                handles.callback(getattr(module, child).register_forward_hook(record).remove)
        yield


# --------------------------------------------------------------------------------------------
# The view.
# --------------------------------------------------------------------------------------------


def _check_index(value: int, size: int, what: str, owner: str) -> int:
    index = operator.index(value)
    if not 0 <= index < size:
        raise PositionOutOfRangeError(
            f"{what.capitalize()} {index} does not exist: {owner} has {size} {what}s, "
            f"numbered 0 to {size - 1}."
        )
    return index


def _row(tensor: torch.Tensor | None, head: int, query: int, n: int) -> np.ndarray | None:
    """One head's row of a `[batch, heads or 1, queries or 1, keys]` mask or bias, as float64."""
    if tensor is None:
        return None
    if tensor.dim() != 4 or tensor.shape[-1] != n:
        raise NeuronViewUnsupportedError(
            f"The attention mask has an unexpected shape {tuple(tensor.shape)} (expected "
            f"[batch, heads, queries, {n}]), so the scores cannot be rebuilt."
        )
    row = tensor[0, head if tensor.shape[1] > 1 else 0, query if tensor.shape[2] > 1 else 0]
    if row.dtype == torch.bool:
        # Boolean masks say which keys may be attended to.
        return np.where(row.numpy(), 0.0, -np.inf)
    return row.to(torch.float64).numpy()


def _hidden(row: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """Where an additive mask hides a key: -inf, or the dtype's most negative value."""
    floor = torch.finfo(dtype).min / 2 if dtype.is_floating_point else -np.inf
    return row <= floor


def neuron_view(
    model: LoadedModel,
    text: str,
    layer: int,
    head: int,
    query: int,
    text_pair: str | None = None,
) -> NeuronView:
    """Query and key vectors of one head for one query token, and the scores they produce.

    `text_pair` is the optional second sentence; encoder-decoder models ignore it, as
    `run_attention` does, and show their encoder's self-attention over `text`. Runs one forward
    pass with hooks on the attention projections; they are removed before returning, also when
    the pass fails. Raises `NeuronViewUnsupportedError` for attention
    modules it does not know, and `PositionOutOfRangeError` for a layer, head or token index
    outside the model or the input. Safe to call from several threads on one shared model.
    """
    modules = _attention_modules(model)
    if not modules:
        raise NeuronViewUnsupportedError(_unsupported_message(model))
    layer = _check_index(layer, model.num_layers, "layer", model.name)
    head = _check_index(head, model.num_heads, "head", model.name)
    # As in run_attention: a seq2seq encoder reads the source alone, never a sentence pair.
    pair = None if model.kind is ModelKind.ENCODER_DECODER else text_pair
    encoded = encode(model, text, pair)
    n = len(encoded.tokens)
    query = _check_index(query, n, "token", "the input")

    capture = _Capture(layer)
    with _lock_for(model.model), _hooked(modules, capture):
        output = forward(model, encoded.inputs)

    if capture.calls != output.attentions.shape[0]:
        raise NeuronViewUnsupportedError(
            f"{model.name} ran its attention {capture.calls} times but returned "
            f"{output.attentions.shape[0]} attention maps, so the layers cannot be matched to "
            "the captured vectors."
        )
    if capture.query is None or capture.key is None or capture.layout is None:
        raise NeuronViewUnsupportedError(
            f"The query and key projections of layer {layer} of {model.name} did not run, so "
            "there are no vectors to show."
        )

    queries, keys = capture.query, capture.key
    if capture.layout.fused:
        queries, keys, _ = queries.chunk(3, dim=-1)
    heads = capture.num_heads or model.num_heads
    width = queries.shape[-1] // heads
    columns = slice(head * width, (head + 1) * width)
    query_vector = queries[query, columns].to(torch.float32).numpy()
    key_vectors = keys[:, columns].to(torch.float32).numpy()
    if key_vectors.shape[0] != n:
        raise NeuronViewUnsupportedError(
            f"Layer {layer} of {model.name} produced {key_vectors.shape[0]} keys for {n} tokens."
        )

    scale = float(capture.scale) if capture.scale is not None else 1 / math.sqrt(width)
    products = (
        queries[query, columns].to(torch.float64).numpy()
        * keys[:, columns].to(torch.float64).numpy()
    )
    bias = _row(capture.position_bias, head, query, n)
    mask = _row(capture.mask, head, query, n)
    masked = np.zeros(n, dtype=bool)
    if mask is not None and capture.mask is not None:
        masked |= _hidden(mask, capture.mask.dtype)
    if bias is not None and capture.position_bias is not None:
        # Older T5 code folded the mask into the position bias.
        masked |= _hidden(bias, capture.position_bias.dtype)
    additive = (0.0 if bias is None else bias) + (0.0 if mask is None else mask)
    # The softmax sees exactly what the model added (its huge negative mask values included, -inf
    # clipped so a fully masked row stays uniform as in torch), so masked keys get exactly 0.
    logits = products.sum(-1) * scale + np.maximum(additive, np.finfo(np.float64).min)
    weights = np.exp(logits - logits.max())
    weights /= weights.sum()
    scores = np.where(masked, -np.inf, logits)
    bias = np.zeros(n) if bias is None else np.where(masked, 0.0, bias)
    attention = output.attentions[layer, head, query].copy()

    dtype = capture.query.dtype
    tolerance = _TOLERANCE.get(dtype, _LOW_PRECISION_TOLERANCE)
    difference = float(np.max(np.abs(weights - attention)))
    if not difference <= tolerance:
        raise NeuronViewUnsupportedError(
            f"The scores rebuilt from the query and key vectors of {model.name} do not reproduce "
            f"its attention (they differ by up to {difference:.2g}): this model's attention adds "
            "something the neuron view cannot see, so it is not shown."
        )
    return NeuronView(
        tokens=encoded.tokens,
        layer=layer,
        head=head,
        query=query,
        query_vector=query_vector,
        key_vectors=key_vectors,
        products=products,
        scores=scores,
        weights=weights,
        attention=attention,
        scale=scale,
        bias=bias,
        masked=masked,
        dropped_tokens=encoded.dropped_tokens,
    )
