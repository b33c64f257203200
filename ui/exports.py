"""Download data built on click from small keys: results are fetched from the store then.

A download button keeps its data callable for as long as the session lives; these functions
take `Inputs` and indices only (bind them with `functools.partial`), so the callable never pins
a result. Shaping is `core.layer_views`' and `core.masking`'s; the formats are `core.export`'s.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

import core
from core.export import csv_with_provenance, json_with_provenance
from core.families import CROSS, SELF
from core.layer_views import layer_export
from core.masking import prediction_rows
from ui import cache
from ui.cache import Inputs
from ui.state import ViewState


def provenance(
    view: ViewState,
    inputs: Inputs,
    *,
    method: str = "raw",
    layer: int | None = None,
    head: int | str | None = None,
    stack: str = SELF,
) -> core.Provenance:
    """What an export of this view was computed from (small: texts and numbers only)."""
    return core.Provenance(
        model=inputs.model,
        text=inputs.text,
        pair=inputs.pair,
        method=method,
        layer=layer,
        head=head,
        stack=stack,
        hide_special=view.hide_special,
        merge_words=view.merge_words,
    )


def stem(prov: core.Provenance, *, kind: str = "attention") -> str:
    """`core.export_file_name` of `prov` without its extension (the buttons add it)."""
    name = core.export_file_name(
        prov.model, prov.method, prov.layer, prov.head, prov.stack, "csv", kind=kind
    )
    return name.removesuffix(".csv")


def _labels(inputs: Inputs, stack: str) -> tuple[list[str], list[str] | None]:
    # Cross attention exports its target tokens as rows and its source tokens as keys.
    queries, keys = cache.attention(inputs).stack_tokens(stack)
    return [t.text for t in queries], ([t.text for t in keys] if stack == CROSS else None)


def layer_data(
    inputs: Inputs,
    stack: str,
    method: str,
    layer: int,
    rows: tuple[int, ...] | None,
    prov: core.Provenance,
    fmt: str,
) -> str:
    """One layer of method `method` as "csv" or "json" (every head for methods with heads)."""
    scores = cache.method_result(inputs, method, stack, layer, rows)
    array, layer_ids, head_ids = layer_export(scores, layer)
    labels, keys = _labels(inputs, stack)
    options: dict[str, Any] = {
        "layer_ids": layer_ids,
        "head_ids": head_ids,
        "key_labels": keys,
        "provenance": prov,
    }
    if fmt == "csv":
        return core.attention_csv(labels, array, **options)
    return core.attention_json(labels, array, method=method, **options)


def stack_data(inputs: Inputs, stack: str, prov: core.Provenance, fmt: str) -> str:
    """Every layer and head of one stack's raw attention as "csv" or "json"."""
    attentions = cache.attention(inputs).stack(stack)[0]
    labels, keys = _labels(inputs, stack)
    if fmt == "csv":
        return core.attention_csv(labels, attentions, key_labels=keys, provenance=prov)
    return core.attention_json(labels, attentions, key_labels=keys, provenance=prov)


def head_stats_data(inputs: Inputs, stack: str, prov: core.Provenance, fmt: str) -> str:
    stats = cache.head_stats(inputs, stack)
    if fmt == "csv":
        return csv_with_provenance(stats.to_csv(index=False), prov)
    return json_with_provenance(stats.to_dict(orient="records"), prov)


def difference_data(
    inputs: Inputs,
    word: int,
    replacement: str,
    prov: core.Provenance,
    without_first: bool,
    fmt: str,
) -> str:
    """The word-level difference (after − before) of every layer and head, as the page shows
    it: with `without_first`, of the matrices without the first token
    (`Comparison.shown_difference`)."""
    comparison = cache.comparison(inputs, word, replacement)
    labels = comparison.alignment.labels
    difference = comparison.shown_difference(without_first=without_first)
    if fmt == "csv":
        return core.attention_csv(labels, difference, provenance=prov)
    return core.attention_json(labels, difference, method="difference", provenance=prov)


def predictions_data(
    inputs: Inputs, position: int | None, causal: bool, prov: core.Provenance, fmt: str
) -> str:
    """The predictions shown as rows: a causal model's next token, the text's [MASK]s, or
    the word at `position` masked."""
    result = cache.attention(inputs)
    if causal:
        last = len(result.tokens) - 1
        positions, predictions = [last], ([result.next_token] if result.next_token else [])
    elif result.mask_positions:
        positions, predictions = result.mask_positions, result.predictions
    elif position is not None:
        positions, predictions = [position], cache.predictions_at(inputs, position, 10)
    else:
        positions, predictions = [], []
    rows = prediction_rows(positions, predictions)
    if fmt == "csv":
        return csv_with_provenance(pd.DataFrame(rows).to_csv(index=False), prov)
    return json_with_provenance(rows, prov)
