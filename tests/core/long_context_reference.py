"""Independent references for the long-context head measures: each checkpoint loaded straight
from transformers with eager attention, and the measures computed from the definitions."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import torch

from tests.tiny_models import SEQ2SEQ_FAMILIES, auto_class

#: Longer than the window of 64 the sink measures use, and than the tiny models' window of 8.
SINK_TEXT = "The researchers visualized attention patterns in the garden. " * 25


@cache
def eager_model(path: Path, family: str) -> torch.nn.Module:
    return auto_class(family).from_pretrained(str(path), attn_implementation="eager").eval()


def eager_pass(path: Path, family: str, input_ids: list[int]):
    """`(attentions float64 [layers, heads, n, n], logits float64 [n, vocab] or None)` of the
    model's own eager pass (the encoder's self-attention for encoder-decoder models)."""
    network = eager_model(path, family)
    ids = torch.tensor([input_ids])
    with torch.inference_mode():
        if family in SEQ2SEQ_FAMILIES:
            output = network.get_encoder()(input_ids=ids, output_attentions=True)
        else:
            output = network(input_ids=ids, output_attentions=True)
    attentions = torch.stack([a[0] for a in output.attentions]).double().numpy()
    logits = getattr(output, "logits", None)
    return attentions, None if logits is None else logits[0].double().numpy()


def sink_reference(attentions: np.ndarray, epsilon: float, window: int) -> list[dict]:
    """One dict per (layer, head), the measures written out row by row from their definitions."""
    layers, heads, n, _ = attentions.shape
    rows = []
    for layer in range(layers):
        for head in range(heads):
            weights = attentions[layer, head]
            first = weights[:, 0].mean()
            local = np.mean([weights[t, max(0, t - window + 1) : t + 1].sum() for t in range(n)])
            entropies = []
            for t in range(n):
                rest = weights[t, 1:]
                if rest.sum() > 0:
                    shares = rest[rest > 0] / rest.sum()
                    entropies.append(-(shares * np.log2(shares)).sum())
            rows.append(
                {
                    "layer": layer,
                    "head": head,
                    "first_token_share": first,
                    "is_sink": first > epsilon,
                    "local_share": local,
                    "entropy_without_first": np.mean(entropies),
                }
            )
    return rows
