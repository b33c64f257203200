"""Exporting attention as JSON (the seed API's `attention_data` layout) and CSV."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np


def _as_layers_heads(attentions: np.ndarray) -> np.ndarray:
    """`[layers, heads, n, n]` view of a 4-D array, or of a 3-D `[layers, n, n]` as one head."""
    if attentions.ndim == 3:
        return attentions[:, None]
    if attentions.ndim != 4 or attentions.shape[-1] != attentions.shape[-2]:
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
) -> dict[str, Any]:
    """The seed API's layout: `{"tokens": [...], "layers": [{"layerIndex", "heads": [...]}]}`.

    `attentions` is `[layers, heads, n, n]` (or `[layers, n, n]` for rollout, exported as one
    head). `layer_ids`/`head_ids` give the original indices when a subset is exported.
    """
    array = _as_layers_heads(np.asarray(attentions))
    if len(labels) != array.shape[-1]:
        raise ValueError(f"{len(labels)} labels for {array.shape[-1]} positions.")
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
    return {
        "method": method,
        "tokens": [{"text": text, "index": i} for i, text in enumerate(labels)],
        "layers": layers,
    }


def attention_json(labels: Sequence[str], attentions: np.ndarray, **options: Any) -> str:
    """`attention_data` wrapped as the seed API's response `{"attention_data": ...}`."""
    return json.dumps({"attention_data": attention_data(labels, attentions, **options)})


def attention_csv(
    labels: Sequence[str],
    attentions: np.ndarray,
    *,
    layer_ids: Sequence[int] | None = None,
    head_ids: Sequence[int] | None = None,
) -> str:
    """Long-format CSV: one row per (layer, head, query, key) with both tokens and the weight."""
    array = _as_layers_heads(np.asarray(attentions))
    layers, heads, n, _ = array.shape
    layer_ids = np.asarray(layer_ids if layer_ids is not None else range(layers))
    head_ids = np.asarray(head_ids if head_ids is not None else range(heads))
    grid = np.indices((layers, heads, n, n)).reshape(4, -1)
    import pandas as pd

    label_array = np.asarray(labels, dtype=object)
    frame = pd.DataFrame(
        {
            "layer": layer_ids[grid[0]],
            "head": head_ids[grid[1]],
            "query_index": grid[2],
            "query_token": label_array[grid[2]],
            "key_index": grid[3],
            "key_token": label_array[grid[3]],
            "weight": array.reshape(-1),
        }
    )
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.7g")
    return buffer.getvalue()
