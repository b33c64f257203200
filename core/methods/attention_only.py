"""Methods that read the attention weights alone: raw, rollout (Abnar & Zuidema) and flow."""

from __future__ import annotations

import numpy as np

from core.costs import Budget, Cost
from core.flow import FLOW_MAX_TOKENS, attention_flow
from core.long_rollout import rollout_rows
from core.methods.base import Method, MethodRequest, MethodResult, Parameter
from core.methods.registry import register
from core.rollout import attention_rollout


def _compute_raw(request: MethodRequest) -> MethodResult:
    attentions, queries, keys = request.result.stack(request.stack)
    square = attentions.shape[-1] == attentions.shape[-2]
    return MethodResult(
        method="raw",
        stack=request.stack,
        tokens=queries,
        key_tokens=keys,
        per_layer=attentions.mean(axis=1, dtype=np.float64),
        per_head=attentions,
        rollout=attention_rollout(attentions) if square else None,
        layers_computed=tuple(range(attentions.shape[0])),
    )


def _compute_rollout(request: MethodRequest) -> MethodResult:
    attentions, queries, keys = request.result.stack(request.stack)
    rolled = attention_rollout(attentions)
    return MethodResult(
        method="rollout",
        stack=request.stack,
        tokens=queries,
        key_tokens=keys,
        per_layer=rolled,
        rollout=rolled,
        layers_computed=tuple(range(attentions.shape[0])),
        accumulated=True,
    )


def _rollout_rows(result, rows, layer, progress) -> np.ndarray:
    return rollout_rows(result, rows, layer, progress=progress)


def _compute_flow(request: MethodRequest) -> MethodResult:
    attentions, queries, keys = request.result.stack(request.stack)
    layer_count, _, n, _ = attentions.shape
    layers = tuple(range(layer_count)) if request.layers is None else request.layers
    flows = np.full((layer_count, n, n), np.nan)
    total_layers = len(layers)

    def per_layer_progress(index: int):
        if request.progress is None:
            return None

        def report(done: int, total: int) -> bool | None:
            # One bar for all requested layers: each layer is an equal share of the work.
            return request.progress(index * total + done, total_layers * total)

        return report

    for index, layer in enumerate(layers):
        flows[layer] = attention_flow(
            attentions, layer=layer, rows=request.rows, progress=per_layer_progress(index)
        )
    return MethodResult(
        method="flow",
        stack=request.stack,
        tokens=queries,
        key_tokens=keys,
        per_layer=flows,
        rollout=flows,
        layers_computed=tuple(sorted(layer % layer_count for layer in layers)),
        accumulated=True,
    )


RAW = register(
    Method(
        name="raw",
        label="raw",
        help="The weights each head computes: row i is how token i spreads its attention over "
        "every token, and each row sums to 1. The layer view is the mean of its heads.",
        compute=_compute_raw,
        square_only=False,
        has_heads=True,
        cost=Cost("0", note="The text's own pass: nothing more.", memory="48 * L * n**2"),
        attributes_by_rollout=False,
    )
)
ROLLOUT = register(
    Method(
        name="rollout",
        label="rollout",
        help="Attention rollout (Abnar & Zuidema 2020): the heads' mean with the residual "
        "connection as half of each layer, multiplied down through the layers. Row i of layer "
        "l says which input tokens position i is made of after layer l.",
        compute=_compute_rollout,
        accumulated=True,
        rows_at_length=_rollout_rows,
        cost=Cost(
            "0",
            note="L matrix products of n × n: milliseconds beside the pass.",
            memory="40 * L * n**2",
        ),
    )
)
FLOW = register(
    Method(
        name="flow",
        label="flow",
        help="Attention flow (Abnar & Zuidema 2020): the layers as a network of pipes with the "
        "residual-mixed attention as capacities; the maximum flow from position i to each input "
        "token, normalised per row. Exact, one max-flow problem per token pair.",
        compute=_compute_flow,
        accumulated=True,
        cost=Cost(
            "0.05 * rows * layers * n",
            Budget.ROWS,
            "One max-flow problem per (row, token) pair: a row at one layer measured ≈ 6 "
            "passes at 128 tokens and ≈ 25 at 512 (MiniLM, bench/RESULTS.md, flow).",
            memory="40 * L * n**2 + 24 * layers * n**2",
            longest=FLOW_MAX_TOKENS,
        ),
        parameters=(
            Parameter("layers", "Layer", "Flow is computed for the chosen layer only."),
            Parameter("rows", "Tokens", "Rows (receiving tokens) to compute; others are empty."),
        ),
    )
)
