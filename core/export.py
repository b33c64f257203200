"""Exporting attention as JSON (the seed API's `attention_data` layout) and CSV."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np


def _as_layers_heads(attentions: np.ndarray, square: bool = True) -> np.ndarray:
    """`[layers, heads, q, k]` view of a 4-D array, or of a 3-D `[layers, q, k]` as one head.

    Self-attention must be square (`q == k`); cross attention (`square=False`) need not.
    """
    if attentions.ndim == 3:
        attentions = attentions[:, None]
    if attentions.ndim != 4 or (square and attentions.shape[-1] != attentions.shape[-2]):
        raise ValueError("Expected attention of shape [layers, heads, n, n] or [layers, n, n].")
    return attentions


def attention_data(
    labels: Sequence[str],
    attentions: np.ndarray,
    *,
    layer_ids: Sequence[int] | None = None,
    head_ids: Sequence[int] | None = None,
    method: str = "raw",
    decimals: int | None = 6,
    key_labels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The seed API's layout: `{"tokens": [...], "layers": [{"layerIndex", "heads": [...]}]}`.

    `attentions` is `[layers, heads, n, n]` (or `[layers, n, n]` for rollout, exported as one
    head). `layer_ids`/`head_ids` give the original indices when a subset is exported. Cross
    attention `[layers, heads, q, k]` passes the `k` source tokens as `key_labels`; they are
    exported as `"keyTokens"` (and `"tokens"` are then the `q` target tokens).
    """
    array = _as_layers_heads(np.asarray(attentions), square=key_labels is None)
    if len(labels) != array.shape[-2]:
        raise ValueError(f"{len(labels)} labels for {array.shape[-2]} positions.")
    if key_labels is not None and len(key_labels) != array.shape[-1]:
        raise ValueError(f"{len(key_labels)} key labels for {array.shape[-1]} positions.")
    if decimals is not None:
        array = np.round(array.astype(np.float64), decimals)
    layer_ids = list(layer_ids) if layer_ids is not None else list(range(array.shape[0]))
    head_ids = list(head_ids) if head_ids is not None else list(range(array.shape[1]))
    layers = [
        {
            "layerIndex": int(layer_ids[li]),
            "heads": [
                {"headIndex": int(head_ids[hi]), "attention": array[li, hi].tolist()}
                for hi in range(array.shape[1])
            ],
        }
        for li in range(array.shape[0])
    ]
    data: dict[str, Any] = {
        "method": method,
        "tokens": [{"text": text, "index": i} for i, text in enumerate(labels)],
    }
    if key_labels is not None:
        data["keyTokens"] = [{"text": text, "index": i} for i, text in enumerate(key_labels)]
    data["layers"] = layers
    return data


def attention_json(labels: Sequence[str], attentions: np.ndarray, **options: Any) -> str:
    """`attention_data` wrapped as the seed API's response `{"attention_data": ...}`."""
    return json.dumps({"attention_data": attention_data(labels, attentions, **options)})


def attention_csv(
    labels: Sequence[str],
    attentions: np.ndarray,
    *,
    layer_ids: Sequence[int] | None = None,
    head_ids: Sequence[int] | None = None,
    key_labels: Sequence[str] | None = None,
) -> str:
    """Long-format CSV: one row per (layer, head, query, key) with both tokens and the weight.

    Cross attention `[layers, heads, q, k]` passes the `k` source tokens as `key_labels`.
    """
    array = _as_layers_heads(np.asarray(attentions), square=key_labels is None)
    layers, heads, n, k = array.shape
    layer_ids = np.asarray(layer_ids if layer_ids is not None else range(layers))
    head_ids = np.asarray(head_ids if head_ids is not None else range(heads))
    grid = np.indices((layers, heads, n, k)).reshape(4, -1)
    import pandas as pd

    label_array = np.asarray(labels, dtype=object)
    key_array = label_array if key_labels is None else np.asarray(key_labels, dtype=object)
    frame = pd.DataFrame(
        {
            "layer": layer_ids[grid[0]],
            "head": head_ids[grid[1]],
            "query_index": grid[2],
            "query_token": label_array[grid[2]],
            "key_index": grid[3],
            "key_token": key_array[grid[3]],
            "weight": array.reshape(-1),
        }
    )
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.7g")
    return buffer.getvalue()
