"""The per-head measures the overview's grid can draw under each thumbnail, by name.

Each is a column of `core.head_statistics` or `core.sink_profile`; the names are
`ui.state.HEAD_MEASURES` (the link's ``head_measure``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import core
from core.sinks import DEFAULT_SINK_EPSILON, DEFAULT_SINK_WINDOW
from ui import cache

LABELS = {
    "": "none",
    "entropy": "entropy (bits)",
    "mean_distance": "mean distance (tokens)",
    "to_special": "share to special tokens",
    "to_self": "share to itself",
    "to_previous": "share to the previous token",
    "to_next": "share to the next token",
    "to_punctuation": "share to punctuation",
    "first_token_share": "first-token share (sinks)",
    "local_share": f"local share (last {DEFAULT_SINK_WINDOW} keys)",
    "entropy_without_first": "entropy off the first token (bits)",
}
"""Readable names of the measures, as the menu and the legend show them."""
SHARES = {"to_special", "to_self", "to_previous", "to_next", "to_punctuation"} | {
    "first_token_share",
    "local_share",
}
"""Measures that are shares of a row's weight: drawn on 0–1, so grids compare."""


def measure_label(name: str) -> str:
    """The menu's and legend's name of measure `name`."""
    return LABELS.get(name, name.replace("_", " "))


def measure_options(page: Any, stack: str, name: str) -> dict[str, Any]:
    """`ui.head_grid.head_grid` keyword arguments drawing measure `name` of the page's `stack`
    (``{}`` for "" = none): values ``[layers, heads]``, range, name, the sink ε."""
    if not name:
        return {}
    if name in core.STAT_DESCRIPTIONS:
        frame = cache.head_stats(page.inputs, stack)
    else:
        frame = core.sink_profile(page.result, stack=stack)
    layers = int(frame["layer"].max()) + 1
    heads = int(frame["head"].max()) + 1
    values = np.full((layers, heads), np.nan)
    values[frame["layer"].to_numpy(), frame["head"].to_numpy()] = frame[name].to_numpy(float)
    return {
        "measure": values,
        "measure_name": measure_label(name),
        "measure_range": (0.0, 1.0) if name in SHARES else None,
        "measure_threshold": DEFAULT_SINK_EPSILON if name == "first_token_share" else None,
    }
