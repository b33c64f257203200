"""Encoding text and running the single forward pass that serves attention and predictions."""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.capture import capture_attention, fast_attention
from core.errors import (
    AtlasError,
    EmptyTextError,
    NotEnoughMemoryError,
    TruncationWarning,
    UnsupportedModelError,
)
from core.exact import CapturedStack
from core.families import SELF, Passes
from core.kinds import ModelKind
from core.models import LoadedModel
from core.tokens import Token, build_tokens, normalize_masks, tokenize


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
    stacks: dict[str, np.ndarray | CapturedStack]
    """Each stack the family yields (`core.families`): float32 `[layers, heads, q, k]`, or,
    for the "self" stack of a capturing pass, a `CapturedStack` that recomputes it in pieces."""
    logits: torch.Tensor | None
    """Float32 on the CPU: `[seq, vocab]` for models with a language-model head (`[len(positions),
    vocab]`, in that order, when the pass was asked for `logits_at=positions`), else None."""

    @property
    def attentions(self) -> np.ndarray:
        """The "self" stack `[layers, heads, seq, seq]` (built from a capture within budget)."""
        stack = self.stacks[SELF]
        return stack.dense() if isinstance(stack, CapturedStack) else stack


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

    ids = tokenize(tokenizer, text, text_pair, truncation=False, verbose=False)["input_ids"]
    full_length = len(ids)
    dropped = max(0, full_length - model.max_length)
    encoding = tokenize(
        tokenizer,
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


# torch's CPU allocator ("can't allocate memory"), CUDA's "out of memory", and a size too
# large to be asked for at all ("Invalid buffer size: 45.00 GiB", "Storage size calculation
# overflowed"), which was shown as "may not be a text model".
_ALLOCATOR_FAILURE = re.compile(
    r"alloc|out of memory|not enough memory|invalid buffer size|storage size calculation",
    re.IGNORECASE,
)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an exception is an allocator failure (torch's, NumPy's or Python's)."""
    if isinstance(exc, MemoryError | torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and bool(_ALLOCATOR_FAILURE.search(str(exc)))


def memory_error(
    model: LoadedModel, tokens: int | None, exc: BaseException
) -> NotEnoughMemoryError:
    """The typed error for an allocator failure, saying what to lower."""
    what = f"{tokens:,} tokens" if tokens else "this input"
    lower = "use fewer tokens (a shorter text)"
    if model.dtype == torch.float32:
        lower += ", load the model in bfloat16 (dtype='bfloat16')"
    return NotEnoughMemoryError(
        f"{model.name} ran out of memory on {what} ({model.num_layers} layers, "
        f"{str(model.dtype).removeprefix('torch.')}): {lower}, or show fewer layers at once."
    )


@contextmanager
def guarded(model: LoadedModel, tokens: int | None = None) -> Iterator[None]:
    """Turn any failure of a model's own code into an `AtlasError` for people.

    A checkpoint that passed the config checks can still want other inputs (pixels, audio
    features) or misreport its length limit, and its own code can fail in any way; every
    forward pass of every family runs inside this, so none shows a traceback. Running out of
    memory is a `NotEnoughMemoryError` that says what to lower (`tokens`, if given, is named).
    """
    try:
        yield
    except AtlasError:
        raise
    except Exception as exc:
        if is_out_of_memory(exc):
            raise memory_error(model, tokens, exc) from exc
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise UnsupportedModelError(
            f"{model.name} could not run on this text ({type(exc).__name__}: {detail}). It may "
            "not be a text model, or it needs inputs Attention Atlas does not provide."
        ) from exc


def forward(
    model: LoadedModel,
    inputs: dict[str, Any],
    *,
    decoder_input_ids: torch.Tensor | None = None,
    capture: bool = False,
    logits_at: Sequence[int] | None = None,
) -> ForwardOutput:
    """One forward pass returning every stack's attention and, if there is an LM head, logits.

    Runs the model's family adapter under `torch.inference_mode()`, on the model's device (the
    results come back on the CPU); the shared model is not modified. An encoder-decoder model
    without `decoder_input_ids` runs its encoder only.

    With `capture`, the "self" stack runs the fast attention and is kept as a `CapturedStack`
    (queries, keys, normalisers: no n² tensor); the other stacks (an encoder-decoder's decoder
    and cross attention) still come back whole from their eager attention.
    `logits_at` keeps the logits of those positions only: a causal LM then computes no others
    (at 4,096 tokens Qwen2.5's 151,936-word vocabulary makes all of them 2.5 GB in float32).
    """
    tokens = int(inputs["input_ids"].shape[-1]) if "input_ids" in inputs else None
    root = model.family.self_attention_root(model.model)
    captured = {id(module) for module in root.modules()}
    with (
        guarded(model, tokens),
        torch.inference_mode(),
        capture_attention(lambda module: id(module) in captured)
        if capture
        else nullcontext() as state,
    ):
        trim = _logit_options(model, logits_at)
        passes = model.family.run(model.model, inputs, decoder_input_ids, **trim)
        stacks: dict[str, np.ndarray | CapturedStack] = {
            name: _stacked(model, layers)
            for name, layers in passes.attentions.items()
            if not (capture and name == SELF)
        }
        if capture:
            expected = model.num_layers
            if len(state.layers) != expected:
                raise UnsupportedModelError(
                    f"{model.name} ran its self-attention {len(state.layers)} times for "
                    f"{expected} layers, so the captured layers cannot be matched."
                )
            stacks[SELF] = CapturedStack(state.layers)
        logits = _kept_logits(passes.logits, logits_at, trimmed=bool(trim))
    return ForwardOutput(stacks, logits)


def predict_logits(
    model: LoadedModel, inputs: dict[str, Any], positions: Sequence[int]
) -> torch.Tensor | None:
    """Float32 `[len(positions), vocab]` logits at `positions` (None without an LM head).

    One pass with the model's fast attention (SDPA where it has one): no attention weights
    are computed or kept, for predictions alone.
    """
    tokens = int(inputs["input_ids"].shape[-1]) if "input_ids" in inputs else None
    with guarded(model, tokens), torch.inference_mode(), fast_attention():
        trim = _logit_options(model, positions)
        passes = model.family.run(model.model, inputs, None, **trim)
        return _kept_logits(passes.logits, positions, trimmed=bool(trim))


def _logit_options(model: LoadedModel, positions: Sequence[int] | None) -> dict[str, Any]:
    """The pass's option that computes only the logits of `positions`, where the model has one
    (transformers' causal LMs: `logits_to_keep`)."""
    if positions is None or model.kind is not ModelKind.CAUSAL_LM:
        return {}
    if "logits_to_keep" not in inspect.signature(model.model.forward).parameters:
        return {}
    return {"logits_to_keep": torch.tensor(list(positions), dtype=torch.long, device=model.device)}


def _kept_logits(
    logits: torch.Tensor | None, positions: Sequence[int] | None, trimmed: bool
) -> torch.Tensor | None:
    """Float32 CPU logits `[seq, vocab]`, or `[len(positions), vocab]` when asked for
    (`trimmed`: the pass computed those rows only, by `_logit_options`)."""
    if logits is None:
        return None
    logits = logits[0]
    if positions is not None and not trimmed:
        logits = logits[list(positions)]  # the model computed them all: keep the rows asked for
    return logits.float().cpu()


def forward_with_grad(
    model: LoadedModel,
    inputs: dict[str, Any],
    *,
    decoder_input_ids: torch.Tensor | None = None,
    **options: Any,
) -> tuple[Passes, torch.Tensor]:
    """A forward pass whose outputs can be differentiated, for gradient-based methods.

    The shared model stays frozen (its parameters never require gradients, so concurrent
    passes cannot interfere): the input embeddings `[1, seq, hidden]` are computed outside the
    network and made a leaf that requires gradients, and the pass runs with `inputs_embeds`.
    Every attention tensor in the returned `Passes` `[1, heads, q, k]` is then part of the
    autograd graph. Returns the passes and the embeddings leaf.
    """
    network = model.model
    with guarded(model), torch.enable_grad():
        ids = inputs["input_ids"]
        embeddings = network.get_input_embeddings()(ids).detach().requires_grad_(True)
        rest = {key: value for key, value in inputs.items() if key != "input_ids"}
        if decoder_input_ids is not None:
            # The decoder's first self-attention reads its own embeddings only: they are a
            # leaf too, so that every attention tensor is in the graph. The decoder's own
            # embedding module scales them as it would (BART's scaled embeddings).
            decoder = network.get_decoder().embed_tokens(decoder_input_ids)
            options = {**options, "decoder_inputs_embeds": decoder.detach().requires_grad_(True)}
        passes = model.family.run(
            network,
            {**rest, "inputs_embeds": embeddings},
            None,  # the decoder's ids, if any, are in `options` as embeddings
            **options,
        )
        if any(any(a is None for a in layers) for layers in passes.attentions.values()):
            raise UnsupportedModelError(f"{model.name} did not return attention weights.")
    return passes, embeddings


def _stacked(model: LoadedModel, layers: tuple[torch.Tensor, ...] | None) -> np.ndarray:
    """Per-layer `[1, heads, q, k]` tensors as one float32 `[layers, heads, q, k]` array."""
    if not layers or any(a is None for a in layers):
        raise UnsupportedModelError(
            f"{model.name} did not return attention weights (its attention implementation "
            "does not expose them)."
        )
    return torch.stack([a[0] for a in layers]).to(torch.float32).cpu().numpy()
