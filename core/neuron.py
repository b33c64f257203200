"""BertViz's "neuron view" for any architecture: how one query vector meets every key vector.

For one layer, head and query token, `neuron_view` shows the query vector, every key vector,
their elementwise product, the scores the model turned into attention and the softmax of those
scores. The vectors are the ones the dot product saw, read by Attention Atlas's attention
function (`core.capture`) during one ordinary forward pass: after rotary position embeddings
(Llama, Qwen, Gemma, Mistral, Phi-3) and q/k norms (Qwen3, Gemma 3), and, with grouped-query
attention, the key of the query head's key-value group. So it works on every architecture whose
attention transformers routes through that function (every one `core.load_model` loads), with
the model's own scaling, soft-cap (Gemma 2), sliding window and T5's relative position bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.attention import AttentionResult
from core.capture import ATTENTION_IMPLEMENTATION
from core.errors import InvalidSelectionError, NeuronViewUnsupportedError
from core.exact import CapturedStack, check_index
from core.families import SELF
from core.inference import encode, forward
from core.models import LoadedModel, ModelKind
from core.tokens import Token

# Largest |softmax(rebuilt scores) - model attention| accepted before refusing the view: float32
# agrees to ~1e-7 (1e-6 for long inputs), half precision to a few 1e-3.
_TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-4}
_LOW_PRECISION_TOLERANCE = 3e-2


@dataclass(frozen=True, eq=False)
class NeuronView:
    """How query token `query` of head `head` in layer `layer` scores every key.

    With `n` tokens and head width `d`:

    * `query_vector` float32 `[d]` and `key_vectors` float32 `[n, d]`: this head's query and its
      key-value group's keys as the dot product saw them (after rotary embeddings and q/k
      norms).
    * `products` float64 `[n, d]`: `query_vector * key_vectors[j]` elementwise, so
      `products[j].sum()` is the dot product q·k_j.
    * `scale`: what the model multiplies q·k by — 1/√d, except T5 (1) and GPT-2 checkpoints
      with `scale_attn_by_inverse_layer_idx` (1/(√d·(layer+1))).
    * `bias` float64 `[n]`: additive terms other than masking (T5's relative position bias);
      zeros for the other models.
    * `masked` bool `[n]`: keys the model hides from this query (later tokens in a causal model
      like GPT-2, padding). Their score is `-inf` and their weight 0.
    * `scores` float64 `[n]`: the logits the softmax saw, `products.sum(-1) * scale + bias`
      (soft-capped first where the model soft-caps, see `softcap`), and `-inf` where masked
      (later tokens, keys outside a sliding window).
      The model itself adds the most negative float (not -inf) there; -inf says the same thing
      honestly and keeps charts from showing a meaningless -3.4e38.
    * `weights` float64 `[n]`: softmax of `scores` (0 where masked), rows sum to 1.
    * `attention` float32 `[n]`: the attention row from the pass's own softmax normaliser
      (`core.exact`), for checking; `neuron_view` refuses a view whose `weights` disagree.
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
    key_head: int = 0
    """The key-value head whose keys this query head reads (grouped-query attention shares
    one among `heads // kv_heads` query heads; without it, the head itself)."""
    softcap: float | None = None
    """Gemma 2's soft-cap: `scores = softcap · tanh(q·k · scale / softcap) + bias`."""
    window: int | None = None
    """The layer's sliding window (keys `query - window < j <= query`), None if global."""

    @property
    def labels(self) -> list[str]:
        return [t.text for t in self.tokens]

    @property
    def head_dim(self) -> int:
        return int(self.query_vector.shape[0])


def strongest_keys(view: NeuronView, count: int) -> np.ndarray:
    """Positions (sorted, int `[≤ count + 1]`) of the `count` keys `view`'s query weighs most,
    and the query itself: what a long input's neuron view draws of its `n` keys."""
    if count < 1:
        raise InvalidSelectionError("A neuron view shows at least one key.")
    order = np.argsort(-np.where(view.masked, -np.inf, view.weights), kind="stable")[:count]
    return np.union1d(order, [view.query]).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Finding the attention modules.
# --------------------------------------------------------------------------------------------


def _attention_root(model: LoadedModel) -> torch.nn.Module:
    """The part of the network `core.inference.forward` runs (the encoder of a seq2seq model)."""
    return model.family.self_attention_root(model.model)


def supports_neuron_view(model: LoadedModel) -> bool:
    """True when the model's self-attention runs through `core.capture`'s attention function
    (every model `core.load_model` loads), so its query and key vectors can be read."""
    config = getattr(_attention_root(model), "config", None)
    return getattr(config, "_attn_implementation", None) == ATTENTION_IMPLEMENTATION


def _unsupported_message(model: LoadedModel) -> str:
    root = _attention_root(model)
    attention = next(
        (type(m).__name__ for m in root.modules() if type(m).__name__.endswith("Attention")),
        None,
    )
    architecture = model.model_type or type(model.model).__name__
    what = f"its attention module {attention}" if attention else type(model.model).__name__
    implementation = getattr(getattr(root, "config", None), "_attn_implementation", None)
    how = f" runs '{implementation}' attention" if implementation else " has no attention"
    return (
        f"The neuron view cannot read the query and key vectors of {model.name} "
        f"({architecture}): {what}{how}, not Attention Atlas's. Load it with "
        "core.load_model, which works for every architecture transformers routes through its "
        "attention interface."
    )


# --------------------------------------------------------------------------------------------
# The view.
# --------------------------------------------------------------------------------------------


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
    `run_attention` does, and show their encoder's self-attention over `text`. Runs one
    capturing forward pass (`core.capture`; no hooks, so it is safe on a model shared by
    several threads). Raises `NeuronViewUnsupportedError` for a model whose attention does not
    run through `core.capture`, and `PositionOutOfRangeError` for a layer, head or token index
    outside the model or the input.
    """
    if not supports_neuron_view(model):
        raise NeuronViewUnsupportedError(_unsupported_message(model))
    layer = check_index(layer, model.num_layers, "layer", model.name)
    head = check_index(head, model.num_heads, "head", model.name)
    # As in run_attention: a seq2seq encoder reads the source alone, never a sentence pair.
    pair = None if model.kind is ModelKind.ENCODER_DECODER else text_pair
    encoded = encode(model, text, pair)
    n = len(encoded.tokens)
    query = check_index(query, n, "token", "the input")

    output = forward(model, encoded.inputs, capture=True)
    stack = output.stacks[SELF]
    assert isinstance(stack, CapturedStack)  # forward(capture=True) keeps the self stack so
    return _view(stack, encoded.tokens, encoded.dropped_tokens, model.name, layer, head, query)


def neuron_view_of(result: AttentionResult, layer: int, head: int, query: int) -> NeuronView:
    """`neuron_view` of the text `result` (`core.run_attention`) was run on, from the queries
    and keys its capture already holds: no forward pass (at 4,096 tokens the pass is what
    the view costs).

    Equal to `neuron_view(model, result.text, layer, head, query, result.text_pair)`. Raises
    `NeuronViewUnsupportedError` for a result whose self-attention is held as weights rather
    than captured vectors (results built by hand from an array), and `PositionOutOfRangeError`
    for a layer, head or token outside it.
    """
    stack = result.pieces(SELF)
    if not isinstance(stack, CapturedStack):
        raise NeuronViewUnsupportedError(
            "This result holds its attention as weights, not the query and key vectors they "
            "came from: run core.neuron_view(model, text, layer, head, query) instead."
        )
    name = result.model_name
    layer = check_index(layer, stack.num_layers, "layer", name)
    head = check_index(head, stack.num_heads, "head", name)
    query = check_index(query, stack.queries, "token", "the input")
    return _view(stack, result.tokens, result.dropped_tokens, name, layer, head, query)


def _view(
    stack: CapturedStack,
    tokens: list[Token],
    dropped_tokens: int,
    model_name: str,
    layer: int,
    head: int,
    query: int,
) -> NeuronView:
    """The view of one (checked) layer, head and query of a captured self-attention stack."""
    n = stack.queries
    record = stack.layers[layer]
    key_head = head // record.group_size
    query_vector = record.queries[head, query].to(torch.float64).numpy()
    key_vectors = record.keys[key_head].to(torch.float64).numpy()
    if key_vectors.shape[0] != n:
        raise NeuronViewUnsupportedError(
            f"Layer {layer} of {model_name} produced {key_vectors.shape[0]} keys for {n} tokens."
        )

    products = query_vector[None, :] * key_vectors
    logits = products.sum(-1) * record.scale
    if record.softcap is not None:
        logits = record.softcap * np.tanh(logits / record.softcap)
    rows, cols = torch.tensor([query]), torch.arange(n)
    bias = np.zeros(n)
    if record.bias is not None:
        block = record.bias_block(rows, cols)
        bias = block[head if block.shape[0] > 1 else 0, 0].double().numpy()
    allowed = record.allowed(rows, cols, head)[0].numpy()
    masked = ~allowed
    logits = np.where(masked, -np.inf, logits + bias)
    weights = np.exp(logits - logits[allowed].max())
    weights /= weights.sum()
    attention = np.nan_to_num(stack.row(layer, head, query), nan=0.0)

    tolerance = _TOLERANCE.get(record.queries.dtype, _LOW_PRECISION_TOLERANCE)
    difference = float(np.max(np.abs(weights - attention)))
    if not difference <= tolerance:
        raise NeuronViewUnsupportedError(
            f"The scores rebuilt from the query and key vectors of {model_name} do not reproduce "
            f"its attention (they differ by up to {difference:.2g}): this model's attention adds "
            "something the neuron view cannot see, so it is not shown."
        )
    return NeuronView(
        tokens=tokens,
        layer=layer,
        head=head,
        query=query,
        query_vector=query_vector.astype(np.float32),
        key_vectors=key_vectors.astype(np.float32),
        products=products,
        scores=logits,
        weights=weights,
        attention=attention,
        scale=record.scale,
        bias=np.where(masked, 0.0, bias),
        masked=masked,
        dropped_tokens=dropped_tokens,
        key_head=key_head,
        softcap=record.softcap,
        window=record.window,
    )
