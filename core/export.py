"""Exporting attention as JSON (the seed API's `attention_data` layout) and CSV, with the
provenance that makes an exported file reproducible, and descriptive file names.

Numbering: layers and heads are counted from 0 everywhere (the UI, JSON, CSV, file names,
the gallery), as in the model's own tensors.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.version import VERSION

APP_NAME = "Attention Atlas"


@dataclass(frozen=True)
class Provenance:
    """What an export was computed from, so the file alone says how to reproduce it.

    `layer`/`head` are 0-based; None means "all" (an all-layers export) and ``head="mean"``
    the mean of the heads. `stack` is the attention stack ("self", "decoder_self", "cross").
    `pair` is the second sentence of a pair ("" for none).
    """

    model: str
    text: str
    pair: str = ""
    method: str = "raw"
    layer: int | None = None
    head: int | str | None = None
    stack: str = "self"
    hide_special: bool = False
    merge_words: bool = False
    app: str = APP_NAME
    app_version: str = VERSION

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields, plus the numbering convention spelled out."""
        fields = dataclasses.asdict(self)
        fields["numbering"] = "0-based layers and heads"
        return fields


def json_with_provenance(payload: Any, provenance: Provenance) -> str:
    """Any JSON-able export (e.g. a predictions table) as ``{"provenance", "data"}``."""
    return json.dumps({"provenance": provenance.as_dict(), "data": payload})


def csv_with_provenance(csv_text: str, provenance: Provenance) -> str:
    """`csv_text` under a header of ``# key: value`` lines (values as JSON, so a text with
    newlines or quotes stays on one line).

    The first line says how many header lines to skip; pandas reads the table with
    ``pd.read_csv(path, skiprows=N)`` (not ``comment="#"``, which would also cut tokens that
    contain "#"). :func:`read_csv_with_provenance` reads both parts back.
    """
    fields = provenance.as_dict()
    count = len(fields) + 1
    lines = [f"# {APP_NAME} export: {count} header lines; pandas.read_csv(path, skiprows={count})"]
    lines += [f"# {key}: {json.dumps(value, ensure_ascii=False)}" for key, value in fields.items()]
    return "\n".join(lines) + "\n" + csv_text


def read_csv_with_provenance(text: str) -> tuple[dict[str, Any], str]:
    """Split a `csv_with_provenance` text into its provenance fields and the plain CSV."""
    lines = text.split("\n")
    header = re.match(r"# .*skiprows=(\d+)\)$", lines[0]) if lines else None
    if header is None:
        return {}, text
    count = int(header.group(1))
    fields = {}
    for line in lines[1:count]:
        key, _, value = line[2:].partition(": ")
        fields[key] = json.loads(value)
    return fields, "\n".join(lines[count:])


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name_part(text: str, *, limit: int = 60) -> str:
    """`text` reduced to letters, digits, ``.``, ``_`` and ``-`` (runs of others become one
    ``-``), trimmed of separators at either end and cut to `limit` characters."""
    part = _UNSAFE.sub("-", text).strip("-._")
    return part[:limit].strip("-._") or "x"


def export_file_name(
    model: str,
    method: str,
    layer: int | None,
    head: int | str | None,
    stack: str,
    ext: str,
    *,
    kind: str = "attention",
) -> str:
    """A descriptive, safe file name such as ``attention_MiniLM-L6-H384-uncased_raw_L3_H7.csv``.

    `model` is shortened to its last path component (a Hub id's name, a local folder's name);
    `layer`/`head` are 0-based, None for all (``all-layers`` / ``all-heads``), ``"mean"`` for
    the mean of heads (``H-mean``). The default stack ("self") is left out, others are named.
    Only ``[A-Za-z0-9._-]`` appear, so the name is safe on every file system and in a URL.
    """
    model_name = model.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
    parts = [safe_name_part(kind), safe_name_part(model_name), safe_name_part(method)]
    if stack and stack != "self":
        parts.append(safe_name_part(stack))
    parts.append("all-layers" if layer is None else f"L{int(layer)}")
    if head is None:
        parts.append("all-heads")
    elif isinstance(head, str):
        parts.append(f"H-{safe_name_part(head)}")
    else:
        parts.append(f"H{int(head)}")
    return "_".join(parts) + "." + safe_name_part(ext.lstrip("."), limit=8)


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
    provenance: Provenance | None = None,
) -> dict[str, Any]:
    """The seed API's layout: `{"tokens": [...], "layers": [{"layerIndex", "heads": [...]}]}`.

    `attentions` is `[layers, heads, n, n]` (or `[layers, n, n]` for rollout, exported as one
    head). `layer_ids`/`head_ids` give the original indices when a subset is exported. Cross
    attention `[layers, heads, q, k]` passes the `k` source tokens as `key_labels`; they are
    exported as `"keyTokens"` (and `"tokens"` are then the `q` target tokens).
    `provenance` adds a ``"provenance"`` object (model, text, options, app version, …).
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
    if provenance is not None:
        data["provenance"] = provenance.as_dict()
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
    provenance: Provenance | None = None,
) -> str:
    """Long-format CSV: one row per (layer, head, query, key) with both tokens and the weight.

    Cross attention `[layers, heads, q, k]` passes the `k` source tokens as `key_labels`.
    `provenance` puts a ``# key: value`` header above the table (`csv_with_provenance`).
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
    if provenance is None:
        return buffer.getvalue()
    return csv_with_provenance(buffer.getvalue(), provenance)
