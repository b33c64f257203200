"""Checks shared by the payloads the browser components get (`ui.head_view`, `ui.explorer`):
token labels, indices and a pair's sentence B, each refused with a readable `AtlasError`."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.errors import InvalidAttentionError, InvalidSelectionError


def one_layer(attention: Any, view: str) -> np.ndarray:
    """`attention` as float32 ``[heads, queries, keys]`` with at least one of each (`view`
    names the component in messages: "The head view takes one layer's attention …")."""
    try:
        weights = np.asarray(attention, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise InvalidAttentionError(
            "The attention must be an array of numbers [heads, queries, keys]."
        ) from error
    if weights.ndim != 3:
        raise InvalidAttentionError(
            f"{view} takes one layer's attention, [heads, queries, keys], "
            f"but got an array with {weights.ndim} dimension(s) {tuple(weights.shape)}."
        )
    if 0 in weights.shape:
        raise InvalidAttentionError("The attention is empty: no heads or no tokens.")
    return weights


def token_labels(tokens: Sequence[str], length: int, name: str, axis: str) -> list[str]:
    """`tokens` as strings, one per position of an `axis` of `length` (`name` for messages)."""
    if isinstance(tokens, str):
        raise InvalidSelectionError(f"{name} must be a list of token strings, not one string.")
    labels = [str(token) for token in tokens]
    if len(labels) != length:
        raise InvalidSelectionError(
            f"{name} has {len(labels)} tokens but the attention has {length} {axis}."
        )
    return labels


def optional_index(value: Any, length: int, what: str) -> int | None:
    """`value` as an index into `length` items (None stays None); True/False are no index."""
    if value is None:
        return None
    try:
        index = operator.index(value)
    except TypeError as error:
        raise InvalidSelectionError(f"The {what} must be a whole number, not {value!r}.") from error
    if isinstance(value, bool) or not 0 <= index < length:
        raise InvalidSelectionError(f"The {what} {value!r} is outside 0 to {length - 1}.")
    return index


def segment_start(segment_b_start: int | None, length: int) -> int | None:
    """The first position of a pair's sentence B among `length`, or None (no pair)."""
    if segment_b_start is None:
        return None
    start = optional_index(segment_b_start, length, "start of sentence B")
    if start == 0:
        raise InvalidSelectionError("Sentence B cannot start at the first token.")
    return start
