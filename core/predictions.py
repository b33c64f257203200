"""Masked-word prediction from the same forward pass that yields the attention."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from core.errors import NoMaskedLMHeadError, NoMaskError, PositionOutOfRangeError
from core.inference import encode, predict_logits
from core.models import PRESETS, LoadedModel, ModelKind
from core.tokens import count_masks, token_text


@dataclass(frozen=True)
class Prediction:
    """One candidate for a masked position."""

    token: str
    """The candidate as `tokenizer.decode` spells it, surrounding spaces removed."""
    score: float
    """Probability (softmax over the vocabulary)."""
    token_id: int


def require_mlm_head(model: LoadedModel) -> None:
    """Raise `NoMaskedLMHeadError` unless `model` can fill masks."""
    if model.kind is not ModelKind.MASKED_LM:
        suggestions = ", ".join(n for n, p in PRESETS.items() if p.kind is ModelKind.MASKED_LM)
        raise NoMaskedLMHeadError(
            f"{model.name} has no trained masked-word head ({model.kind.value} model), so it "
            f"cannot predict masked words. Pick a masked-LM model, e.g. {suggestions}."
        )


def top_predictions(
    logits: torch.Tensor, positions: Sequence[int], tokenizer, top_k: int
) -> list[list[Prediction]]:
    """Top-k candidates at each of `positions`, best first: rows of `logits` `[rows, vocab]`."""
    top_k = max(1, min(int(top_k), logits.shape[-1]))
    results = []
    for position in positions:
        probabilities = logits[position].softmax(dim=-1)
        scores, ids = probabilities.topk(top_k)
        results.append(
            [
                Prediction(token_text(tokenizer, i).strip(), float(s), int(i))
                for s, i in zip(scores.tolist(), ids.tolist(), strict=True)
            ]
        )
    return results


def predict_masked(
    model: LoadedModel, text: str, top_k: int = 5, *, position: int | None = None
) -> list[list[Prediction]]:
    """Fill the masks of `text`: one list of `top_k` predictions per mask, best first.

    `[MASK]` and `<mask>` are both accepted whatever the model's own spelling. With `position`,
    the token at that index of the unmasked input (as numbered by `run_attention`) is masked
    instead, like the seed API's `mask_index`; the result then holds one list.
    """
    require_mlm_head(model)
    encoded = encode(model, text)
    mask_id = model.tokenizer.mask_token_id
    input_ids = encoded.input_ids
    if position is not None:
        tokens = encoded.tokens
        if not 0 <= position < len(tokens):
            raise PositionOutOfRangeError(
                f"Token position {position} is out of range: the input has {len(tokens)} tokens "
                f"(0 to {len(tokens) - 1})."
            )
        if tokens[position].is_special:
            raise PositionOutOfRangeError(
                f"Position {position} is the special token {tokens[position].text}: pick a word."
            )
        input_ids = input_ids.clone()
        input_ids[0, position] = mask_id
        positions = [position]
    else:
        positions = (input_ids[0] == mask_id).nonzero().flatten().tolist()
        if not positions:
            if count_masks(text):
                raise NoMaskError(
                    "Every mask lies beyond the model's maximum length and was truncated away: "
                    "shorten the text."
                )
            raise NoMaskError(
                f"The text has no mask. Write {model.tokenizer.mask_token} (or [MASK]) where a "
                "word should be predicted, e.g. 'The cat sat on the [MASK].'"
            )
    # The fast attention (SDPA): predictions need no attention weights.
    logits = predict_logits(model, {**encoded.inputs, "input_ids": input_ids}, positions)
    return top_predictions(logits, range(len(positions)), model.tokenizer, top_k)
