"""The model overview's head grid as a bidirectional Streamlit component (``st.components.v2``).

One canvas of every head's thumbnail, as wide as its column (taller with more layers); hover
names the head (and its measure), a click or Enter on a head sends trigger ``open`` with
``{"layer": l, "head": h}``, which the page turns into the same link as today
(`ui.page.open_head`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ui.components import registered
from ui.head_grid.payload import build_payload

COMPONENT_NAME = "attention_atlas.head_grid"
HERE = Path(__file__).parent
OPEN_EVENT = "open"


def _ignore_open() -> None:
    """The ``open`` trigger needs a callback to be registered; the return value carries it."""


def head_grid(thumbnails: Any, *, key: str = "head_grid", **options: Any) -> tuple[int, int] | None:
    """Draw the grid (`thumbnails` and `options` as :func:`ui.head_grid.payload.build_payload`);
    return the ``(layer, head)`` clicked in the run the click started, else None."""
    payload = build_payload(thumbnails, **options)
    result = registered(COMPONENT_NAME, HERE, "head_grid")(
        key=key,
        # A string travels as is (a dict would be re-encoded with spaces); the script parses it.
        data=json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False),
        on_open_change=_ignore_open,
    )
    return opened_head(
        result.get(OPEN_EVENT) if result else None, payload["layers"], payload["heads"]
    )


def opened_head(trigger: Any, layers: int, heads: int) -> tuple[int, int] | None:
    """``(layer, head)`` of an ``open`` trigger payload inside the grid, else None (nonsense
    from the browser is dropped)."""
    if not isinstance(trigger, dict):
        return None
    layer, head = trigger.get("layer"), trigger.get("head")
    whole = all(isinstance(v, int) and not isinstance(v, bool) for v in (layer, head))
    if whole and 0 <= layer < layers and 0 <= head < heads:
        return layer, head
    return None
