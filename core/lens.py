"""The logit lens: what each layer's residual stream would predict if the model stopped there.

For a masked-LM or causal model, the hidden state at one position after each layer is passed
through the model's final norm (GPT-2's `ln_f`, a rotary decoder's RMSNorm; BERT-like models
have none before the head) and its own language-model head (Gemma's final soft-cap included),
as its architecture adapter (`core.architectures`) says; the softmax's top tokens per layer form
the table. Layer 0 is the embeddings, layer L the model's actual prediction. A masked LM
predicts the token *at* the position, a causal LM the token *after* it. The maths runs in
float32 (float64 for a float64 model) whatever the model's dtype.
"""

from __future__ import annotations

import operator
import warnings

import pandas as pd
import torch

from core.architectures import require_architecture
from core.capture import fast_attention
from core.errors import PositionOutOfRangeError, TruncationWarning, UnsupportedModelError
from core.inference import encode, guarded
from core.models import LoadedModel
from core.tokens import token_text

LENS_COLUMNS = ("layer", "rank", "token", "token_id", "probability")


def check_position(position: int, n: int) -> int:
    """`position` as an index into `n` tokens (negative counts from the end)."""
    try:
        index = operator.index(position)  # ints and numpy integers, not floats or strings
    except TypeError:
        raise PositionOutOfRangeError(f"Position {position!r} is not a token index.") from None
    if not -n <= index < n:
        raise PositionOutOfRangeError(f"Position {index} is outside the {n} tokens (0..{n - 1}).")
    return index % n


def logit_lens(model: LoadedModel, text: str, position: int, top_k: int = 5) -> pd.DataFrame:
    """Top-`top_k` next (causal) or masked (MLM) tokens at `position` after every layer.

    Returns a DataFrame with columns layer (0 = embeddings … L = output), rank (1 = most
    likely), token (readable text), token_id and probability (float64), `(L + 1) * top_k`
    rows. Raises `UnsupportedModelError` for models without a known LM head and
    `PositionOutOfRangeError` for a position outside the input.
    """
    if not isinstance(top_k, int) or top_k < 1:
        raise PositionOutOfRangeError("top_k must be a positive whole number.")
    architecture = require_architecture(model, "The logit lens")
    architecture.require_unembedding()  # fail before the forward pass
    with warnings.catch_warnings():
        warnings.simplefilter("default", TruncationWarning)
        encoded = encode(model, text)
    position = check_position(position, len(encoded.tokens))
    # The fast attention (SDPA): the lens reads hidden states only, so no layer keeps its
    # [heads, n, n] weights and a text of thousands of tokens costs one ordinary pass.
    with guarded(model, len(encoded.tokens)), torch.inference_mode(), fast_attention():
        passes = model.family.run(model.model, encoded.inputs, None, output_hidden_states=True)
    hidden = getattr(passes.raw, "hidden_states", None)
    if not hidden or passes.logits is None:
        raise UnsupportedModelError(f"{model.name} did not return its hidden states and logits.")
    rows = []
    with guarded(model), torch.inference_mode():
        residual = torch.stack([h[0, position] for h in hidden[:-1]])  # [L, d]
        layers = architecture.lens_logits(residual)  # [L, V]
        final = passes.logits[0, position][None].to(layers.dtype)
        logits = torch.cat([layers, final])  # [L + 1, V]
        probabilities = logits.double().softmax(dim=-1)
        top = probabilities.topk(min(top_k, probabilities.shape[-1]), dim=-1)
    tokenizer = model.tokenizer
    for layer, (values, ids) in enumerate(zip(top.values, top.indices, strict=True)):
        for rank, (value, token_id) in enumerate(zip(values, ids, strict=True), start=1):
            token_id = int(token_id)
            rows.append((layer, rank, token_text(tokenizer, token_id), token_id, float(value)))
    return pd.DataFrame(rows, columns=list(LENS_COLUMNS))
