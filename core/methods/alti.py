"""ALTI, Aggregation of Layer-wise Token-to-token Interactions (Ferrando et al. 2022).

Per layer, the attention block's output for token i (after the residual and, in post-LN
models, the layer norm) is written as a sum of one vector per input token j,
y_i = Σ_j T_i(x_j) (+ the biases), with T_i(x_j) = Σ_h α_ij^h f^h(x_j) + [i = j] x_i passed
through the layer norm's linear part. Token j's contribution is how close T_i(x_j) is to y_i
in L1 distance: c_ij = max(0, ‖y_i‖₁ − ‖y_i − T_i(x_j)‖₁), rows normalised to sum 1. The
rollout multiplies the layers' matrices without adding a residual (it is already inside).

Conventions follow the authors' code (mt-upc/transformer-contributions, `ModelWrapper`,
`normalize_contributions(scaling="min_sum")`, `compute_joint_attention`):

* the layer norm's scale 1/σ_i is the population standard deviation of the pre-norm vector,
  without the norm's ε (the code adds ε to the vector, which leaves σ unchanged);
* the norm's bias β and the output projection's bias belong to y_i but to no T_i(x_j);
* pre-LN models (GPT-2, T5, the rotary decoders) use the code's pre-LN branch: no norm after
  the block, x_j is the layer's input (the residual) and the value vectors come from the normed
  input; with grouped-query attention head h reads its key-value group's values.

Gemma's extra norm of the attention output (before the residual) is not in the authors' code;
it is linearised at the actual output exactly as the code linearises LayerNorm: its 1/rms_i is
fixed per row i (from the real output, ε included) and its gain multiplies each part, so the
parts sum to the normed output (`core.architectures.Layer.attention_terms`).

Two variants (`variant=`; `compute_alti`):

* `DEFINITION` (the default, and the registry's "alti"): the distance as the paper defines
  it, so where no head attends from i to j (a causal model's later tokens) T_i(x_j) = 0 and
  c_ij = 0 exactly.
* `RELEASED`: the released code exactly. It measures distances with torch's
  `pairwise_distance`, which adds ε = 1e-6 to every coordinate of T_i(x_j) − y_i, so
  ‖y_i − T_i(x_j) − ε‖₁ differs from ‖y_i − T_i(x_j)‖₁ by up to d·ε, and a causal model's
  later tokens get c_ij = max(0, ‖y_i‖₁ − ‖−y_i + ε‖₁) > 0 wherever y_i has more positive
  than negative coordinates.

Measured by bench/alti_variants.py (largest |difference| of a per-layer entry between the
two, float32 on CPU): the embedded MiniLM 3.3e-5 at 16 tokens (median entry 6.1e-3) and
4.5e-4 at 128 tokens (median entry 6.2e-4, so the same order as a typical entry); the tiny
random GPT-2 of the tests (hidden size 32) 1.6e-4 at 14 tokens and 2.8e-4 at 23, where the
released code gives up to 2.8e-4 of a row to later tokens.
"""

from __future__ import annotations

import numpy as np
import torch

from core.architectures import Layer, unsupported_reason
from core.attention import run_attention
from core.costs import Cost
from core.errors import InvalidSelectionError
from core.families import SELF
from core.methods.base import Method, MethodRequest, MethodResult, Needs, Progress
from core.methods.registry import register
from core.methods.shared import (
    as_float64,
    chain_layers,
    normalize_rows,
    read_self_stack,
    report,
    row_chunks,
)
from core.models import LoadedModel

CHUNK_BUDGET = 1 << 25
"""Floats in one [j, rows, d] chunk (128 MB): large enough that the batched products are
not a multitude of tiny ones."""


DEFINITION = "definition"
RELEASED = "released"
VARIANTS = (DEFINITION, RELEASED)
RELEASED_EPSILON = 1e-6
"""torch's `pairwise_distance` ε, which the released code's distances include."""


def alti_layer(
    layer: Layer, x: torch.Tensor, attentions: torch.Tensor, variant: str = DEFINITION
) -> np.ndarray:
    """ALTI contributions of one layer, rows normalised, float64 `[n, n]`.

    `x` `[n, d]` is the layer's input hidden state, `attentions` `[H, n, n]` its weights, both
    in the layer's compute dtype; `variant` is `DEFINITION` or `RELEASED` (module docs).
    """
    if variant not in VARIANTS:
        raise InvalidSelectionError(f"ALTI's variant is one of {', '.join(VARIANTS)}.")
    moved, row_scale, output_bias = layer.attention_terms(x, attentions)  # f^h(x_j): [H, n, d]
    attentions = attentions * row_scale[None, :, None]  # a post-attention norm's 1/rms_i
    summed = torch.bmm(attentions, moved).sum(dim=0)  # Σ_j Σ_h α f: [n, d]
    before_norm = x + summed + row_scale[:, None] * output_bias  # what the norm reads
    if layer.pre_norm:
        parts_of_moved, parts_of_self = moved, x
        scale = torch.ones(x.shape[0], dtype=x.dtype)
        resultant = before_norm
    else:
        norm = layer.norm()
        parts_of_moved, parts_of_self = norm.linear_part(moved), norm.linear_part(x)
        centred = before_norm - before_norm.mean(dim=-1, keepdim=True)
        scale = centred.pow(2).mean(dim=-1).sqrt()  # σ_i, population std, no ε (as the code)
        resultant = norm.linear_part(before_norm) / scale[:, None]
        if norm.bias is not None:
            resultant = resultant + norm.bias
    n, width = x.shape
    # ‖T_i(x_j) − y_i‖₁ with T_i(x_j) = (Σ_h α_ij^h G^h_j + [i = j] g_i) / σ_i, computed as
    # ‖Σ_h α G + [i = j] g − σ_i y_i‖₁ / σ_i, batched over j: one bmm writes the [j, rows, d]
    # chunk, σ_i y_i is subtracted in place and one L1 norm reads it. The [n, n, d] tensor is
    # the method's inherent cost (an L1 norm does not factor). (baddbmm with a broadcast
    # offset would save a pass but falls back to one small matmul per batch: 30x slower.)
    by_source = attentions.permute(2, 1, 0).contiguous()  # [j, i, H]
    moved_by_source = parts_of_moved.transpose(0, 1).contiguous()  # [j, H, d]
    # Released: ‖T − y + ε‖₁ = ‖σT − σ(y − ε)‖₁ / σ.
    epsilon = RELEASED_EPSILON if variant == RELEASED else 0.0
    offsets = scale[:, None] * (resultant - epsilon)  # [i, d]
    distances = torch.empty(n, n, dtype=x.dtype)
    for rows in row_chunks(n, n * width, CHUNK_BUDGET):
        chunk = torch.bmm(by_source[:, rows.start : rows.stop], moved_by_source)  # [j, rows, d]
        chunk -= offsets[rows.start : rows.stop]
        inside = torch.arange(rows.start, rows.stop)
        chunk[inside, inside - rows.start] += parts_of_self[inside]  # the residual, j = i
        distances[rows.start : rows.stop] = torch.linalg.vector_norm(chunk, ord=1, dim=-1).T
    distances /= scale[:, None]
    contributions = (resultant.abs().sum(dim=-1)[:, None] - distances).clamp(min=0)
    if variant == DEFINITION:
        # Where no head attends from i to j (a causal model's later tokens) T_i(x_j) is 0 and
        # the contribution is exactly ‖y_i‖₁ − ‖y_i‖₁ = 0; say so rather than keep rounding
        # noise.
        silent = (attentions.sum(dim=0) == 0) & ~torch.eye(n, dtype=torch.bool)
        contributions[silent] = 0.0
    return normalize_rows(as_float64(contributions))


NOTES = {
    DEFINITION: ("L1 contributions with residual and layer norm, rows sum to 1.",),
    RELEASED: (
        "L1 contributions with residual and layer norm, rows sum to 1.",
        "As released: every distance includes pairwise_distance's ε = 1e-6.",
    ),
}


def compute_alti(
    model: LoadedModel,
    text: str,
    *,
    variant: str = DEFINITION,
    text_pair: str | None = None,
    progress: Progress | None = None,
) -> MethodResult:
    """ALTI of `text` on `model` as defined (`DEFINITION`, what `compute_method(…, "alti")`
    gives) or exactly as released (`RELEASED`); see the module docs for the difference."""
    if variant not in VARIANTS:
        raise InvalidSelectionError(f"ALTI's variant is one of {', '.join(VARIANTS)}.")
    result = run_attention(model, text, text_pair)
    return _compute(MethodRequest(result=result, model=model, progress=progress), variant)


def _compute(request: MethodRequest, variant: str = DEFINITION) -> MethodResult:
    reading = read_self_stack(request, "ALTI")
    layer_count = len(reading.layers)
    per_layer = []
    with torch.inference_mode():
        for index in range(layer_count):
            per_layer.append(alti_layer(*reading.layer_input(index), variant))
            report(request.progress, index + 1, layer_count, "ALTI")
    per_layer = np.stack(per_layer)
    result = request.result
    return MethodResult(
        method="alti",
        stack=request.stack,
        tokens=result.tokens,
        key_tokens=result.tokens,
        per_layer=per_layer,
        rollout=chain_layers(per_layer),
        layers_computed=tuple(range(layer_count)),
        notes=NOTES[variant],
    )


ALTI = register(
    Method(
        name="alti",
        label="ALTI",
        help="ALTI (Ferrando et al. 2022): how much each token contributes to each output of "
        "the attention block, residual connection and layer norm included, measured by the L1 "
        "distance of its part to the whole; rows sum to 1. The rollout chains the layers, so "
        "row i of the last layer says which input tokens the output at i is made of.",
        compute=_compute,
        needs=Needs.FORWARD,
        cost=Cost(
            "1.3 + 0.011 * n",
            note="2.7 × a pass at 128 tokens, 6.8 × at 512.",
            memory="4 * L * heads * n**2 + 16 * L * n**2 + 12 * heads * n**2 + 2**27 + 2**28",
        ),
        unsupported=unsupported_reason,
        stacks=(SELF,),
    )
)
