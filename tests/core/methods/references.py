"""Independent reference computations written after the methods' released code.

Each follows its authors' code step by step (hooks on the model's own modules to read the
value vectors and pre-norm states, the same tensor expressions, the same normalisation), in
plain torch from the model's weights. None imports the implementation under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

import core


def perturb(network: torch.nn.Module, seed: int = 7) -> None:
    """Redraw biases, norm weights and projection matrices of `network` in place."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in network.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if "embed" in name or "shared" in name or "relative_attention_bias" in name:
                continue
            if name.endswith("bias"):
                parameter.copy_(0.2 * noise)
            elif parameter.dim() == 1:  # norm scales (LayerNorm, T5's RMSNorm)
                parameter.copy_(1.0 + 0.3 * noise)
            elif parameter.dim() == 2:  # projections: sharper attention, larger values
                parameter.copy_(0.25 * noise)


def layer_modules(model: core.LoadedModel) -> list[torch.nn.Module]:
    """The self-stack layer modules, once per layer (ALBERT's shared one repeated)."""
    network = model.model
    name = type(network).__name__
    if name.startswith("Bert"):
        return list(getattr(network, "bert", network).encoder.layer)
    if name.startswith("Roberta"):
        return list(network.roberta.encoder.layer)
    if name.startswith("DistilBert"):
        return list(network.distilbert.transformer.layer)
    if name.startswith("Albert"):
        shared = network.albert.encoder.albert_layer_groups[0].albert_layers[0]
        return [shared] * model.num_layers
    if name.startswith("GPT2"):
        return list(network.transformer.h)
    if name.startswith("Bart"):
        return list(network.model.encoder.layers)
    if name.startswith("T5"):
        return list(network.encoder.block)
    if name.startswith(MODERN):
        return list(network.model.layers)
    raise AssertionError(name)


MODERN = ("Llama", "Mistral", "Qwen2", "Qwen3", "Gemma2", "Gemma3", "Phi3")
"""Rotary grouped-query decoders: pre-RMSNorm, values shared by each key-value group."""


def modules_of(model: core.LoadedModel, layer: torch.nn.Module) -> dict:
    """Per family: value module, output projection (weight as [out, in]), norms, pre-LN."""
    name = type(model.model).__name__
    if name.startswith(("Bert", "Roberta")):
        return dict(
            value=layer.attention.self.value,
            dense_weight=layer.attention.output.dense.weight,
            dense_bias=layer.attention.output.dense.bias,
            ln1=layer.attention.output.LayerNorm,
            pre_ln=False,
        )
    if name.startswith("DistilBert"):
        return dict(
            value=layer.attention.v_lin,
            dense_weight=layer.attention.out_lin.weight,
            dense_bias=layer.attention.out_lin.bias,
            ln1=layer.sa_layer_norm,
            pre_ln=False,
        )
    if name.startswith("Albert"):
        return dict(
            value=layer.attention.value,
            dense_weight=layer.attention.dense.weight,
            dense_bias=layer.attention.dense.bias,
            ln1=layer.attention.LayerNorm,
            pre_ln=False,
        )
    if name.startswith("GPT2"):
        return dict(
            value=layer.attn.c_attn,  # fused: the value is the last third of its output
            dense_weight=layer.attn.c_proj.weight.T,  # Conv1D stores [in, out]
            dense_bias=layer.attn.c_proj.bias,
            ln1=layer.ln_1,
            pre_ln=True,
        )
    if name.startswith("Bart"):
        return dict(
            value=layer.self_attn.v_proj,
            dense_weight=layer.self_attn.out_proj.weight,
            dense_bias=layer.self_attn.out_proj.bias,
            ln1=layer.self_attn_layer_norm,
            pre_ln=False,
        )
    if name.startswith("T5"):
        attention = layer.layer[0].SelfAttention
        return dict(
            value=attention.v,
            dense_weight=attention.o.weight,
            dense_bias=torch.zeros(attention.o.weight.shape[0]),
            ln1=layer.layer[0].layer_norm,
            pre_ln=True,
        )
    if name.startswith(MODERN):
        attention = layer.self_attn
        return dict(
            value=getattr(attention, "v_proj", None) or attention.qkv_proj,  # Phi3: fused
            dense_weight=attention.o_proj.weight,
            dense_bias=torch.zeros(attention.o_proj.weight.shape[0]),
            ln1=layer.input_layernorm,
            pre_ln=True,
            # Gemma: an RMSNorm of the attention output alone, gain 1 + weight.
            post=layer.post_attention_layernorm if name.startswith("Gemma") else None,
        )
    raise AssertionError(name)


def value_output(model: core.LoadedModel, output: torch.Tensor) -> torch.Tensor:
    """The value part of the value module's output `[B, n, all_head]`."""
    name = type(model.model).__name__
    if name.startswith("GPT2"):
        return output[..., 2 * output.shape[-1] // 3 :]
    if name.startswith("Phi3"):  # [query | key | value], the value K*d_h wide
        config = model.model.config
        width = config.num_key_value_heads * config.hidden_size // config.num_attention_heads
        return output[..., -width:]
    return output


def value_layer(model: core.LoadedModel, output: torch.Tensor) -> torch.Tensor:
    """`[B, H, n, d_h]` values as each query head reads them (its key-value group's)."""
    config = model.model.config
    kv_heads = getattr(config, "num_key_value_heads", None) or model.num_heads
    values = transpose_for_scores(value_output(model, output), kv_heads)
    return values.repeat_interleave(model.num_heads // kv_heads, dim=1)


def post_norm_terms(parts: dict, calls, layers, index: int):
    """Gemma's post-attention RMSNorm, linearised at its actual input (the attention output):
    (gain `[d]`, 1/rms per query row `[1, 1, n, 1]`), or (1, 1) without one."""
    post = parts.get("post")
    if post is None:
        return 1.0, 1.0
    (states,), _ = call_of(calls, post, layers, index)
    rms = (states.float().pow(2).mean(-1) + post.eps).sqrt()
    return 1.0 + post.weight, (1.0 / rms)[:, None, :, None]


@contextmanager
def recorded(modules: list[torch.nn.Module]) -> Iterator[dict[int, list]]:
    """Record every call's inputs and output of `modules`, keyed by id (test-only hooks)."""
    calls: dict[int, list] = {id(module): [] for module in modules}
    handles = []
    for module in {id(m): m for m in modules}.values():

        def hook(module, args, output):
            calls[id(module)].append((args, output))

        handles.append(module.register_forward_hook(hook))
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def run(model: core.LoadedModel, text: str):
    """One forward pass with input ids (not embeddings), value modules and norms recorded."""
    encoded = core.inference.encode(model, text)
    layers = layer_modules(model)
    watched = []
    for layer in layers:
        parts = modules_of(model, layer)
        watched += [parts["value"], parts["ln1"]] + ([parts["post"]] if parts.get("post") else [])
    with recorded(watched) as calls, torch.no_grad():
        network = model.model
        if model.kind is core.ModelKind.ENCODER_DECODER:
            network = network.get_encoder()
        output = network(**encoded.inputs, output_attentions=True, output_hidden_states=True)
    return encoded, layers, calls, output


def call_of(calls: dict[int, list], module: torch.nn.Module, layers: list, index: int) -> tuple:
    """(args, output) of `module`'s call in layer `index` (ALBERT reuses one layer)."""
    return calls[id(module)][layers[:index].count(layers[index])]


def transpose_for_scores(x: torch.Tensor, heads: int) -> torch.Tensor:
    return x.view(*x.shape[:-1], heads, x.shape[-1] // heads).permute(0, 2, 1, 3)


def kobayashi_norms(model: core.LoadedModel, text: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-head ‖αf(x)‖ `[L, H, n, n]` and per-layer ‖Σ_h αf(x)‖ `[L, n, n]`, as the authors'
    modified BertSelfAttention computes them (value layer × dense weight viewed per head)."""
    _, layers, calls, output = run(model, text)
    heads = model.num_heads
    per_head, per_layer = [], []
    for index, layer in enumerate(layers):
        parts = modules_of(model, layer)
        _, value = call_of(calls, parts["value"], layers, index)
        dense = parts["dense_weight"]
        dense = dense.view(dense.shape[0], heads, dense.shape[1] // heads)
        transformed = torch.einsum("bhsv,dhv->bhsd", value_layer(model, value), dense)
        gain, row_scale = post_norm_terms(parts, calls, layers, index)
        probs = output.attentions[index] * row_scale
        weighted = torch.einsum("bhks,bhsd->bhksd", probs, transformed * gain)
        per_head.append(torch.norm(weighted, dim=-1)[0])
        per_layer.append(torch.norm(weighted.sum(dim=1), dim=-1)[0])
    return torch.stack(per_head).double().numpy(), torch.stack(per_layer).double().numpy()


def alti(
    model: core.LoadedModel, text: str, epsilon: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    """ALTI `[L, n, n]` and its rollout, after mt-upc/transformer-contributions:
    `ModelWrapper.get_contributions` (both its post-LN and pre-LN branches),
    `normalize_contributions(scaling="min_sum", resultant_norm=‖resultant‖₁)` and
    `compute_joint_attention`. `epsilon` is `pairwise_distance`'s: the released code's 1e-6
    by default, 0 for the distance as defined."""
    _, layers, calls, output = run(model, text)
    heads = model.num_heads
    hidden_states = output.hidden_states
    contributions, resultant_norms = [], []
    for index, layer in enumerate(layers):
        parts = modules_of(model, layer)
        hidden = hidden_states[index]
        _, value = call_of(calls, parts["value"], layers, index)
        dense = parts["dense_weight"]
        dense = dense.view(dense.shape[0], heads, dense.shape[1] // heads)
        transformed = torch.einsum("bhsv,dhv->bhsd", value_layer(model, value), dense)
        gain, row_scale = post_norm_terms(parts, calls, layers, index)
        probs = output.attentions[index] * row_scale
        weighted = torch.einsum("bhks,bhsd->bhksd", probs, transformed * gain)
        summed = weighted.sum(dim=1)
        n = hidden.shape[1]
        residual = torch.einsum("sk,bsd->bskd", torch.eye(n), hidden)
        residual_weighted = summed + residual
        if parts["pre_ln"]:
            transformed_vectors = residual_weighted
            resultant = transformed_vectors.sum(dim=2) + parts["dense_bias"]
        else:
            ln = parts["ln1"]
            (pre_ln_states,), _ = call_of(calls, ln, layers, index)

            def l_transform(x, w_ln):
                mean_transform = (
                    torch.eye(w_ln.shape[0])
                    - torch.ones(w_ln.shape[0], w_ln.shape[0]) / w_ln.shape[0]
                )
                return torch.einsum(
                    "... e , e f , f g -> ... g", x, mean_transform, torch.diag(w_ln)
                )

            coefficient = 1 / (pre_ln_states + ln.eps).std(-1, unbiased=False).view(1, -1, 1)
            attn_output = l_transform(residual_weighted, ln.weight).sum(dim=2)
            resultant = (attn_output + l_transform(parts["dense_bias"], ln.weight)) * coefficient
            resultant = resultant + ln.bias
            transformed_vectors = l_transform(residual_weighted, ln.weight) * coefficient.unsqueeze(
                -1
            )
        importance = -F.pairwise_distance(
            transformed_vectors, resultant.unsqueeze(2), p=1, eps=epsilon
        )
        contributions.append(importance[0])
        resultant_norms.append(torch.norm(resultant[0], p=1, dim=-1))
    normalized = []
    for importance, norm in zip(contributions, resultant_norms, strict=True):
        shifted = torch.clip(importance + torch.abs(norm.unsqueeze(1)), min=0)
        normalized.append(shifted / shifted.sum(dim=-1, keepdim=True))
    normalized = torch.stack(normalized)
    joint = torch.zeros_like(normalized)
    joint[0] = normalized[0]
    for index in range(1, len(normalized)):
        joint[index] = normalized[index] @ joint[index - 1]
    return normalized.double().numpy(), joint.double().numpy()


def value_zeroing(model: core.LoadedModel, text: str) -> tuple[np.ndarray, np.ndarray]:
    """Value zeroing `[L, n, n]` and its rollout, after hmohebbi/ValueZeroing
    (`scoring/value_zeroing.py`): for each layer and token t, the layer re-run with t's value
    vectors set to zero (here: the whole model run with a hook zeroing them in that layer, so
    masks and position biases are the model's), cosine distance (float64) of each token's new
    and original layer output, rows divided by their sum, joint attention without residual."""
    encoded = core.inference.encode(model, text)
    layers = layer_modules(model)
    n = len(encoded.tokens)
    network = model.model
    runner = network.get_encoder() if model.kind is core.ModelKind.ENCODER_DECODER else network

    def layer_outputs(zero_layer: int | None, zero_token: int | None) -> list[torch.Tensor]:
        outputs: list[torch.Tensor] = []
        value_calls = {"count": 0}

        def zero_value(module, args, output):
            call = value_calls["count"]
            value_calls["count"] += 1
            if call != zero_layer:
                return None
            output = output.clone()
            start = output.shape[-1] - value_output(model, output).shape[-1]
            output[:, zero_token, start:] = 0
            return output

        def keep_output(module, args, output):
            outputs.append(output[0] if isinstance(output, tuple) else output)

        value_modules = {
            id(modules_of(model, layer)["value"]): modules_of(model, layer)["value"]
            for layer in layers
        }
        handles = [m.register_forward_hook(zero_value) for m in value_modules.values()]
        handles += [
            m.register_forward_hook(keep_output) for m in {id(x): x for x in layers}.values()
        ]
        try:
            with torch.no_grad():
                runner(**encoded.inputs)
        finally:
            for handle in handles:
                handle.remove()
        return outputs

    original = layer_outputs(None, None)
    scores = np.zeros((len(layers), n, n))
    for layer in range(len(layers)):
        for token in range(n):
            new = layer_outputs(layer, token)[layer][0].double().numpy()
            old = original[layer][0].double().numpy()
            cosine = (new * old).sum(-1) / (
                np.linalg.norm(new, axis=-1) * np.linalg.norm(old, axis=-1)
            )
            scores[layer, :, token] = 1 - cosine
    scores = scores / scores.sum(axis=-1, keepdims=True)
    joint = np.zeros_like(scores)
    joint[0] = scores[0]
    for layer in range(1, len(layers)):
        joint[layer] = scores[layer].dot(joint[layer - 1])
    return scores, joint


def chefer_relevance(model: core.LoadedModel, text: str, position: int):
    """Gradient × attention after hila-chefer/Transformer-MM-Explainability: a private copy
    of the model with gradients, attention gradients kept, one-hot target logit (or the
    output norm for an encoder) backpropagated, `avg_heads` = (grad · cam)⁺ averaged over
    heads, `R = I; R += cam @ R` per layer. Returns (per-layer cams, final R list)."""
    import copy

    network = copy.deepcopy(model.model).requires_grad_(True)
    encoded = core.inference.encode(model, text)
    output = network(**encoded.inputs, output_attentions=True)
    for attention in output.attentions:
        attention.retain_grad()
    logits = getattr(output, "logits", None)
    if logits is not None:
        one_hot = torch.zeros(1, logits.shape[-1])
        one_hot[0, int(logits[0, position].argmax())] = 1
        target = torch.sum(one_hot * logits[:, position])
    else:
        target = output.last_hidden_state[0, position].norm()
    network.zero_grad()
    target.backward()
    n = len(encoded.tokens)
    relevance = torch.eye(n)
    cams, rolled = [], []
    for attention in output.attentions:
        grad = attention.grad.reshape(-1, n, n)
        cam = attention.detach().reshape(-1, n, n)
        cam = (grad * cam).clamp(min=0).mean(dim=0)
        relevance = relevance + torch.matmul(cam, relevance)
        cams.append(cam)
        rolled.append(relevance.clone())
    return torch.stack(cams).double().numpy(), torch.stack(rolled).double().numpy()


def chefer_encoder_decoder_relevance(
    model: core.LoadedModel, text: str, target_text: str, position: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Encoder-decoder relevance after hila-chefer/Transformer-MM-Explainability's DETR
    `Generator.generate_ours` (rules 6-10, `normalize_self_attention=True`,
    `apply_self_in_rule_10=True`, no LRP): a private copy of the model with gradients, the
    decoder run on the target's prefix up to `position`, the one-hot logit backpropagated;
    encoder `R_ii += cam @ R_ii`; per decoder layer `R_qq += cam @ R_qq`, `R_qi += cam @ R_qi`
    (both from the old values), then `R_qi += handle_residual(R_qq).T @ cam_qi @
    handle_residual(R_ii)`. `handle_residual` keeps a row that is the identity's alone as the
    identity's (the one documented departure from the code, which makes it NaN).

    Returns {stack: (per-layer cams `[L, q, k]`, relevance after each layer `[L, q, k]`)}, the
    decoder's rows only up to `position`.
    """
    import copy

    network = copy.deepcopy(model.model).requires_grad_(True)
    encoded = core.inference.encode(model, text)
    decoder_tokens = core.run_attention(model, text, target_text=target_text).decoder_tokens
    prefix = torch.tensor([[t.token_id for t in decoder_tokens[: position + 1]]])
    output = network(**encoded.inputs, decoder_input_ids=prefix, output_attentions=True)
    stacks = {
        "self": output.encoder_attentions,
        "decoder_self": output.decoder_attentions,
        "cross": output.cross_attentions,
    }
    for attentions in stacks.values():
        for attention in attentions:
            attention.retain_grad()
    logits = output.logits
    one_hot = torch.zeros(1, logits.shape[-1])
    one_hot[0, int(logits[0, position].argmax())] = 1
    network.zero_grad()
    torch.sum(one_hot * logits[:, position]).backward()

    def avg_heads(attention):
        cam = attention.detach()[0]
        return (attention.grad[0] * cam).clamp(min=0).mean(dim=0)

    def handle_residual(relevance):
        rest = relevance - torch.eye(relevance.shape[-1])
        totals = rest.sum(dim=-1, keepdim=True)
        rest = torch.where(totals > 0, rest / totals, torch.zeros_like(rest))
        return rest + torch.eye(relevance.shape[-1])

    s, q = len(encoded.tokens), position + 1
    r_ii, r_qq, r_qi = torch.eye(s), torch.eye(q), torch.zeros(q, s)
    out: dict[str, tuple[list, list]] = {name: ([], []) for name in stacks}
    for attention in stacks["self"]:
        cam = avg_heads(attention)
        r_ii = r_ii + torch.matmul(cam, r_ii)
        out["self"][0].append(cam)
        out["self"][1].append(r_ii.clone())
    for self_attention, cross_attention in zip(
        stacks["decoder_self"], stacks["cross"], strict=True
    ):
        cam = avg_heads(self_attention)
        r_qq_add, r_qi_add = torch.matmul(cam, r_qq), torch.matmul(cam, r_qi)
        r_qq, r_qi = r_qq + r_qq_add, r_qi + r_qi_add
        cam_qi = avg_heads(cross_attention)
        r_qi = r_qi + torch.matmul(
            handle_residual(r_qq).t(), torch.matmul(cam_qi, handle_residual(r_ii))
        )
        out["decoder_self"][0].append(cam)
        out["decoder_self"][1].append(r_qq.clone())
        out["cross"][0].append(cam_qi)
        out["cross"][1].append(r_qi.clone())
    return {
        name: (torch.stack(cams).double().numpy(), torch.stack(rolled).double().numpy())
        for name, (cams, rolled) in out.items()
    }
