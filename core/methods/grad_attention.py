"""Gradient-weighted attention relevance (Chefer et al. 2021, "Generic attention-model
explainability for interpreting bi-modal and encoder-decoder transformers").

One backward pass from a target: the logit of the predicted token at the target position
(the first mask of a masked LM, the last token of a causal LM: the next-token prediction), or,
for an encoder without a prediction head, the norm of the target position's output ([CLS] by
default). For each layer, Ā = mean over heads of (∇A ⊙ A)⁺, the positive part of gradient
times attention; relevance starts at the identity and accumulates as R ← R + Ā R, layer by
layer from the input, as the authors' code does (hila-chefer/Transformer-MM-Explainability,
`avg_heads` and `apply_self_attention_rules`). `per_layer` is Ā, `per_head` the per-head
(∇A ⊙ A)⁺, `rollout[l]` R after layer l (not normalised: relevance, not shares).

Gradients flow through the input embeddings only (`core.inference.forward_with_grad`): the
shared model's parameters never require gradients and no hook is registered on it.
"""

from __future__ import annotations

import warnings

import torch

from core.errors import InvalidSelectionError, TruncationWarning, UnsupportedModelError
from core.families import SELF
from core.inference import encode, forward_with_grad, guarded
from core.kinds import ModelKind
from core.methods.base import Method, MethodRequest, MethodResult, Needs, Parameter
from core.methods.registry import register
from core.models import LoadedModel


def _unsupported(model: LoadedModel) -> str | None:
    if model.kind is ModelKind.ENCODER_DECODER:
        return (
            "explaining an encoder-decoder's prediction means tracing relevance from a decoder "
            "token back through the cross attention into the encoder, which is not "
            "implemented yet."
        )
    return None


def default_target(request: MethodRequest) -> int:
    """The position explained when the request names none (see the module docstring)."""
    result = request.result
    kind = request.model.kind
    if kind is ModelKind.MASKED_LM:
        if result.mask_positions:
            return result.mask_positions[0]
        words = [t.index for t in result.tokens if not t.is_special]
        return words[-1]
    if kind is ModelKind.CAUSAL_LM:
        return len(result.tokens) - 1
    return 0


def _compute(request: MethodRequest) -> MethodResult:
    model, result = request.model, request.result
    n = len(result.tokens)
    position = default_target(request) if request.target is None else request.target
    if not -n <= position < n:
        raise InvalidSelectionError(f"Target position {position} is outside the {n} tokens.")
    position %= n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        encoded = encode(model, result.text, result.text_pair)
    passes, _ = forward_with_grad(model, encoded.inputs)
    attentions = passes.attentions[SELF]
    with guarded(model):
        if passes.logits is not None:
            logits = passes.logits[0, position]
            token = int(logits.argmax())
            target = logits[token]
            label = model.tokenizer.convert_ids_to_tokens(token)
            note = f"target: logit of '{label}' (predicted) at position {position}"
        else:
            hidden = getattr(passes.raw, "last_hidden_state", None)
            if hidden is None:
                raise UnsupportedModelError(f"{model.name} returned no output to differentiate.")
            target = hidden[0, position].norm()
            note = f"target: norm of the output at position {position}"
        gradients = torch.autograd.grad(target, attentions)
    per_head = []
    for attention, gradient in zip(attentions, gradients, strict=True):
        per_head.append((gradient[0] * attention[0]).detach().clamp(min=0))
    per_head = torch.stack(per_head)  # [layers, H, n, n]
    averaged = per_head.mean(dim=1)
    relevance = torch.eye(n, dtype=averaged.dtype)
    rolled = []
    for layer in averaged:
        relevance = relevance + layer @ relevance
        rolled.append(relevance)
    return MethodResult(
        method="grad_attention",
        stack=request.stack,
        tokens=result.tokens,
        key_tokens=result.tokens,
        per_layer=averaged.double().numpy(),
        per_head=per_head.double().numpy(),
        rollout=torch.stack(rolled).double().numpy(),
        layers_computed=tuple(range(len(attentions))),
        notes=(note,),
    )


GRAD_ATTENTION = register(
    Method(
        name="grad_attention",
        label="gradient × attention",
        help="Gradient-weighted attention (Chefer et al. 2021): each head's attention times "
        "its gradient for the prediction (the masked or next token's logit; for an encoder, "
        "the size of the [CLS] output), positive part, heads averaged; the rollout "
        "accumulates it through the layers (R ← R + ĀR).",
        compute=_compute,
        needs=Needs.BACKWARD,
        has_heads=True,
        unsupported=_unsupported,
        stacks=(SELF,),
        parameters=(Parameter("target", "Target", "The position whose prediction is explained."),),
    )
)
