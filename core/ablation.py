"""Head ablation: zero chosen heads and see what happens to the model's next-token prediction.

Zeroing a head means zeroing its slice of the input to the attention's output projection
(`core.capture.zeroed_heads`, one switch in the attention function every architecture calls),
so the head adds nothing to the residual stream while every other head runs unchanged.
`ablation_controls` picks the three head sets the erasure check compares: the top retrieval
heads, as many random heads of the same layers, and every sink head.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from core.capture import zeroed_heads
from core.errors import InvalidSelectionError, UnsupportedModelError
from core.exact import check_index
from core.inference import encode, predict_logits
from core.models import LoadedModel, ModelKind
from core.retrieval import answer_rows, mean_logprob

Head = tuple[int, int]
"""`(layer, head)`, both counted from 0; a query head for grouped-query models."""


def checked_heads(model: LoadedModel, heads: Iterable[Head]) -> dict[int, tuple[int, ...]]:
    """`{layer: (head, …)}` of valid `(layer, head)` pairs (repeats dropped), else an
    `InvalidSelectionError` (not pairs of whole numbers) or `PositionOutOfRangeError` (out of
    the model's layers or heads)."""
    try:
        pairs = [tuple(operator.index(value) for value in pair) for pair in heads]
    except TypeError:  # not iterable, or not whole numbers
        pairs = [()]
    if any(len(pair) != 2 for pair in pairs):
        raise InvalidSelectionError(
            f"Heads are (layer, head) pairs of whole numbers, not {heads!r}."
        )
    by_layer: dict[int, set[int]] = {}
    for layer, head in pairs:
        layer = check_index(layer, model.num_layers, "layer", "the model")
        head = check_index(head, model.num_heads, "head", "each layer")
        by_layer.setdefault(layer, set()).add(head)
    return {layer: tuple(sorted(chosen)) for layer, chosen in sorted(by_layer.items())}


def _logits(
    model: LoadedModel,
    input_ids: torch.Tensor,
    heads: dict[int, tuple[int, ...]],
    positions: Sequence[int],
) -> torch.Tensor:
    """Float32 `[len(positions), vocab]` next-token logits at `positions` of `input_ids`
    `[1, n]` with `heads` (`{layer: (head, …)}`) zeroed, from one fast pass that unembeds only
    those rows (`core.inference.predict_logits`: all `n` with Qwen's vocabulary at 2,048
    tokens would be 1.2 GB)."""
    members = {id(module) for module in model.family.self_attention_root(model.model).modules()}
    inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
    with zeroed_heads(heads, lambda module: id(module) in members) as ablation:
        logits = predict_logits(model, inputs, positions)
    if ablation.calls != model.num_layers:
        raise UnsupportedModelError(
            f"{model.name} ran its attention {ablation.calls} times for {model.num_layers} "
            "layers, so heads cannot be matched to layers."
        )
    assert logits is not None  # a causal language model has its head
    return logits


def _require_causal(model: LoadedModel) -> None:
    if model.kind is not ModelKind.CAUSAL_LM:
        raise UnsupportedModelError(
            f"{model.name} is a {model.kind.value} model, not a causal language model: it has "
            "no next-token prediction to ablate."
        )


def ablate_heads(
    model: LoadedModel, text: str, heads: Iterable[Head] = (), position: int | None = None
) -> pd.DataFrame:
    """The effect of zeroing `heads` on the next-token prediction at `position`.

    Returns one row: position (default the last token), token (the model's most likely next
    token there without ablation), token_id, probability (of that token, unablated) and
    probability_ablated (of the same token with `heads` zeroed). Two forward passes, both with
    the fast attention; the second always runs, so no heads means the same pass twice.
    `df.attrs["heads"]` lists the zeroed `(layer, head)` pairs.
    """
    _require_causal(model)
    chosen = checked_heads(model, heads)
    ids = encode(model, text).input_ids
    length = int(ids.shape[-1])
    where = (
        length - 1 if position is None else check_index(position, length, "position", "the text")
    )
    before, after = (
        torch.softmax(_logits(model, ids, zeroed, [where])[0].double(), -1)
        for zeroed in ({}, chosen)
    )
    token_id = int(before.argmax())
    frame = pd.DataFrame(
        {
            "position": [where],
            "token": [model.tokenizer.decode([token_id])],
            "token_id": [token_id],
            "probability": [float(before[token_id])],
            "probability_ablated": [float(after[token_id])],
        }
    )
    frame.attrs["heads"] = [(layer, head) for layer, hs in chosen.items() for head in hs]
    return frame


def ablate_answer(
    model: LoadedModel, inputs: Sequence[dict], heads: Iterable[Head] = ()
) -> pd.DataFrame:
    """The effect of zeroing `heads` on the answer of each needle input, teacher-forced.

    `inputs` is `retrieval_scores(...).attrs["inputs"]` (or `needle_input` dicts: input_ids and
    the answer's `(start, end)` range). One row per input: depth, answer_logprob and
    answer_logprob_ablated (mean natural-log probability of the answer tokens, each given
    everything before it), answer_probability and answer_probability_ablated (their
    exponentials: geometric mean probability per answer token). Two fast passes per input.
    """
    _require_causal(model)
    chosen = checked_heads(model, heads)
    rows = []
    for entry in inputs:
        ids = torch.tensor([list(entry["input_ids"])], device=model.device)
        start, end = entry["answer"]
        if not 0 < start < end <= ids.shape[-1]:
            raise InvalidSelectionError(
                f"The answer {start}..{end} is not a range of the {ids.shape[-1]} input tokens "
                "after the first."
            )
        targets = list(entry["input_ids"])[start:end]
        predicting = answer_rows(range(start, end))  # only these rows are unembedded
        means = [
            mean_logprob(_logits(model, ids, zeroed, predicting), targets)
            for zeroed in ({}, chosen)
        ]
        rows.append(
            {
                "depth": entry.get("depth"),
                "answer_logprob": means[0],
                "answer_logprob_ablated": means[1],
                "answer_probability": float(np.exp(means[0])),
                "answer_probability_ablated": float(np.exp(means[1])),
            }
        )
    frame = pd.DataFrame(rows)
    frame.attrs["heads"] = [(layer, head) for layer, hs in chosen.items() for head in hs]
    return frame


def ablation_controls(
    retrieval: pd.DataFrame, profile: pd.DataFrame, k: int = 5, seed: int = 0
) -> dict[str, list[Head]]:
    """The three head sets of the erasure check, each a list of `(layer, head)`.

    "retrieval": the `k` heads with the highest retrieval score averaged over depths
    (`core.retrieval_scores`; ties by layer, then head). "random": for each of them, a head of
    the same layer drawn at random (`seed`) from the heads not already chosen; when a layer has
    no such head left the draw is from the other heads of those layers, so there may be fewer
    than `k` only if those layers have no more heads. "sinks": every head `profile`
    (`core.sink_profile`) marks as a sink.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InvalidSelectionError(f"Choose k ≥ 1 heads, not {k!r}.")
    mean = retrieval.groupby(["layer", "head"], as_index=False)["score"].mean()
    top = mean.sort_values(["score", "layer", "head"], ascending=[False, True, True]).head(k)
    chosen = _pairs(top)
    all_heads = _pairs(mean)
    layers = {layer for layer, _ in chosen}
    taken = set(chosen)
    rng = np.random.default_rng(seed)
    random_heads: list[Head] = []
    for layer, _ in chosen:
        same = [h for h in all_heads if h[0] == layer and h not in taken]
        pool = same or [h for h in all_heads if h[0] in layers and h not in taken]
        if pool:
            picked = pool[int(rng.integers(len(pool)))]
            random_heads.append(picked)
            taken.add(picked)
    sinks = profile[profile["is_sink"]]
    return {
        "retrieval": chosen,
        "random": random_heads,
        "sinks": _pairs(sinks),
    }


def _pairs(frame: pd.DataFrame) -> list[Head]:
    """The `(layer, head)` of each row of a table with those columns, in row order."""
    return [(int(layer), int(head)) for layer, head in frame[["layer", "head"]].to_numpy()]
