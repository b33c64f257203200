"""Attention norms (Kobayashi et al. 2020, "Attention is not only a weight").

Each head moves α_ij^h f^h(x_j) from token j to token i, with f^h(x) = (x W_V^h + b_V^h) W_O^h
(W_O^h the head's rows of the output projection). The per-head score is its length
‖α_ij^h f^h(x_j)‖, the per-layer score the length of the heads' sum ‖Σ_h α_ij^h f^h(x_j)‖;
neither is normalised (they are lengths in the hidden space). As in the authors' code
(gorokoba560/norm-analysis-of-transformer) x is what the attention reads: the layer's input
for post-LN models (BERT, DistilBERT, BART), its layer-normed input for pre-LN ones (GPT-2,
T5, the rotary decoders), and the output projection's bias is not part of f. With grouped-query
attention, head h's f reads the values of its key-value group. Gemma's norm of the attention
output is linearised at the actual output (`core.architectures.Layer.attention_terms`): f is
multiplied by its gain and row i by its 1/rms_i, so the heads' parts still sum to what the
block adds to the residual stream.
"""

from __future__ import annotations

import numpy as np
import torch

from core.architectures import unsupported_reason
from core.costs import Cost
from core.families import SELF
from core.methods.base import Method, MethodRequest, MethodResult, Needs
from core.methods.registry import register
from core.methods.shared import as_float64, read_self_stack, report


def _compute(request: MethodRequest) -> MethodResult:
    reading = read_self_stack(request, "The attention norm")
    layer_count = len(reading.layers)
    per_head, per_layer = [], []
    with torch.inference_mode():
        for index in range(layer_count):
            layer, x, attentions = reading.layer_input(index)  # [n, d], [H, n, n]
            moved, row_scale, _ = layer.attention_terms(x, attentions)  # [H, n, d], [n]
            attentions = attentions * row_scale[None, :, None]  # 1 without a post-norm
            # α ≥ 0, so ‖α f‖ = α ‖f‖: no [H, n, n, d] tensor is needed for the heads.
            per_head.append(as_float64(attentions * moved.norm(dim=-1)[:, None, :]))
            # ‖Σ_h α_ij^h f^h_j‖² = Σ_h,k α_ij^h α_ij^k ⟨f^h_j, f^k_j⟩: with each token's
            # [H, H] Gram matrix the layer norm costs n²H² instead of n²Hd (float64, so the
            # heads' cancellations keep their digits).
            moved64, weights64 = moved.double(), attentions.double()
            gram = torch.bmm(moved64.transpose(0, 1), moved64.permute(1, 2, 0))  # [j, H, H]
            by_source = weights64.permute(2, 1, 0).contiguous()  # [j, i, H]; strided: 40x slower
            squared = (torch.bmm(by_source, gram) * by_source).sum(dim=-1).T  # [i, j]
            per_layer.append(squared.clamp(min=0).sqrt().numpy())
            report(request.progress, index + 1, layer_count, "The attention norms")
    result = request.result
    return MethodResult(
        method="attention_norm",
        stack=request.stack,
        tokens=result.tokens,
        key_tokens=result.tokens,
        per_layer=np.stack(per_layer),
        per_head=np.stack(per_head),
        rollout=None,
        layers_computed=tuple(range(layer_count)),
        notes=("‖α f(x)‖ per head and ‖Σ_h α f(x)‖ per layer; not normalised.",),
    )


ATTENTION_NORM = register(
    Method(
        name="attention_norm",
        label="attention norm",
        help="Attention norms (Kobayashi et al. 2020): the length of what each head actually "
        "moves from token j to token i, ‖α·f(x_j)‖, instead of the weight α alone; the layer "
        "view is the length of the heads' sum. Large weights on tokens with small value "
        "vectors (such as [SEP]) shrink.",
        compute=_compute,
        needs=Needs.FORWARD,
        has_heads=True,
        cost=Cost(
            "1.5",
            note="1.4 × a pass at 128 tokens, 1.5 × at 512 (bert-base).",
            memory="20 * L * heads * n**2 + 16 * L * n**2 + 28 * heads * n**2 + 2**28",
        ),
        unsupported=unsupported_reason,
        stacks=(SELF,),
    )
)
