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

Encoder-decoder models (BART, T5) follow the same code's encoder-decoder generator (its DETR
`Generator.generate_ours`, the paper's rules 6-10): the target is the decoder's prediction at a
decoder position (default: the last, i.e. the token after the target text). Encoder:
R_ss ← R_ss + Ā R_ss. Each decoder layer: self-attention R_qq ← R_qq + Ā R_qq and
R_qs ← R_qs + Ā R_qs (both from the values before the layer); then cross attention
R_qs ← R_qs + R̄_qqᵀ Ā R̄_ss, where R̄ is R with its identity removed, rows divided by their sum
and the identity added back (eq. 8-9). One departure from the code: a row with nothing but
the identity stays the identity's row, where the code's 0 / 0 makes the whole update NaN and
then 0 (see `without_identity`). The stacks show Ā of their own attention as `per_layer`
and, as `rollout[l]`, R_ss (encoder), R_qq (decoder) or R_qs (cross) after layer l. Decoder
positions after the target cannot change its logit; the decoder is run on the prefix up to
the target, and their rows are 0.

Gradients flow through the input embeddings only (`core.inference.forward_with_grad`): the
shared model's parameters never require gradients and no hook is registered on it.
"""

from __future__ import annotations

import warnings

import torch

from core.costs import Cost
from core.errors import InvalidSelectionError, TruncationWarning, UnsupportedModelError
from core.families import CROSS, DECODER_SELF, SELF
from core.inference import encode, forward_with_grad, guarded
from core.kinds import ModelKind
from core.methods.base import Method, MethodRequest, MethodResult, Needs, Parameter
from core.methods.registry import register
from core.models import LoadedModel


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
    if kind is ModelKind.ENCODER_DECODER:
        return len(result.decoder_tokens or ()) - 1
    return 0


def avg_heads(attention: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """`[H, q, k]` → (`[H, q, k]` (∇A ⊙ A)⁺, `[q, k]` its mean over heads), detached, in
    float32 (float64 for a float64 model): a half-precision model's relevance would lose its
    small terms as it accumulates."""
    dtype = torch.promote_types(attention.dtype, torch.float32)
    per_head = (gradient.detach().to(dtype) * attention.detach().to(dtype)).clamp(min=0)
    return per_head, per_head.mean(dim=0)


def without_identity(relevance: torch.Tensor) -> torch.Tensor:
    """R̄ `[n, n]`: R − I with rows divided by their sum, plus I (eq. 8-9).

    A row that is the identity's alone (nothing added to it: 0 / 0) stays the identity's row.
    The authors' code lets it become NaN, which makes the whole cross-attention update NaN,
    then 0; a causal decoder's first token, which attends to itself only, often has such a
    row, so the code's way would drop most updates of a text decoder.
    """
    eye = torch.eye(relevance.shape[-1], dtype=relevance.dtype)
    rest = relevance - eye
    totals = rest.sum(dim=-1, keepdim=True)
    return torch.where(totals > 0, rest / totals, 0.0) + eye


def _compute(request: MethodRequest) -> MethodResult:
    model, result = request.model, request.result
    if model.kind is ModelKind.ENCODER_DECODER:
        return _encoder_decoder(request)
    n = len(result.tokens)
    position = _position(request, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        encoded = encode(model, result.text, result.text_pair)
    passes, _ = forward_with_grad(model, encoded.inputs)
    attentions = passes.attentions[SELF]
    with guarded(model):
        if passes.logits is not None:
            target, note = _predicted_logit(model, passes.logits[0, position], position)
        else:
            hidden = getattr(passes.raw, "last_hidden_state", None)
            if hidden is None:
                raise UnsupportedModelError(f"{model.name} returned no output to differentiate.")
            target = hidden[0, position].norm()
            note = f"target: norm of the output at position {position}"
        gradients = torch.autograd.grad(target, attentions)
    heads, averaged = zip(
        *(avg_heads(a[0], g[0]) for a, g in zip(attentions, gradients, strict=True)),
        strict=True,
    )
    relevance = torch.eye(n, dtype=averaged[0].dtype)
    rolled = []
    for layer in averaged:
        relevance = relevance + layer @ relevance
        rolled.append(relevance)
    return _result(request, result.tokens, result.tokens, heads, averaged, rolled, note)


def _position(request: MethodRequest, n: int) -> int:
    position = default_target(request) if request.target is None else request.target
    if not -n <= position < n:
        raise InvalidSelectionError(f"Target position {position} is outside the {n} tokens.")
    return position % n


def _predicted_logit(model: LoadedModel, logits: torch.Tensor, position: int):
    """(the predicted token's logit at `position`, a note naming it)."""
    token = int(logits.argmax())
    label = model.tokenizer.convert_ids_to_tokens(token)
    return logits[token], f"target: logit of '{label}' (predicted) at position {position}"


def _encoder_decoder(request: MethodRequest) -> MethodResult:
    """Rules 6-10 of the module docstring, for the stack the request asks for."""
    model, result = request.model, request.result
    decoder_tokens = result.decoder_tokens or []
    t = len(decoder_tokens)
    position = _position(request, t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        encoded = encode(model, result.text)
    # The decoder is causal: the prefix up to the target is all its prediction reads.
    prefix = torch.tensor([[token.token_id for token in decoder_tokens[: position + 1]]])
    passes, _ = forward_with_grad(model, encoded.inputs, decoder_input_ids=prefix)
    stacks = (SELF, DECODER_SELF, CROSS)
    with guarded(model):
        if passes.logits is None:
            raise UnsupportedModelError(f"{model.name} returned no logits to differentiate.")
        target, note = _predicted_logit(model, passes.logits[0, position], position)
        flat = [a for name in stacks for a in passes.attentions[name]]
        flat_gradients = torch.autograd.grad(target, flat)
    cams: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    start = 0
    for name in stacks:
        count = len(passes.attentions[name])
        pairs = zip(flat[start : start + count], flat_gradients[start : start + count], strict=True)
        cams[name] = [avg_heads(a[0], g[0]) for a, g in pairs]
        start += count
    s, q = len(result.tokens), position + 1
    dtype = cams[SELF][0][1].dtype
    r_ss = torch.eye(s, dtype=dtype)
    rolled: dict[str, list[torch.Tensor]] = {name: [] for name in stacks}
    for _, averaged in cams[SELF]:
        r_ss = r_ss + averaged @ r_ss
        rolled[SELF].append(r_ss)
    r_qq = torch.eye(q, dtype=dtype)
    r_qs = torch.zeros(q, s, dtype=dtype)
    for (_, self_cam), (_, cross_cam) in zip(cams[DECODER_SELF], cams[CROSS], strict=True):
        r_qq, r_qs = r_qq + self_cam @ r_qq, r_qs + self_cam @ r_qs
        r_qs = r_qs + without_identity(r_qq).T @ (cross_cam @ without_identity(r_ss))
        rolled[DECODER_SELF].append(r_qq)
        rolled[CROSS].append(r_qs)
    stack = request.stack
    heads, averaged = zip(*cams[stack], strict=True)
    if stack == SELF:
        return _result(request, result.tokens, result.tokens, heads, averaged, rolled[SELF], note)
    keys = result.tokens if stack == CROSS else decoder_tokens
    # Rows after the target were not run: they hold nothing (0), at the full decoder length.
    grow = (0, 0, 0, t - q) if stack == CROSS else (0, t - q, 0, t - q)
    padded = [
        [torch.nn.functional.pad(matrix, grow) for matrix in matrices]
        for matrices in (heads, averaged, rolled[stack])
    ]
    return _result(request, decoder_tokens, keys, *padded, note + " of the decoder")


def _result(request, tokens, key_tokens, heads, averaged, rolled, note) -> MethodResult:
    return MethodResult(
        method="grad_attention",
        stack=request.stack,
        tokens=tokens,
        key_tokens=key_tokens,
        per_layer=torch.stack(list(averaged)).double().numpy(),
        per_head=torch.stack(list(heads)).double().numpy(),
        rollout=torch.stack(list(rolled)).double().numpy(),
        layers_computed=tuple(range(len(averaged))),
        notes=(note,),
    )


GRAD_ATTENTION = register(
    Method(
        name="grad_attention",
        label="gradient × attention",
        help="Gradient-weighted attention (Chefer et al. 2021): each head's attention times "
        "its gradient for the prediction (the masked or next token's logit, an "
        "encoder-decoder's next target token's; for an encoder, the size of the [CLS] "
        "output), positive part, heads averaged; the rollout accumulates it through the "
        "layers (R ← R + ĀR; cross attention by the authors' encoder-decoder rule).",
        compute=_compute,
        needs=Needs.BACKWARD,
        cost=Cost(
            "0.8 + 0.0055 * n",
            note="1.5 × a pass at 128 tokens, 3.6 × at 512.",
            memory="24 * L * heads * n**2 + 24 * L * n**2 + 2**28",
        ),
        has_heads=True,
        square_only=False,
        parameters=(Parameter("target", "Target", "The position whose prediction is explained."),),
    )
)
