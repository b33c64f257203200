"""Encoding text and running the single forward pass that serves attention and predictions."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core import admission
from core.errors import EmptyTextError, TruncationWarning, UnsupportedModelError
from core.models import LoadedModel, ModelKind
from core.tokens import Token, build_tokens, normalize_masks


@dataclass(frozen=True)
class Encoded:
    """A tokenized input, truncated to the model's maximum if needed."""

    text: str
    """The text as tokenized (mask spellings normalised to the model's mask token)."""
    text_pair: str | None
    inputs: dict[str, torch.Tensor]
    tokens: list[Token]
    dropped_tokens: int
    segment_b_start: int | None

    @property
    def input_ids(self) -> torch.Tensor:
        return self.inputs["input_ids"]


@dataclass(frozen=True)
class ForwardOutput:
    attentions: np.ndarray
    """float32 `[layers, heads, seq, seq]`."""
    logits: torch.Tensor | None
    """`[seq, vocab]` for models with a language-model head, else None."""


_LONE_SURROGATES = re.compile("[\ud800-\udfff]")


def _readable(text: str) -> str:
    """`text` with unpaired UTF-16 surrogates (from broken copy-paste or JSON) replaced by U+FFFD.

    The tokenizers cannot encode them and would raise a TypeError; one character for one keeps
    character offsets valid.
    """
    return _LONE_SURROGATES.sub("\ufffd", text)


def _check_text(text: str, what: str = "text") -> str:
    if text is None or not str(text).strip():
        raise EmptyTextError(f"The {what} is empty: type a sentence to analyse.")
    return _readable(str(text))


def encode(model: LoadedModel, text: str, text_pair: str | None = None) -> Encoded:
    """Tokenize `text` (and an optional second segment) for `model`.

    Inputs longer than `model.max_length` are truncated (longest segment first) and the number
    of dropped tokens is recorded and warned about, never silently.
    """
    tokenizer = model.tokenizer
    text = normalize_masks(_check_text(text), tokenizer.mask_token)
    if text_pair is not None and not text_pair.strip():
        text_pair = None
    if text_pair is not None:
        text_pair = normalize_masks(_readable(text_pair), tokenizer.mask_token)

    full_length = len(tokenizer(text, text_pair, truncation=False, verbose=False)["input_ids"])
    dropped = max(0, full_length - model.max_length)
    encoding = tokenizer(
        text,
        text_pair,
        return_tensors="pt",
        truncation="longest_first" if dropped else False,
        max_length=model.max_length if dropped else None,
        return_offsets_mapping=getattr(tokenizer, "is_fast", False),
        verbose=False,
    )
    tokens = build_tokens(encoding, tokenizer)
    if not any(not t.is_special for t in tokens):
        raise EmptyTextError(
            "The text has no words the model can read (only spaces, control characters or "
            "special tokens). Type a sentence."
        )
    if dropped:
        warnings.warn(
            f"Input has {full_length} tokens but {model.name} reads at most {model.max_length}: "
            f"the last {dropped} tokens were dropped.",
            TruncationWarning,
            stacklevel=2,
        )
    segment_b_start = next((t.index for t in tokens if t.segment == 1), None)
    inputs = {
        key: value.to(model.device)
        for key, value in encoding.items()
        if key in tokenizer.model_input_names or key in ("input_ids", "attention_mask")
    }
    return Encoded(text, text_pair, inputs, tokens, dropped, segment_b_start)


def forward(model: LoadedModel, inputs: dict[str, Any]) -> ForwardOutput:
    """One forward pass returning every layer's attention and, if there is an LM head, logits.

    Runs under `torch.inference_mode()`; the shared model is not modified. Takes a slot of the
    process-wide admission limit (`core.admission`), so it may wait behind other visitors' work
    and raise `ServerBusyError`.
    """
    # Outside the try below, which would turn the busy error into "could not run".
    with admission.slot("forward pass"):
        return _forward_admitted(model, inputs)


def _forward_admitted(model: LoadedModel, inputs: dict[str, Any]) -> ForwardOutput:
    network = model.model
    try:
        with torch.inference_mode():
            if model.kind is ModelKind.ENCODER_DECODER:
                output = network.get_encoder()(**inputs, output_attentions=True)
            else:
                output = network(**inputs, output_attentions=True)
    except Exception as exc:
        # A checkpoint that passed the config checks can still want other inputs (pixels,
        # audio features) or misreport its length limit, and its own code can fail in any way;
        # say so instead of a traceback.
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise UnsupportedModelError(
            f"{model.name} could not run on this text ({type(exc).__name__}: {detail}). It may "
            "not be a text model, or it needs inputs Attention Atlas does not provide."
        ) from exc
    attentions = getattr(output, "attentions", None)
    if not attentions or any(a is None for a in attentions):
        raise UnsupportedModelError(
            f"{model.name} did not return attention weights (its attention implementation "
            "does not expose them)."
        )
    stacked = torch.stack([a[0] for a in attentions]).to(torch.float32).cpu().numpy()
    logits = getattr(output, "logits", None)
    return ForwardOutput(stacked, None if logits is None else logits[0].float().cpu())
