"""Value zeroing (Mohebbi et al. 2023, "Quantifying context mixing in transformers").

Per layer and token j: set j's value vectors to zero in every head, re-run the layer from its
original input with the original attention weights, and score i ← j by the cosine distance
between token i's new and original layer output. Rows are normalised to sum 1 and the rollout
multiplies the layers' matrices without adding a residual, as the authors' code does
(hmohebbi/ValueZeroing, `scoring/value_zeroing.py`: `compute_joint_attention(..., res=False)`).

The n re-runs of a layer are batched: zeroing j's values changes every head's weighted sum by
exactly α_ij^h v_j^h, so the new attention outputs are the original minus that term, and the
rest of the layer (output projection, residual, norms, feed-forward) runs once for a batch of
zeroed tokens with the model's own modules. Distances are computed in float64: the outputs
are nearly equal and lose digits in float32. A pair (i, j) where no head attends from i to j
scores exactly 0 (nothing changed), which keeps a causal model's upper triangle empty.

Each architecture's adapter re-runs its layer (`Layer.finish`), so windows, grouped-query
heads and extra norms are the model's. A half-precision model's layer is re-run as a float32
copy, one layer at a time (`Layer.upcast`): the outputs differ by less than bfloat16 resolves.
"""

from __future__ import annotations

import numpy as np
import torch

from core.architectures import Layer, unsupported_reason
from core.costs import Budget, Cost
from core.families import SELF
from core.methods.base import Method, MethodRequest, MethodResult, Needs, Parameter
from core.methods.registry import register
from core.methods.shared import chain_layers, normalize_rows, read_self_stack, report, row_chunks

BATCH_BUDGET = 1 << 23
"""Floats one batch of re-runs may hold in its widest tensor (32 MB in float32)."""


def _cosine_distances(new: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """1 − cos between each `new[b, i]` and `original[i]`, in float64 `[b, n]`."""
    new, original = new.double(), original.double()
    dots = (new * original).sum(dim=-1)
    norms = new.norm(dim=-1) * original.norm(dim=-1)
    return 1.0 - dots / norms


def value_zeroing_layer(
    layer: Layer,
    x: torch.Tensor,
    attentions: torch.Tensor,
    on_batch=None,
) -> np.ndarray:
    """Value-zeroing distances of one layer, rows normalised, float64 `[n, n]`.

    `x` `[n, d]` is the layer's input, `attentions` `[H, n, n]` its weights, both in the
    layer's compute dtype; `on_batch(done)` is called after each batch of zeroed tokens.
    """
    layer = layer.upcast()
    n, width = x.shape
    values = layer.values(x)  # [H, n, d_h]
    context = layer.context(attentions, values)  # [n, H*d_h]
    original = layer.finish(context[None], x[None])[0]
    intermediate = max(width, *(max(p.shape) for p in layer.module.parameters() if p.dim() == 2))
    scores = torch.zeros(n, n, dtype=torch.float64)
    for batch in row_chunks(n, n * intermediate, BATCH_BUDGET):
        zeroed = torch.arange(batch.start, batch.stop)
        # What token j's values added to every head's output: α_ij^h v_j^h, [b, H, n, d_h].
        removed = (
            attentions[:, :, zeroed].permute(2, 0, 1)[..., None]
            * values[:, zeroed].transpose(0, 1)[:, :, None, :]
        )
        new_context = context[None] - removed.transpose(1, 2).reshape(len(zeroed), n, -1)
        new_output = layer.finish(new_context, x.expand(len(zeroed), n, width))
        scores[:, zeroed] = _cosine_distances(new_output, original).T
        if on_batch is not None:
            on_batch(batch.stop)
    untouched = (attentions.sum(dim=0) == 0).cpu()
    scores[untouched] = 0.0
    return normalize_rows(scores.numpy())


def _compute(request: MethodRequest) -> MethodResult:
    reading = read_self_stack(request, "Value zeroing")
    layer_count = len(reading.layers)
    layers = tuple(range(layer_count)) if request.layers is None else request.layers
    layers = tuple(sorted({layer % layer_count for layer in layers}))
    n = len(reading.encoded.tokens)
    per_layer = np.full((layer_count, n, n), np.nan)
    total = len(layers) * n
    with torch.inference_mode():
        for done_layers, layer in enumerate(layers):

            def on_batch(done: int, base: int = done_layers * n) -> None:
                report(request.progress, base + done, total, "Value zeroing")

            per_layer[layer] = value_zeroing_layer(*reading.layer_input(layer), on_batch)
    complete = len(layers) == layer_count
    result = request.result
    return MethodResult(
        method="value_zeroing",
        stack=request.stack,
        tokens=result.tokens,
        key_tokens=result.tokens,
        per_layer=per_layer,
        rollout=chain_layers(per_layer) if complete else None,
        layers_computed=layers,
        notes=("Cosine distance of each output when a token's values are zeroed; rows sum to 1.",),
    )


VALUE_ZEROING = register(
    Method(
        name="value_zeroing",
        label="value zeroing",
        help="Value zeroing (Mohebbi et al. 2023): remove token j's value vectors from every "
        "head, re-run the layer, and see how far each output moves (cosine distance); rows "
        "sum to 1. One re-run of the layer per token, so it costs about n forward passes.",
        compute=_compute,
        needs=Needs.FORWARD,
        cost=Cost(
            "1 + 0.4 * n * layers / L",
            Budget.TOKENS,
            "One re-run of each layer per token: 52 × a pass at 128 tokens on every layer.",
            memory="4 * L * heads * n**2 + 16 * L * n**2 + 4 * heads * n**2 + 2**27 + 2**28",
        ),
        unsupported=unsupported_reason,
        stacks=(SELF,),
        parameters=(Parameter("layers", "Layer", "Only the chosen layers are computed."),),
    )
)
