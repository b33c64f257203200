"""Capturing every head's attention for a text.

Encoders give one self-attention stack. Causal language models give one (lower-triangular)
stack plus next-token predictions. Encoder-decoder models give three stacks: encoder
self-attention, decoder self-attention and cross attention (decoder queries, encoder keys).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from core.capture import fast_attention
from core.errors import (
    EmptyTextError,
    PositionOutOfRangeError,
    TruncationWarning,
    UnsupportedModelError,
)
from core.exact import DENSE_BUDGET_BYTES, CapturedStack, DenseStack
from core.families import CROSS, DECODER_SELF, SELF, StackSpec
from core.inference import encode, forward, guarded
from core.models import LoadedModel, ModelKind
from core.predictions import Prediction, top_predictions
from core.row_stats import DEFAULT_LOCAL_WINDOW
from core.tokens import Token, tokenize, tokens_from_ids

MAX_GENERATED_TARGET = 40
"""Tokens generated greedily when an encoder-decoder model is given no target text."""


@dataclass(frozen=True, eq=False)
class AttentionResult:
    """Attention of every head for one input, one stack per stack of the model's family.

    Every family has the "self" stack over the text's `tokens`; encoder-decoder models add
    "decoder_self" `[layers, heads, t, t]` and "cross" `[layers, heads, t, seq]`, whose queries
    are the `decoder_tokens`. Each stack is a float32 `[layers, heads, q, k]` array or, for the
    "self" stack of `run_attention`, a `core.exact.CapturedStack` that recomputes any piece
    exactly from the captured queries, keys and normalisers, without the n² tensor.

    Read it in pieces at any length: `row`, `tile`, `computed`, `pooled` (and `statistics`),
    each with `stack="self"` by default; there, weights the model never computes (future tokens,
    keys outside a sliding window) are NaN. `attentions` (and `stack(name)`) give the whole
    array, with the model's 0 in those cells, when it fits `budget` bytes, and raise
    `AttentionTooLargeError` otherwise. `nbytes` is what the result holds.
    """

    model_name: str
    text: str
    text_pair: str | None
    tokens: list[Token]
    attention_stacks: dict[str, np.ndarray | CapturedStack]
    stack_specs: tuple[StackSpec, ...]
    segment_b_start: int | None = None
    """Index of the first token of the second sentence of a pair, else None."""
    dropped_tokens: int = 0
    """Tokens cut off because the input exceeded the model's maximum length."""
    predictions: list[list[Prediction]] = field(default_factory=list)
    """Top predictions for each mask in the text (masked-LM models only), from the same pass."""
    model_kind: ModelKind = ModelKind.ENCODER
    next_token: list[Prediction] = field(default_factory=list)
    """Causal LMs: the most likely next tokens after the text, from the same pass."""
    generated_from: int | None = None
    """Causal LMs after `generate_with_attention`: positions from here on were generated."""
    target_text: str | None = None
    decoder_tokens: list[Token] | None = None
    target_generated: bool = False
    """Encoder-decoder models: True when no target was given and it was generated greedily."""
    dropped_target_tokens: int = 0
    """Encoder-decoder models: target tokens cut off beyond the model's maximum length."""
    budget: int = DENSE_BUDGET_BYTES
    """Largest whole `[layers, heads, q, k]` float32 array `attentions` builds, in bytes."""

    def pieces(self, stack: str = SELF) -> DenseStack | CapturedStack:
        """One stack as an object answering `row`, `tile`, `computed`, `pooled`, `statistics`."""
        self.stack_spec(stack)
        held = self.attention_stacks[stack]
        if isinstance(held, CapturedStack):
            return held
        return DenseStack(held, causal=self.stack_spec(stack).causal)

    def row(self, layer: int, head: int, query: int, *, stack: str = SELF) -> np.ndarray:
        """Float32 `[keys]`: query `query`'s weights in one head, exact (NaN: not computed)."""
        return self.pieces(stack).row(layer, head, query)

    def tile(
        self, layer: int, head: int, rows: range, cols: range, *, stack: str = SELF
    ) -> np.ndarray:
        """Float32 `[len(rows), len(cols)]` of one head, exact (NaN where not computed)."""
        return self.pieces(stack).tile(layer, head, rows, cols)

    def computed(self, layer: int, rows: range, cols: range, *, stack: str = SELF) -> np.ndarray:
        """Bool `[len(rows), len(cols)]`: True where the model computes a weight (causality,
        and the sliding window of windowed layers: Mistral, Gemma's local layers)."""
        return self.pieces(stack).computed(layer, rows, cols)

    def pooled(
        self,
        layer: int,
        head: int,
        size: int = 256,
        reduce: str = "mean",
        *,
        stack: str = SELF,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact overview of one head: `(grid float32 [size, size], row_edges, col_edges)`.

        Each cell is the mean (or max) of the computed weights in its block (NaN if none);
        see `core.exact.pooling_edges`. Streams rows in blocks whatever the length.
        """
        return self.pieces(stack).pooled(layer, head, size, reduce)  # type: ignore[arg-type]

    def statistics(
        self, window: int = DEFAULT_LOCAL_WINDOW, *, stack: str = SELF
    ) -> dict[str, np.ndarray]:
        """Per-head `[layers, heads]` means of `core.row_stats.ROW_STATISTICS`, blockwise."""
        return self.pieces(stack).statistics(window)

    def window(self, layer: int) -> int | None:
        """The sliding window of one layer of the "self" stack (None: global attention)."""
        held = self.attention_stacks[SELF]
        return held.window(layer) if isinstance(held, CapturedStack) else None

    @property
    def nbytes(self) -> int:
        """Bytes the result's attention holds (captured tensors, and any whole arrays)."""
        return sum(self.pieces(name).nbytes for name in self.stacks)

    @property
    def attentions(self) -> np.ndarray:
        """The "self" stack, `[layers, heads, seq, seq]`, built within `budget`."""
        return self._whole(SELF)

    def _whole(self, name: str) -> np.ndarray:
        held = self.attention_stacks[name]
        return held.dense(self.budget) if isinstance(held, CapturedStack) else held

    @property
    def decoder_attentions(self) -> np.ndarray | None:
        return self._whole(DECODER_SELF) if DECODER_SELF in self.attention_stacks else None

    @property
    def cross_attentions(self) -> np.ndarray | None:
        return self._whole(CROSS) if CROSS in self.attention_stacks else None

    @property
    def labels(self) -> list[str]:
        return [t.text for t in self.tokens]

    @property
    def num_layers(self) -> int:
        return self.pieces(SELF).num_layers

    @property
    def num_heads(self) -> int:
        return self.pieces(SELF).num_heads

    @property
    def mask_positions(self) -> list[int]:
        return [t.index for t in self.tokens if t.is_mask]

    @property
    def special_positions(self) -> list[int]:
        return [t.index for t in self.tokens if t.is_special]

    @property
    def truncated(self) -> bool:
        return self.dropped_tokens > 0

    @property
    def stacks(self) -> tuple[str, ...]:
        """Names of the attention stacks this result holds (see `stack`)."""
        return tuple(spec.name for spec in self.stack_specs if spec.name in self.attention_stacks)

    def stack_spec(self, name: str = SELF) -> StackSpec:
        """Label, description, causality and squareness of one stack."""
        for spec in self.stack_specs:
            if spec.name == name and name in self.attention_stacks:
                return spec
        raise PositionOutOfRangeError(
            f"This result has no '{name}' attention: it has {', '.join(self.stacks)}."
        )

    def stack(self, name: str = SELF) -> tuple[np.ndarray, list[Token], list[Token]]:
        """`(attentions [layers, heads, q, k], query tokens, key tokens)` of one stack."""
        queries, keys = self.stack_tokens(name)
        return (self.attentions if name == SELF else self._whole(name)), queries, keys

    def stack_tokens(self, name: str = SELF) -> tuple[list[Token], list[Token]]:
        """`(query tokens, key tokens)` of one stack, without building its whole array."""
        self.stack_spec(name)
        if name == SELF:
            return self.tokens, self.tokens
        assert self.decoder_tokens is not None  # the family yields them with these stacks
        return self.decoder_tokens, self.tokens if name == CROSS else self.decoder_tokens

    def is_causal(self, name: str = SELF) -> bool:
        """Whether a stack's queries only see earlier keys (its upper triangle is not data)."""
        return self.stack_spec(name).causal


def run_attention(
    model: LoadedModel,
    text: str,
    text_pair: str | None = None,
    *,
    target_text: str | None = None,
    top_k: int = 5,
    budget: int = DENSE_BUDGET_BYTES,
) -> AttentionResult:
    """Run `text` (and an optional second sentence) through `model` once.

    Returns the attention of every layer and head and, from the same forward pass, the
    `top_k` predictions of each mask (masked LMs) or of the next token (causal LMs). For
    encoder-decoder models `text` is the source and `target_text` the decoder's input; without
    a target one is generated greedily and `target_generated` says so.

    The pass runs the model's fast attention (SDPA where it has one) and keeps the "self"
    stack as captured queries, keys and normalisers (`core.exact.CapturedStack`): any length
    the model accepts fits, and `row`, `tile`, `pooled` are exact. `attentions` builds the
    whole array once, when it takes at most `budget` bytes.
    """
    if model.kind is ModelKind.ENCODER_DECODER:
        return replace(_run_encoder_decoder(model, text, target_text), budget=budget)
    encoded = encode(model, text, text_pair)
    # Only the logits predicted from are kept (a long text's [seq, vocab] would not fit).
    masks = [t.index for t in encoded.tokens if t.is_mask]
    if model.kind is ModelKind.MASKED_LM:
        wanted = masks
    else:
        wanted = [len(encoded.tokens) - 1] if model.kind is ModelKind.CAUSAL_LM else []
    output = forward(model, encoded.inputs, capture=True, logits_at=wanted)
    predictions: list[list[Prediction]] = []
    next_token: list[Prediction] = []
    if masks and model.kind is ModelKind.MASKED_LM and output.logits is not None:
        predictions = top_predictions(output.logits, range(len(masks)), model.tokenizer, top_k)
    if model.kind is ModelKind.CAUSAL_LM and output.logits is not None:
        next_token = top_predictions(output.logits, [0], model.tokenizer, top_k)[0]
    return AttentionResult(
        model_name=model.name,
        text=encoded.text,
        text_pair=encoded.text_pair,
        tokens=encoded.tokens,
        attention_stacks=output.stacks,
        stack_specs=model.family.stacks,
        segment_b_start=encoded.segment_b_start,
        dropped_tokens=encoded.dropped_tokens,
        predictions=predictions,
        model_kind=model.kind,
        next_token=next_token,
        budget=budget,
    )


def _run_encoder_decoder(
    model: LoadedModel, source: str, target_text: str | None
) -> AttentionResult:
    encoded = encode(model, source)
    network, tokenizer = model.model, model.tokenizer
    generated = target_text is None or not target_text.strip()
    dropped_target = 0
    with (
        guarded(model, len(encoded.tokens)),
        torch.inference_mode(),
        fast_attention(),
    ):
        if generated:
            # The decoder's input is its own greedy output, start token included.
            decoder_ids = network.generate(
                **encoded.inputs,
                max_new_tokens=MAX_GENERATED_TARGET,
                do_sample=False,
                num_beams=1,
            )
        else:
            full = len(tokenize(tokenizer, text_target=target_text, verbose=False).input_ids)
            dropped_target = max(0, full - model.max_length)
            if dropped_target:
                warnings.warn(
                    f"The target has {full} tokens but {model.name} reads at most "
                    f"{model.max_length}: the last {dropped_target} were dropped.",
                    TruncationWarning,
                    stacklevel=3,
                )
            labels = tokenize(
                tokenizer,
                text_target=target_text,
                return_tensors="pt",
                truncation=True,
                max_length=model.max_length,
            ).input_ids.to(model.device)
            if labels.shape[-1] == 0:
                raise EmptyTextError("The target text has no tokens the model can read.")
            # Exactly what the decoder sees in training: the target shifted right.
            decoder_ids = network.prepare_decoder_input_ids_from_labels(labels=labels)
    output = forward(model, encoded.inputs, decoder_input_ids=decoder_ids, capture=True)
    decoder_tokens = tokens_from_ids(decoder_ids[0].tolist(), tokenizer)
    return AttentionResult(
        model_name=model.name,
        text=encoded.text,
        text_pair=None,
        tokens=encoded.tokens,
        attention_stacks=output.stacks,
        stack_specs=model.family.stacks,
        dropped_tokens=encoded.dropped_tokens,
        model_kind=model.kind,
        target_text=tokenizer.decode(decoder_ids[0], skip_special_tokens=True)
        if generated
        else target_text,
        decoder_tokens=decoder_tokens,
        target_generated=generated,
        dropped_target_tokens=dropped_target,
    )


def predict_next(model: LoadedModel, text: str, top_k: int = 5) -> list[Prediction]:
    """The `top_k` most likely tokens to follow `text` (causal language models)."""
    if model.kind is not ModelKind.CAUSAL_LM:
        raise UnsupportedModelError(
            f"{model.name} is a {model.kind.value} model, not a causal language model: it does "
            "not predict the next token. Try 'gpt2' or 'distilgpt2'."
        )
    return run_attention(model, text, top_k=top_k).next_token


def generate_with_attention(
    model: LoadedModel, prompt: str, max_new_tokens: int = 8
) -> AttentionResult:
    """Greedily extend `prompt` and return the attention over prompt + generated tokens.

    Rows from `generated_from` on are the generated tokens: each shows what that token
    attended to in the prompt and in the tokens generated before it.
    """
    if model.kind is not ModelKind.CAUSAL_LM:
        raise UnsupportedModelError(f"{model.name} is not a causal language model.")
    if not 1 <= max_new_tokens <= 64:
        raise PositionOutOfRangeError("Generate between 1 and 64 tokens.")
    encoded = encode(model, prompt)
    room = model.max_length - len(encoded.tokens)
    if room < 1:
        raise PositionOutOfRangeError(
            f"The prompt already fills the model's {model.max_length} positions."
        )
    # Generation runs the fast attention with the model's key-value cache; the attention of the
    # whole sequence then comes from one capturing pass over it.
    with (
        guarded(model, len(encoded.tokens) + max_new_tokens),
        torch.inference_mode(),
        fast_attention(),
    ):
        sequence = model.model.generate(
            **encoded.inputs,
            max_new_tokens=min(max_new_tokens, room),
            do_sample=False,
            num_beams=1,
            use_cache=True,
            pad_token_id=model.tokenizer.eos_token_id,
        )
    output = forward(model, {"input_ids": sequence}, capture=True)
    tokens = tokens_from_ids(sequence[0].tolist(), model.tokenizer)
    return AttentionResult(
        model_name=model.name,
        text=model.tokenizer.decode(sequence[0]),
        text_pair=None,
        tokens=tokens,
        attention_stacks=output.stacks,
        stack_specs=model.family.stacks,
        dropped_tokens=encoded.dropped_tokens,
        model_kind=model.kind,
        next_token=top_predictions(output.logits, [len(tokens) - 1], model.tokenizer, 5)[0],
        generated_from=len(encoded.tokens),
    )
