"""Ferrando & Voita's contribution graph, written after facebookresearch/llm-transparency-tool.

`routes/contributions.py` (`get_contributions`, `get_contributions_with_one_off_part`,
`get_attention_contributions`, `get_mlp_contributions`, `apply_threshold_and_renormalize`),
`routes/graph.py` (`GraphBuilder`, `build_full_graph`, `build_paths_to_predictions`) and
`server/app.py` (renormalise with the threshold, then keep the edges > 0; or keep those >
threshold) step by step, with string node names as theirs. Their TransformerLens quantities are
read with test-only hooks on the model's own modules:

* Pre-LN decoders (GPT-2; Llama, Mistral, Qwen2/3, Phi-3 with their key-value groups), as
  their tool reads them: resid_pre = the block's input, decomposed_attn from the value module's
  output (b_V included once: their `hook_v + b_V` adds it twice, their issue 35), resid_mid =
  resid_pre + the attention module's output, mlp_out = the MLP's output, resid_post =
  resid_mid + mlp_out. (Gemma's post-attention norm is in neither their code nor this.)
* BERT (post-LN, which their tool does not read): every vector through a norm's linear part
  divided by the pre-norm σ (population, no ε), the norm's bias in the whole only, as the ALTI
  reference does: the attention block with the attention's norm, the feed-forward block with the
  layer's output norm.
"""

from __future__ import annotations

import networkx as nx
import torch
import torch.nn.functional as F

import core
from tests.core.methods.references import (
    call_of,
    layer_modules,
    modules_of,
    recorded,
    value_layer,
)

EPS = 1e-5


def get_contributions(parts, whole):
    k = len(parts.shape) - len(whole.shape)
    distance = F.pairwise_distance(parts, whole.expand(parts.shape), p=1)
    whole_norm = torch.norm(whole, p=1, dim=-1)
    distance = (whole_norm - distance).clip(min=EPS)
    return distance / distance.sum(dim=tuple(range(k)), keepdim=True)


def get_contributions_with_one_off_part(parts, one_off, whole):
    k = len(parts.shape) - len(whole.shape)
    flat = torch.cat([parts.flatten(start_dim=0, end_dim=k - 1), one_off.unsqueeze(0)])
    contributions = get_contributions(flat, whole)
    parts_c, one_off_c = torch.split(contributions, flat.shape[0] - 1)
    return parts_c.unflatten(0, parts.shape[0:k]), one_off_c[0]


def apply_threshold_and_renormalize(threshold, c_blocks, c_residual):
    resid_dims, block_dims = len(c_residual.shape), len(c_blocks.shape)
    c_blocks = c_blocks * (c_blocks > threshold)
    c_residual = c_residual * (c_residual > threshold)
    # Theirs: `c_blocks.sum(dim=tuple(range(resid_dims, block_dims)))`. For the FFN the range
    # is empty and torch reads `dim=()` as every dimension, so each FFN share is divided by
    # the sentence's FFN total, against their docstring ("renormalized in order to sum up to 1
    # for each representation"). The edges kept are the same; the intent is kept here.
    summed = c_blocks
    if block_dims > resid_dims:
        summed = c_blocks.sum(dim=tuple(range(resid_dims, block_dims)))
    denom = c_residual + summed
    return (
        c_blocks / denom.reshape(denom.shape + (1,) * (block_dims - resid_dims)),
        c_residual / denom,
    )


def l_transform(x, w_ln):
    """The ALTI reference's linear part of a LayerNorm (centring, then γ)."""
    d = w_ln.shape[0]
    centring = torch.eye(d) - torch.ones(d, d) / d
    return torch.einsum("... e , e f , f g -> ... g", x, centring, torch.diag(w_ln))


def blocks(model: core.LoadedModel, text: str) -> list[dict[str, torch.Tensor]]:
    """Per layer: attention parts [pos, key_pos, head, d], residual part, whole; FFN and
    residual parts of the layer's output and that output (all for batch item 0)."""
    encoded = core.inference.encode(model, text)
    layers = layer_modules(model)
    pre_ln = modules_of(model, layers[0])["pre_ln"]
    watched = []
    for layer in layers:
        parts = modules_of(model, layer)
        if pre_ln:  # TransformerLens's hook_attn_out and hook_mlp_out
            extra = [getattr(layer, "attn", None) or layer.self_attn, layer.mlp]
        else:
            extra = [layer.attention.output.LayerNorm, layer.output.LayerNorm]
        watched += [parts["value"], *extra]
    with recorded(watched) as calls, torch.no_grad():
        output = model.model(**encoded.inputs, output_attentions=True, output_hidden_states=True)
    heads = model.num_heads
    out = []
    for index, layer in enumerate(layers):
        parts = modules_of(model, layer)
        resid_pre = output.hidden_states[index][0]
        _, value = call_of(calls, parts["value"], layers, index)
        v = value_layer(model, value)[0]  # [head, key, d_head] (grouped-query: its group's)
        dense = parts["dense_weight"]  # [d, all_head]
        w_o = dense.T.reshape(heads, dense.shape[1] // heads, dense.shape[0])
        pattern = output.attentions[index][0]  # [head, query, key]
        z = torch.einsum("hkv,hqk->qkhv", v, pattern)
        decomposed = torch.einsum("qkhv,hvd->qkhd", z, w_o)
        if pre_ln:
            attn = getattr(layer, "attn", None) or layer.self_attn
            _, attn_out = call_of(calls, attn, layers, index)
            resid_mid = resid_pre + attn_out[0][0]
            _, mlp_out = call_of(calls, layer.mlp, layers, index)
            mlp_out = mlp_out[0]
            attention = (decomposed, resid_pre, resid_mid)
            ffn = (mlp_out, resid_mid, resid_mid + mlp_out)
        else:
            ln1, ln2 = layer.attention.output.LayerNorm, layer.output.LayerNorm
            (pre1,), resid_mid = call_of(calls, ln1, layers, index)
            (pre2,), _ = call_of(calls, ln2, layers, index)
            pre1, resid_mid, pre2 = pre1[0], resid_mid[0], pre2[0]
            coefficient = 1 / (pre1 + ln1.eps).std(-1, unbiased=False)
            attention = (
                l_transform(decomposed, ln1.weight) * coefficient[:, None, None, None],
                l_transform(resid_pre, ln1.weight) * coefficient[:, None],
                l_transform(pre1, ln1.weight) * coefficient[:, None] + ln1.bias,
            )
            coefficient = 1 / (pre2 + ln2.eps).std(-1, unbiased=False)
            ffn = (
                l_transform(pre2 - resid_mid, ln2.weight) * coefficient[:, None],
                l_transform(resid_mid, ln2.weight) * coefficient[:, None],
                l_transform(pre2, ln2.weight) * coefficient[:, None] + ln2.bias,
            )
        # Their code is float32 throughout; float64 here keeps the ‖whole‖ − distance digits.
        out.append(
            dict(attention=tuple(t.double() for t in attention), ffn=tuple(t.double() for t in ffn))
        )
    return out


def before(layer: int, token: int) -> str:
    """The node attention layer `layer` reads token `token` from."""
    return f"I{layer - 1}_{token}" if layer > 0 else f"X0_{token}"


def build_full_graph(model: core.LoadedModel, text: str, renormalizing_threshold):
    """Their `build_full_graph`: nodes X0_t, A{l}_t, M{l}_t, I{l}_t (layers 0-based)."""
    layer_blocks = blocks(model, text)
    n_layers, n_tokens = len(layer_blocks), layer_blocks[0]["attention"][1].shape[0]
    graph = nx.DiGraph()

    def add_edge(u, v, w):
        if graph.has_edge(u, v):
            graph[u][v]["weight"] += w
        else:
            graph.add_edge(u, v, weight=w)

    for layer, block in enumerate(layer_blocks):
        decomposed, resid_pre, resid_mid = block["attention"]
        # key_pos head | pos: as get_attention_contributions rearranges them
        parts = decomposed.permute(1, 2, 0, 3)
        c_attn, c_resid_attn = get_contributions_with_one_off_part(parts, resid_pre, resid_mid)
        c_attn = c_attn.permute(2, 0, 1)  # [pos, key_pos, head]
        if renormalizing_threshold is not None:
            c_attn, c_resid_attn = apply_threshold_and_renormalize(
                renormalizing_threshold, c_attn, c_resid_attn
            )
        for token_from in range(n_tokens):
            for token_to in range(n_tokens):
                c = c_attn[token_to, token_from].sum().item()
                add_edge(before(layer, token_from), f"A{layer}_{token_to}", c)
        for token in range(n_tokens):
            add_edge(before(layer, token), f"A{layer}_{token}", c_resid_attn[token].item())
        mlp_out, resid_mid, resid_post = block["ffn"]
        contributions = get_contributions(torch.stack((mlp_out, resid_mid)), resid_post)
        c_ffn, c_resid_ffn = contributions[0], contributions[1]
        if renormalizing_threshold is not None:
            c_ffn, c_resid_ffn = apply_threshold_and_renormalize(
                renormalizing_threshold, c_ffn, c_resid_ffn
            )
        for token in range(n_tokens):
            add_edge(f"A{layer}_{token}", f"M{layer}_{token}", c_ffn[token].item())
            add_edge(f"M{layer}_{token}", f"I{layer}_{token}", c_ffn[token].item())
            add_edge(f"A{layer}_{token}", f"I{layer}_{token}", c_resid_ffn[token].item())
    return graph, n_layers


def paths_to(model: core.LoadedModel, text: str, position: int, threshold: float, renormalize=True):
    """Their app: `build_full_graph(renormalizing_threshold=threshold if renormalize else 0)`,
    then `build_paths_to_predictions(…, threshold=0 if renormalize else threshold)`."""
    graph, n_layers = build_full_graph(model, text, threshold if renormalize else 0.0)
    path_threshold = 0.0 if renormalize else threshold
    rgraph = graph.reverse()
    search_graph = nx.subgraph_view(
        rgraph, filter_edge=lambda u, v: rgraph[u][v]["weight"] > path_threshold
    )
    edges = nx.edge_dfs(search_graph, source=f"I{n_layers - 1}_{position}")
    return search_graph.edge_subgraph(edges).reverse()
