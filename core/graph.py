"""Contribution graphs: the information-flow routes of Ferrando & Voita (2024), and layer shares.

`route_contributions` + `information_flow_graph` build the graph as the authors' tool does
(facebookresearch/llm-transparency-tool: `routes/contributions.py`, `routes/graph.py`,
`server/app.py`). Per layer l and token i there are three nodes besides the inputs: the
residual stream after the attention block (`AFTER_ATTENTION`), the feed-forward block (`FFN`)
and the residual stream after the layer (`AFTER_LAYER`).

* Attention block: the whole is the block's output for i. Its parts are one vector per
  (source token j, head h), α_ij^h f^h(x_j) with f^h(x) = (x W_V^h + b_V^h) W_O^h, plus the
  residual x_i as a part of its own; the output projection's bias belongs to the whole only.
  Post-LN models (BERT, DistilBERT, ALBERT, BART) split the norm after the residual as ALTI
  does (`core.methods.alti`): every part through the norm's linear part, divided by the
  pre-norm vector's σ (population, without the norm's ε), the norm's bias in the whole only.
* Feed-forward block: the whole is the layer's output for i, the parts the block's output
  and the residual after attention (post-LN models: both through the layer's last norm, as
  above).
* A part's contribution is max(1e-5, ‖whole‖₁ − ‖part − whole + 1e-6‖₁), divided by the sum
  over the block's parts: the floor 1e-5 is the authors'; the 1e-6 is torch's
  `pairwise_distance` ε, which their code (and so this one) adds to every difference.
* With `renormalize=True` (their app's default) each part ≤ `threshold` is set to 0 before the
  heads are summed, and the rest divided by its sum; the routes are then the edges with a
  weight > 0. With `renormalize=False` the routes are the edges with a weight > `threshold`.
  Either way "at or below the threshold" is dropped: strictly greater is kept, as theirs.
* Edges: source token j → (l, i, after attention) with Σ_h of its parts (j = i: plus the
  residual part: the authors sum the two into one edge); after attention → FFN → after layer
  with the FFN's share; after attention → after layer with the residual's share. The routes into
  a position are every kept edge from which its last-layer node is reachable.

One deliberate departure: the authors' tool reads value vectors from TransformerLens's
`hook_v`, which already holds b_V, and adds b_V again (their issue 35); here b_V is added once.

`layer_share_graph` is a different, simpler graph (this project's earlier one): token j → i of
layer l where j's share of a method's row-normalised per-layer contributions is ≥ the
threshold, followed back from the position. It is not Ferrando & Voita's construction.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import networkx as nx
import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from core.architectures import Layer
from core.attention import run_attention
from core.errors import InvalidSelectionError, UnsupportedModelError
from core.lens import check_position
from core.methods import MethodRequest, MethodResult
from core.methods.base import Progress
from core.methods.shared import as_float64, read_self_stack, report, row_chunks
from core.models import LoadedModel
from core.tokens import Token

FLOOR = 1e-5
"""The authors' smallest contribution of a part (`get_contributions`: `clip(min=EPS)`)."""
DISTANCE_EPSILON = 1e-6
"""Added to every part − whole difference by torch's `pairwise_distance`, which they use."""
CHUNK_BUDGET = 1 << 24
"""Floats in one `[rows, sources, heads, d]` chunk of attention parts (64 MB)."""

INPUT = "input"
AFTER_ATTENTION = "after_attention"
FFN = "ffn"
AFTER_LAYER = "after_layer"
NODE_LEVEL = {INPUT: 0.0, AFTER_ATTENTION: -0.5, FFN: -0.25, AFTER_LAYER: 0.0}
"""Height of a node of layer l (1-based) is l + this: inputs at 0, the layer's output at l."""


@dataclass(frozen=True, eq=False)
class RouteContributions:
    """Every block's normalised contributions before any threshold (Ferrando & Voita).

    `attention[l, i, j, h]` `[layers, n, n, heads]`: part (j, h) of token i's attention block
    in layer l (0-based); `attention_residual[l, i]` `[layers, n]` the residual's part;
    `ffn[l, i]` and `ffn_residual[l, i]` `[layers, n]` the feed-forward block's and the
    residual's parts of the layer's output. For each (l, i) the attention parts and their
    residual sum to 1, and so do the two feed-forward ones. `attention`, the largest (12 MB
    for 128 tokens of a 12 × 12 model), is float32; the others float64.
    """

    tokens: list[Token]
    attention: np.ndarray
    attention_residual: np.ndarray
    ffn: np.ndarray
    ffn_residual: np.ndarray


def _gain_(parts: torch.Tensor, whole: torch.Tensor) -> torch.Tensor:
    """max(FLOOR, ‖whole‖₁ − ‖part − whole + ε‖₁) over the last axis, float64 `[...]`.

    `parts` `[..., d]` (overwritten) broadcasts against `whole`. The sum runs coordinate by
    coordinate over |w_k| − |p_k − w_k + ε|, each term at most |p_k| + ε in size: in float32 it
    keeps the digits that the difference of two norms of hundreds loses.
    """
    parts.sub_(whole - DISTANCE_EPSILON).abs_().sub_(whole.abs())
    return (-parts.sum(dim=-1, dtype=torch.float64)).clamp(min=FLOOR)


def _centred(vectors: torch.Tensor) -> torch.Tensor:
    return vectors - vectors.mean(dim=-1, keepdim=True)


def _population_scale(vectors: torch.Tensor) -> torch.Tensor:
    """σ `[n]` of a LayerNorm's input rows without its ε (population standard deviation)."""
    return _centred(vectors).pow(2).mean(dim=-1).sqrt()


class _LastLayerNorm(TorchFunctionMode):
    """Records the last `layer_norm` call (this thread only; the model is not modified)."""

    signature = inspect.signature(torch.nn.functional.layer_norm)

    def __init__(self) -> None:
        super().__init__()
        self.call: inspect.BoundArguments | None = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.nn.functional.layer_norm:
            self.call = self.signature.bind(*args, **kwargs)
            self.call.apply_defaults()
        return func(*args, **kwargs)


def _ffn_split(
    layer: Layer, context: torch.Tensor, x: torch.Tensor, mid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(FFN part, residual part, whole) `[n, d]` of the layer's output, compute dtype.

    `mid` is the residual stream after attention. Pre-LN: the output is mid + the feed-forward
    block's (with any norms of its own, as Gemma's), split as it is. Post-LN: the output is
    LayerNorm(mid + FFN(mid)); that norm is the last `layer_norm` the layer calls (its own
    modules run it), read as it runs, and split as ALTI splits norms.
    """
    if layer.pre_norm:
        output = layer.finish(context[None], x[None])[0]
        return output - mid, mid, output
    recorder = _LastLayerNorm()
    with recorder:
        output = layer.finish(context[None], x[None])[0]
    call = recorder.call
    if call is None or not torch.allclose(
        torch.nn.functional.layer_norm(*call.args, **call.kwargs)[0].to(output.dtype),
        output,
        atol=1e-5,
    ):
        raise UnsupportedModelError(
            "The contribution graph could not find the norm this model's layers end with."
        )
    arguments, dtype = call.arguments, x.dtype
    before = arguments["input"][0].to(dtype)
    weight = arguments["weight"].to(dtype)
    scale = _population_scale(before)[:, None]
    whole = _centred(before) * weight / scale
    if arguments["bias"] is not None:
        whole = whole + arguments["bias"].to(dtype)
    ffn = _centred(before - mid) * weight / scale
    return ffn, _centred(mid) * weight / scale, whole


def route_layer(
    layer: Layer, x: torch.Tensor, attentions: torch.Tensor
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One layer's (attention `[n, n, H]` float32, attention residual `[n]`, FFN `[n]`, FFN
    residual `[n]` float64) contributions, normalised per token.

    `x` `[n, d]` is the layer's input, `attentions` `[H, n, n]` its weights, both in the
    layer's compute dtype. The attention parts are `Layer.attention_terms`' (b_V once; Gemma's
    post-attention norm linearised at the actual output, as ALTI does).
    """
    moved, row_scale, output_bias = layer.attention_terms(x, attentions)  # f^h(x_j): [H, n, d]
    context = layer.context(attentions, layer.values(x))  # [n, H*d_h], for `finish`
    scaled = attentions * row_scale[None, :, None]  # a post-attention norm's 1/rms_i
    before_norm = x + torch.bmm(scaled, moved).sum(dim=0) + row_scale[:, None] * output_bias
    if layer.pre_norm:
        heads, residual, whole = moved, x, before_norm
        scale = torch.ones(x.shape[0], dtype=x.dtype)
        mid = before_norm
    else:
        norm = layer.norm()
        scale = _population_scale(before_norm)
        heads = norm.linear_part(moved)
        residual = norm.linear_part(x) / scale[:, None]
        whole = norm.linear_part(before_norm) / scale[:, None]
        if norm.bias is not None:
            whole = whole + norm.bias
        mid = norm(before_norm)
    n = x.shape[0]
    head_count, width = heads.shape[0], heads.shape[-1]
    attention = torch.empty(n, n, head_count, dtype=torch.float64)
    for rows in row_chunks(n, n * head_count * width, CHUNK_BUDGET):
        weights = scaled[:, rows.start : rows.stop] / scale[rows.start : rows.stop, None]
        wholes = whole[rows.start : rows.stop]
        # Sources no row of the chunk attends to (a causal model's later tokens) have zero
        # parts, whose gain depends on the row only: computed once, not per (source, head).
        read = torch.nonzero(weights.sum(dim=(0, 1)))
        reach = int(read.max()) + 1 if len(read) else 0
        attention[rows.start : rows.stop, reach:] = _gain_(torch.zeros_like(wholes), wholes)[
            :, None, None
        ]
        chunk = weights[:, :, :reach, None] * heads[:, None, :reach]  # parts: [H, r, j, d]
        gains = _gain_(chunk, wholes[None, :, None])  # [H, r, j]
        attention[rows.start : rows.stop, :reach] = gains.permute(1, 2, 0)
    attention_residual = _gain_(residual.clone(), whole)
    total = attention.sum(dim=(1, 2)) + attention_residual
    ffn, ffn_residual, output = _ffn_split(layer, context, x, mid)
    stacked = _gain_(torch.stack((ffn, ffn_residual), dim=1), output[:, None])
    stacked = stacked / stacked.sum(dim=1, keepdim=True)
    return (
        (attention / total[:, None, None]).float().numpy(),
        as_float64(attention_residual / total),
        as_float64(stacked[:, 0]),
        as_float64(stacked[:, 1]),
    )


def route_contributions(
    model: LoadedModel,
    text: str,
    text_pair: str | None = None,
    progress: Progress | None = None,
) -> RouteContributions:
    """Every block's contributions for `text` on `model`'s self stack (see the module docs).

    Reads every architecture with an adapter (`core.architectures`); raises
    `UnsupportedModelError` for others. `progress(done_layers, layers)` may return False to
    stop (`ComputationCancelled`).
    """
    result = run_attention(model, text, text_pair)
    reading = read_self_stack(MethodRequest(result=result, model=model), "The contribution graph")
    blocks: list[tuple[np.ndarray, ...]] = []
    with torch.inference_mode():
        for index in range(len(reading.layers)):
            blocks.append(route_layer(*reading.layer_input(index)))
            report(progress, index + 1, len(reading.layers), "The contribution graph")
    stacked = (np.stack(block) for block in zip(*blocks, strict=True))
    return RouteContributions(result.tokens, *stacked)


def _thresholded(
    blocks: np.ndarray, residual: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Parts ≤ `threshold` set to 0, the rest divided by their sum (per token; 0 if none)."""
    blocks = np.where(blocks > threshold, blocks, 0.0)
    residual = np.where(residual > threshold, residual, 0.0)
    totals = residual + blocks.reshape(*residual.shape, -1).sum(axis=-1)
    safe = np.where(totals > 0, totals, 1.0)
    shape = residual.shape + (1,) * (blocks.ndim - residual.ndim)
    return blocks / safe.reshape(shape), residual / safe


def information_flow_graph(
    contributions: RouteContributions,
    position: int,
    threshold: float = 0.04,
    *,
    renormalize: bool = True,
) -> nx.DiGraph:
    """The routes into `position`'s last-layer node, as Ferrando & Voita's tool draws them.

    Node keys are `(kind, layer, token)` with kind `INPUT` (layer 0), `AFTER_ATTENTION`, `FFN`
    or `AFTER_LAYER` (layers 1 … L); attributes kind, layer, token, text, level (the height to
    draw it at: `layer + NODE_LEVEL[kind]`), and `output=True` on the explained node. Edge
    attributes: weight, layer (1-based) and kind ("attention", "residual" — a token's own
    attention summed with its residual, as the authors do — or "ffn"). Parts ≤ `threshold` are
    dropped (see the module docs for `renormalize`). Raises `InvalidSelectionError` for a
    threshold outside [0, 1] and `PositionOutOfRangeError` for a bad position.
    """
    if not 0.0 <= float(threshold) <= 1.0:
        raise InvalidSelectionError("The threshold is a share between 0 and 1.")
    n = len(contributions.tokens)
    position = check_position(position, n)
    layer_count = contributions.attention.shape[0]
    kept_above = 0.0 if renormalize else float(threshold)
    texts = [token.text for token in contributions.tokens]
    full = nx.DiGraph()

    def before(layer: int, token: int) -> tuple[str, int, int]:
        return (INPUT, 0, token) if layer == 1 else (AFTER_LAYER, layer - 1, token)

    def add(source, target, weight: float, layer: int, kind: str) -> None:
        if weight > kept_above:
            full.add_edge(source, target, weight=float(weight), layer=layer, kind=kind)

    for index in range(layer_count):
        layer = index + 1
        attention = contributions.attention[index]
        residual = contributions.attention_residual[index]
        ffn, ffn_residual = contributions.ffn[index], contributions.ffn_residual[index]
        if renormalize:
            attention, residual = _thresholded(attention, residual, threshold)
            ffn, ffn_residual = _thresholded(ffn, ffn_residual, threshold)
        summed = attention.sum(axis=-1) + np.diag(residual)  # [receiver, source]
        for receiver, source in zip(*np.nonzero(summed > kept_above), strict=True):
            kind = "residual" if receiver == source else "attention"
            target = (AFTER_ATTENTION, layer, int(receiver))
            add(before(layer, int(source)), target, summed[receiver, source], layer, kind)
        for token in range(n):
            middle, block = (AFTER_ATTENTION, layer, token), (FFN, layer, token)
            add(middle, block, ffn[token], layer, "ffn")
            add(block, (AFTER_LAYER, layer, token), ffn[token], layer, "ffn")
            add(middle, (AFTER_LAYER, layer, token), ffn_residual[token], layer, "residual")

    output = (AFTER_LAYER, layer_count, position)
    reached = (nx.ancestors(full, output) if output in full else set()) | {output}
    graph = nx.DiGraph(
        construction="Ferrando & Voita", position=position, threshold=float(threshold)
    )
    for kind, layer, token in sorted(reached, key=lambda key: (key[1], key[2], key[0])):
        graph.add_node(
            (kind, layer, token),
            kind=kind,
            layer=layer,
            token=token,
            text=texts[token],
            level=layer + NODE_LEVEL[kind],
        )
    graph.nodes[output]["output"] = True
    graph.add_edges_from((u, v, data) for u, v, data in full.edges(data=True) if v in reached)
    return graph


def layer_share_graph(
    method_result: MethodResult, position: int, threshold: float = 0.04
) -> nx.DiGraph:
    """Token j → i of each layer where j's share of row i is ≥ `threshold`, followed back from
    `position` at the last layer. Not Ferrando & Voita's construction (`information_flow_graph`).

    Shares are each row of the method's per-layer matrix divided by its sum (ALTI and value
    zeroing rows sum to 1 already; attention norms and gradient relevance are rescaled so one
    threshold means the same for every method). Node keys are `(layer, token)` tuples with
    attributes layer, token (position), text; the output node has `output=True`. Edge
    attributes: weight (the share) and layer (1-based like the node layers). Raises
    `InvalidSelectionError` for accumulated methods (rollout, flow: their layers are not
    per-layer contributions), non-square stacks, missing layers or a bad threshold.
    """
    if method_result.accumulated:
        raise InvalidSelectionError(
            f"{method_result.method} is accumulated through the layers; a contribution graph "
            "needs per-layer contributions (ALTI, value zeroing, attention norms, raw …)."
        )
    per_layer = np.asarray(method_result.per_layer, dtype=np.float64)
    layer_count, rows, columns = per_layer.shape
    if rows != columns:
        raise InvalidSelectionError("A contribution graph needs a square (self-attention) stack.")
    if np.isnan(per_layer).any():
        raise InvalidSelectionError("Compute every layer before drawing the contribution graph.")
    if not 0.0 <= float(threshold) <= 1.0:
        raise InvalidSelectionError("The threshold is a share between 0 and 1.")
    position = check_position(position, rows)
    totals = per_layer.sum(axis=-1, keepdims=True)
    shares = np.divide(per_layer, totals, out=np.zeros_like(per_layer), where=totals > 0)
    texts = [token.text for token in method_result.tokens]

    graph = nx.DiGraph(method=method_result.method, position=position, threshold=threshold)

    def add_node(layer: int, token: int) -> tuple[int, int]:
        key = (layer, token)
        if key not in graph:
            graph.add_node(key, layer=layer, token=token, text=texts[token])
        return key

    graph.nodes[add_node(layer_count, position)]["output"] = True
    frontier = {position}
    for layer in range(layer_count, 0, -1):
        reached = set()
        for receiver in sorted(frontier):
            for source in np.flatnonzero(shares[layer - 1, receiver] >= threshold):
                source = int(source)
                graph.add_edge(
                    add_node(layer - 1, source),
                    add_node(layer, receiver),
                    weight=float(shares[layer - 1, receiver, source]),
                    layer=layer,
                )
                reached.add(source)
        frontier = reached
        if not frontier:
            break
    return graph
