"""Capturing every head's attention for a text."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.inference import encode, forward
from core.models import LoadedModel, ModelKind
from core.predictions import Prediction, top_predictions
from core.tokens import Token


@dataclass(frozen=True, eq=False)
class AttentionResult:
    """Attention of every head for one input.

    `attentions[l, h, i, j]` is the weight query position `i` puts on key position `j` in head
    `h` of layer `l`: float32 `[layers, heads, seq, seq]`, exactly the model's weights.
    """

    model_name: str
    text: str
    text_pair: str | None
    tokens: list[Token]
    attentions: np.ndarray
    segment_b_start: int | None = None
    """Index of the first token of the second sentence of a pair, else None."""
    dropped_tokens: int = 0
    """Tokens cut off because the input exceeded the model's maximum length."""
    predictions: list[list[Prediction]] = field(default_factory=list)
    """Top predictions for each mask in the text (masked-LM models only), from the same pass."""

    @property
    def labels(self) -> list[str]:
        return [t.text for t in self.tokens]

    @property
    def num_layers(self) -> int:
        return self.attentions.shape[0]

    @property
    def num_heads(self) -> int:
        return self.attentions.shape[1]

    @property
    def mask_positions(self) -> list[int]:
        return [t.index for t in self.tokens if t.is_mask]

    @property
    def special_positions(self) -> list[int]:
        return [t.index for t in self.tokens if t.is_special]

    @property
    def truncated(self) -> bool:
        return self.dropped_tokens > 0


def run_attention(
    model: LoadedModel, text: str, text_pair: str | None = None, *, top_k: int = 5
) -> AttentionResult:
    """Run `text` (and an optional second sentence) through `model` once.

    Returns the attention of every layer and head and, for masked-LM models, the `top_k`
    predictions of each mask in the text from the same forward pass.
    """
    encoded = encode(model, text, text_pair)
    output = forward(model, encoded.inputs)
    predictions: list[list[Prediction]] = []
    masks = [t.index for t in encoded.tokens if t.is_mask]
    if masks and model.kind is ModelKind.MASKED_LM and output.logits is not None:
        predictions = top_predictions(output.logits, masks, model.tokenizer, top_k)
    return AttentionResult(
        model_name=model.name,
        text=encoded.text,
        text_pair=encoded.text_pair,
        tokens=encoded.tokens,
        attentions=output.attentions,
        segment_b_start=encoded.segment_b_start,
        dropped_tokens=encoded.dropped_tokens,
        predictions=predictions,
    )
