"""Which explanation agrees with the model? Leave-one-out ground truth against every method.

For one prediction (a masked LM's token at `position`, a causal LM's next token after
`position`), each input token is taken out in turn and the drop in the predicted token's
probability is measured:

* masked LMs: the token is *replaced by the mask token* (special tokens and the predicted
  position itself are left alone), so positions and length stay the same;
* causal LMs: the token is *removed* from the prefix ending at `position` (GPT-2 has no pad
  or mask token that would be neutral), and the next token after the shortened prefix is
  scored. Every variant has the same length, so they run as one batch.

Each method's input attribution for `position` (its last layer's rolled-out row, or for
methods without a rollout and for raw attention, its last layer's row) is ranked against
the drops over the same tokens: Spearman's ρ and the overlap of the top-k sets.

The pieces are public so that a caller can keep each as it finishes and stop between them (the
Explain page does): `leave_one_out`, `method_attribution` per method, then `agreement_table`.
Each takes a `progress(done, total)` callback; returning False cancels
(`ComputationCancelled`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from core.costs import Cost
from core.errors import MethodUnsupportedError, TruncationWarning
from core.inference import Encoded, encode, guarded
from core.kinds import ModelKind
from core.lens import check_position
from core.methods import Progress, compute_method, get_method, list_methods
from core.models import LoadedModel
from core.work import Cancel, Limiter, checkpoint, no_limit

AGREEMENT_COLUMNS = (
    "method",
    "label",
    "attribution",
    "spearman",
    "top_k_overlap",
    "k",
    "tokens_compared",
)
LEAVE_ONE_OUT = "leave_one_out"
"""The first part of an agreement table; the other parts are named after their methods."""
LEAVE_ONE_OUT_COST = Cost(
    "0.75 * n",
    note="One variant per token, each ≈ 0.6–0.75 of a pass (batching saves little on a CPU).",
)
BATCH = 32
"""Variants per forward pass: bounds memory at long inputs."""


def batched_probabilities(
    model: LoadedModel,
    ids: torch.Tensor,
    extra: dict[str, torch.Tensor],
    at: int,
    token: int,
    progress: Progress | None = None,
    *,
    cancel: Cancel | None = None,
    limiter: Limiter | None = None,
) -> np.ndarray:
    """Probability of `token` at position `at` for each row of `ids` `[b, n]`.

    `progress(rows done, rows)` is called after each batch of `BATCH` rows, `cancel` asked
    there too, and `limiter("leave-one-out")` held around each batch (`core.work`).
    """
    limiter = limiter or no_limit
    out = []
    total = ids.shape[0]
    for start in range(0, total, BATCH):
        chunk = ids[start : start + BATCH]
        inputs = {"input_ids": chunk, "attention_mask": torch.ones_like(chunk)}
        inputs.update({k: v.expand(len(chunk), -1) for k, v in extra.items()})
        with limiter("leave-one-out"), guarded(model), torch.inference_mode():
            logits = model.model(**inputs).logits[:, at].double()
        out.append(logits.softmax(dim=-1)[:, token].cpu().numpy())
        checkpoint(start + len(chunk), total, "Leave-one-out", progress, cancel)
    return np.concatenate(out)


def leave_one_out(
    model: LoadedModel,
    text: str,
    position: int,
    progress: Progress | None = None,
    *,
    cancel: Cancel | None = None,
    limiter: Limiter | None = None,
) -> pd.DataFrame:
    """The leave-one-out ground truth: drop of the predicted token's probability per token.

    Columns position, token, probability_without, drop (float64); `df.attrs` holds
    "predicted" (the token's text), "predicted_id", "probability" and "perturbation"
    ("mask" or "remove"). `progress(variants done, variants)` follows the batches; `cancel`
    and `limiter` as in `core.work`. Raises `MethodUnsupportedError` for models without an LM
    head.
    """
    if model.kind not in (ModelKind.MASKED_LM, ModelKind.CAUSAL_LM):
        raise MethodUnsupportedError(
            "Leave-one-out needs a prediction: a masked-LM or causal model, not "
            f"{model.kind.value}."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        encoded: Encoded = encode(model, text)
    n = len(encoded.tokens)
    position = check_position(position, n)
    ids = encoded.input_ids[0]
    extra = {k: v for k, v in encoded.inputs.items() if k not in ("input_ids", "attention_mask")}
    limiter = limiter or no_limit
    with limiter("leave-one-out"), guarded(model), torch.inference_mode():
        logits = model.model(**encoded.inputs).logits[0, position].double()
    probabilities = logits.softmax(dim=-1)
    predicted = int(probabilities.argmax())
    baseline = float(probabilities[predicted])
    if model.kind is ModelKind.MASKED_LM:
        candidates = [t.index for t in encoded.tokens if not t.is_special and t.index != position]
        variants = ids.repeat(len(candidates), 1)
        variants[torch.arange(len(candidates)), torch.tensor(candidates)] = (
            model.tokenizer.mask_token_id
        )
        without = batched_probabilities(
            model, variants, extra, position, predicted, progress, cancel=cancel, limiter=limiter
        )
        perturbation = "mask"
    else:
        candidates = list(range(position + 1))
        if position == 0:
            without = np.array([np.nan])  # nothing is left to predict from
        else:
            prefix = ids[: position + 1]
            keep = [[k for k in range(position + 1) if k != j] for j in candidates]
            variants = torch.stack([prefix[k] for k in keep])
            without = batched_probabilities(
                model,
                variants,
                {},
                position - 1,
                predicted,
                progress,
                cancel=cancel,
                limiter=limiter,
            )
        perturbation = "remove"
    frame = pd.DataFrame(
        {
            "position": candidates,
            "token": [encoded.tokens[j].text for j in candidates],
            "probability_without": without,
            "drop": baseline - without,
        }
    )
    frame.attrs.update(
        predicted=model.tokenizer.decode([predicted]),
        predicted_id=predicted,
        probability=baseline,
        perturbation=perturbation,
        position=position,
    )
    return frame


def _per_row(method: str) -> bool:
    """Whether `method` declares rows and layers to compute (its cost grows with each)."""
    names = {parameter.name for parameter in get_method(method).parameters}
    return {"rows", "layers"} <= names


def part_passes(model: LoadedModel, part: str, n: int) -> float:
    """Forward passes' worth of one part of an agreement table over an `n`-token text:
    `LEAVE_ONE_OUT` or a method's name, from the costs the registry declares (plus the
    method's own pass over the text). For progress bars and the server's queue."""
    if part == LEAVE_ONE_OUT:
        return LEAVE_ONE_OUT_COST.passes(n, model.num_layers)
    cost = get_method(part).cost
    if _per_row(part):
        return 1 + cost.passes(n, model.num_layers, rows=1, layers=1)
    return 1 + cost.passes(n, model.num_layers)


def method_attribution(
    model: LoadedModel, text: str, position: int, method: str, progress: Progress | None = None
) -> tuple[np.ndarray, str]:
    """(scores over all input tokens, float64 `[n]`, description) of `method` for `position`.

    The scores are a copy, not a view of the method's `[layers, n, n]` arrays, so keeping them
    keeps n numbers. `progress` is the method's own (`MethodRequest.progress`), for methods
    that report.
    """
    entry = get_method(method)
    last = model.num_layers - 1
    if _per_row(method):  # work per row (flow's max-flows): compute only the row needed
        result = compute_method(
            model, text, method, layers=(last,), rows=(position,), progress=progress
        )
        row, source = result.per_layer[-1, position], f"{entry.label}, last layer"
    else:
        result = compute_method(model, text, method, target=position, progress=progress)
        if result.rollout is None or not entry.attributes_by_rollout:
            row, source = result.per_layer[-1, position], "last layer"
        elif result.accumulated:
            row, source = result.per_layer[-1, position], "last layer (accumulated)"
        else:
            row, source = result.rollout[-1, position], "rollout, last layer"
    return np.array(row, dtype=np.float64), source


def agreement_table(
    truth: pd.DataFrame,
    attributions: Mapping[str, tuple[np.ndarray, str]],
    top_k: int = 3,
) -> pd.DataFrame:
    """Rank each method's attribution against the leave-one-out drops (one row per method).

    `truth` is a `leave_one_out` table; `attributions` maps method names to what
    `method_attribution` returned for the same text and position, in the order of the rows.
    Columns and attrs as in `explanation_agreement`.
    """
    compared = truth.dropna(subset=["drop"])
    columns = compared["position"].to_numpy()
    drops = compared["drop"].to_numpy()
    k = min(top_k, len(columns))
    true_top = set(columns[np.argsort(-drops, kind="stable")[:k]])
    rows = []
    for name, (scores, source) in attributions.items():
        picked = np.asarray(scores, dtype=np.float64)[columns]
        if len(columns) > 1 and np.ptp(picked) > 0 and np.ptp(drops) > 0:
            rho = float(spearmanr(picked, drops).statistic)
        else:
            rho = float("nan")
        method_top = set(columns[np.argsort(-picked, kind="stable")[:k]])
        overlap = len(true_top & method_top) / k if k else float("nan")
        rows.append((name, get_method(name).label, source, rho, overlap, k, len(columns)))
    table = pd.DataFrame(rows, columns=list(AGREEMENT_COLUMNS))
    table.attrs.update(
        predicted=truth.attrs["predicted"],
        probability=truth.attrs["probability"],
        perturbation=truth.attrs["perturbation"],
        position=truth.attrs["position"],
        leave_one_out=truth,
    )
    return table


def explanation_agreement(
    model: LoadedModel,
    text: str,
    position: int,
    methods: Sequence[str] | None = None,
    top_k: int = 3,
    progress: Progress | None = None,
    *,
    cancel: Cancel | None = None,
    limiter: Limiter | None = None,
) -> pd.DataFrame:
    """Each method's attribution ranked against the leave-one-out drops (one row per method).

    Columns: method, label, attribution (which row was used), spearman (ρ over the tokens
    left out, NaN when either side is constant), top_k_overlap (share of the k tokens with
    the largest drop that are among the method's k largest), k, tokens_compared. The
    leave-one-out table is in `df.attrs["leave_one_out"]` and the prediction in
    `df.attrs["predicted"]`, so both export with the table. `progress(steps done, steps)`
    counts leave-one-out and each method as one step; `cancel` is asked between steps and
    `limiter` held around each forward pass of leave-one-out and each method (`core.work`).
    """
    names = list(methods) if methods is not None else list_methods(model)
    for name in names:
        get_method(name)  # unknown names fail before any computation
    steps = 1 + len(names)
    limiter = limiter or no_limit
    truth = leave_one_out(model, text, position, cancel=cancel, limiter=limiter)
    checkpoint(1, steps, "The agreement table", progress, cancel)
    position = truth.attrs["position"]
    attributions = {}
    for done, name in enumerate(names, start=2):
        with limiter(name):
            attributions[name] = method_attribution(model, text, position, name)
        checkpoint(done, steps, "The agreement table", progress, cancel)
    return agreement_table(truth, attributions, top_k)
