"""Retrieval heads: which heads copy a needle from a haystack (Wu et al. 2024, teacher-forced).

Each depth's input is the haystack cut at a sentence boundary, the needle, the rest of the
haystack, the question, and the needle's text again as the answer, fed to the model as it is
(teacher forcing), so the scores do not depend on what the model would generate. For each
answer token w at position t, the row of position t − 1 is read over the keys before the
answer; a head copies w when that row's largest weight falls on a needle token whose id is w.
A head's score at a depth is the share of answer tokens it copies. Conventions and departures
from the paper are in docs/long-context.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from core.errors import (
    ComputationCancelled,
    EmptyTextError,
    InputTooLongError,
    InvalidSelectionError,
    UnsupportedModelError,
)
from core.exact import CapturedStack
from core.families import SELF
from core.inference import forward
from core.methods.base import Progress
from core.methods.shared import report
from core.models import LoadedModel, ModelKind
from core.tokens import tokenize

DEFAULT_DEPTHS = (0.1, 0.5, 0.9)
"""Shares of the haystack placed before the needle."""

Cancel = Callable[[], bool]
"""`cancel()` is asked between steps; True stops the computation (`ComputationCancelled`)."""

_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+")
_SPACE = re.compile(r"\s+")


def cut_point(haystack: str, depth: float) -> int:
    """The character index where the needle goes: the sentence boundary (after `.`, `!`, `?`
    or `…` and the spaces after it) closest to `depth × len(haystack)`; a haystack with no
    sentence boundary is cut at the closest space. The start and end always count."""
    boundaries = [m.end() for m in _SENTENCE_END.finditer(haystack)]
    if not boundaries:
        boundaries = [m.end() for m in _SPACE.finditer(haystack)]
    candidates = [0, len(haystack), *boundaries]
    target = depth * len(haystack)
    return min(candidates, key=lambda c: (abs(c - target), c))


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenize(tokenizer, text, add_special_tokens=False, verbose=False)["input_ids"])


def _leading_specials(tokenizer: Any) -> list[int]:
    """The special tokens the tokenizer puts before a text (a BOS token, or none)."""
    bare = _ids(tokenizer, "a")
    full = list(tokenize(tokenizer, "a", verbose=False)["input_ids"])
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start]
    return []


def needle_input(
    model: LoadedModel, haystack: str, needle: str, question: str, depth: float
) -> dict[str, Any]:
    """One depth's teacher-forced input: `{depth, input_ids, needle, answer, haystack_before,
    haystack_tokens}`; `needle` and `answer` are `(start, end)` token ranges, end exclusive.

    The pieces are tokenised apart and joined, each after a space (the first one after the
    tokenizer's leading special tokens), so the answer's ids are exactly the needle's:
    specials + haystack before the cut + needle + the rest + question + needle again.
    """
    tokenizer = model.tokenizer
    cut = cut_point(haystack, depth)
    before = _ids(tokenizer, haystack[:cut].strip()) if haystack[:cut].strip() else []
    after = _ids(tokenizer, " " + haystack[cut:].strip()) if haystack[cut:].strip() else []
    needle_ids = _ids(tokenizer, " " + needle.strip())
    question_ids = _ids(tokenizer, " " + question.strip())
    ids = _leading_specials(tokenizer) + before
    needle_start = len(ids)
    ids += needle_ids
    ids += after + question_ids
    answer_start = len(ids)
    ids += needle_ids
    return {
        "depth": float(depth),
        "input_ids": ids,
        "needle": (needle_start, needle_start + len(needle_ids)),
        "answer": (answer_start, len(ids)),
        "haystack_before": len(before),
        "haystack_tokens": len(before) + len(after),
    }


def copy_scores(
    stack: CapturedStack | Any, input_ids: Sequence[int], needle: range, answer: range
) -> np.ndarray:
    """Float64 `[layers, heads]`: the share of answer tokens each head copies from the needle.

    `stack` answers `tile(layer, head, rows, cols)` (a `CapturedStack`, `DenseStack` or
    `AttentionResult`). For answer position t the row t − 1 is read over keys 0 … answer.start
    − 1; the head copies when that row's largest computed weight is on a needle position
    holding the id at t. Rows with no computed key there (outside a sliding window) copy
    nothing.
    """
    ids = np.asarray(input_ids)
    targets = ids[answer.start : answer.stop]
    rows = range(answer.start - 1, answer.stop - 1)
    keys = range(answer.start)
    in_needle = np.zeros(answer.start, dtype=bool)
    in_needle[needle.start : needle.stop] = True
    scores = np.zeros((stack.num_layers, stack.num_heads))
    for layer in range(stack.num_layers):
        for head in range(stack.num_heads):
            tile = stack.tile(layer, head, rows, keys)
            scores[layer, head] = _copied(tile, ids, in_needle, targets).mean()
    return scores


def _copied(tile: np.ndarray, ids: np.ndarray, in_needle: np.ndarray, targets: np.ndarray):
    """Bool `[answer tokens]`: whether each row's largest weight is a needle copy of its target."""
    weights = np.where(np.isnan(tile), -np.inf, tile)
    best = weights.argmax(-1)
    return np.isfinite(weights.max(-1)) & in_needle[best] & (ids[best] == targets)


def answer_rows(answer: range) -> range:
    """The positions whose next-token logits predict the answer tokens: t − 1 for each t."""
    return range(answer.start - 1, answer.stop - 1)


def mean_logprob(logits: torch.Tensor, targets: Sequence[int]) -> float:
    """Mean natural-log probability of `targets` under `logits` `[len(targets), vocab]`, row i
    predicting target i (float64 softmax)."""
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    chosen = torch.as_tensor(list(targets), device=logits.device)
    return float(log_probs[torch.arange(len(chosen)), chosen].mean())


def _step(progress: Progress | None, cancel: Cancel | None, done: int, total: int) -> None:
    report(progress, done, total, "The retrieval scores")
    if cancel is not None and cancel():
        raise ComputationCancelled("The retrieval scores were stopped before they finished.")


def _checked_depths(depths: Sequence[float]) -> list[float]:
    try:
        values = [float(depth) for depth in depths]
    except (TypeError, ValueError):
        raise InvalidSelectionError(
            f"Depths are numbers between 0 and 1, not {depths!r}."
        ) from None
    if not values or any(not 0.0 <= d <= 1.0 for d in values):
        raise InvalidSelectionError(
            f"Give at least one depth, each between 0 and 1 (the share of the haystack before the "
            f"needle), not {list(depths)!r}."
        )
    return values


def retrieval_scores(
    model: LoadedModel,
    haystack: str,
    needle: str,
    question: str,
    depths: Sequence[float] = DEFAULT_DEPTHS,
    *,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> pd.DataFrame:
    """Each head's retrieval score at each depth: DataFrame with layer, head, depth, score.

    One capturing forward pass per depth (`needle_input` builds it); scores from
    `copy_scores`, read from exact rows of the capture (no n² tensor). `scores.attrs["inputs"]`
    holds one dict per depth: depth, input_ids (list[int]), needle and answer `(start, end)`
    token ranges, haystack_before and haystack_tokens (haystack tokens before the needle and
    in all), answer_logprob (mean natural-log probability of the answer tokens,
    teacher-forced) and answer_probability (its exponential: the geometric mean per-token
    probability), from the logits of the answer's rows only (`logits_to_keep`) where the
    network takes it. `progress(done, total)` returning False, or `cancel()` returning True,
    stops it with `ComputationCancelled`.
    """
    if model.kind is not ModelKind.CAUSAL_LM:
        raise UnsupportedModelError(
            f"{model.name} is a {model.kind.value} model: retrieval scores read a causal "
            "language model answering a question."
        )
    for name, text in (("haystack", haystack), ("needle", needle), ("question", question)):
        if text is None or not str(text).strip():
            raise EmptyTextError(f"The {name} is empty.")
    values = _checked_depths(depths)
    inputs = [needle_input(model, haystack, needle, question, depth) for depth in values]
    longest = max(len(entry["input_ids"]) for entry in inputs)
    if longest > model.max_length:
        raise InputTooLongError(
            f"Haystack, needle, question and answer come to {longest:,} tokens, but "
            f"{model.name} reads at most {model.max_length:,}: use a shorter haystack."
        )
    steps = 2 * len(inputs)  # a forward pass and the reading of its rows per depth
    frames = []
    for index, entry in enumerate(inputs):
        _step(progress, cancel, 2 * index, steps)
        ids = torch.tensor([entry["input_ids"]], device=model.device)
        needle_range, answer_range = range(*entry["needle"]), range(*entry["answer"])
        rows = answer_rows(answer_range)
        # Only the rows that predict the answer are unembedded: the whole [n, vocab] logits
        # would be 1.2 GB with Qwen's vocabulary at 2,048 tokens.
        output = forward(
            model,
            {"input_ids": ids, "attention_mask": torch.ones_like(ids)},
            capture=True,
            logits_at=rows,
        )
        stack = output.stacks[SELF]
        if output.logits is not None:
            logits = output.logits  # [len(rows), vocab], the answer rows in order
            targets = entry["input_ids"][answer_range.start : answer_range.stop]
            logprob = mean_logprob(logits, targets)
            entry.update(answer_logprob=logprob, answer_probability=float(np.exp(logprob)))
        _step(progress, cancel, 2 * index + 1, steps)
        scores = copy_scores(stack, entry["input_ids"], needle_range, answer_range)
        layer_ids, head_ids = np.meshgrid(*map(np.arange, scores.shape), indexing="ij")
        frames.append(
            pd.DataFrame(
                {
                    "layer": layer_ids.ravel(),
                    "head": head_ids.ravel(),
                    "depth": entry["depth"],
                    "score": scores.ravel(),
                }
            )
        )
    if progress is not None:
        progress(steps, steps)  # done: nothing left to cancel
    table = pd.concat(frames, ignore_index=True)
    table.attrs["inputs"] = inputs
    return table
