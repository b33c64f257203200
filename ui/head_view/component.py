"""The head view as a bidirectional Streamlit component (``st.components.v2``).

The browser gets one layer's attention (all heads, pruned by :mod:`ui.head_view.payload`) and
does everything else itself: hover on either side, legend toggles, isolating a head. Only a
click on a token comes back to Python, as the component's ``select`` trigger, and reruns the
script.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from core.errors import InvalidSelectionError
from ui.components import registered
from ui.head_view.payload import (
    DEFAULT_THRESHOLD,
    DEFAULT_TOP_K,
    build_payload,
    payload_json,
)

COMPONENT_NAME = "attention_atlas.head_view"
HERE = Path(__file__).parent
SELECT_EVENT = "select"


def _ignore_select() -> None:
    """The ``select`` trigger needs a callback to be registered; the return value carries it."""


NOT_CLICKED = object()
"""`clicked_in_callback`'s answer when the run was not started by a click on a token."""


def clicked_in_callback(key: str = "head_view") -> Any:
    """In an `on_select` callback: the token clicked in head view `key` (None when the click
    cleared the selection), or `NOT_CLICKED`."""
    trigger = _trigger_before_mount(key)
    return clicked_token(trigger, None) if isinstance(trigger, dict) else NOT_CLICKED


def head_view(
    attention: Any,
    left_tokens: Sequence[str],
    right_tokens: Sequence[str] | None = None,
    *,
    heads: Sequence[int] | None = None,
    selected: int | None = None,
    key: str = "head_view",
    height: int | None = None,
    colour_scale_max: float | None = None,
    colour_scale_name: str = "fixed scale",
    causal: bool = False,
    segment_b_start: int | None = None,
    piece_marks: Sequence[bool] | tuple[Sequence[bool], Sequence[bool]] | None = None,
    top_k: int = DEFAULT_TOP_K,
    threshold: float = DEFAULT_THRESHOLD,
    single: str | None = None,
    on_select: Callable[[], None] | None = None,
) -> int | None:
    """Draw BertViz-style attention lines for one layer; return the selected token.

    `attention` is ``[heads, queries, keys]`` of one layer; every head is shipped so the
    legend works without the server. Queries are `left_tokens`; for cross attention pass the
    keys (source) as `right_tokens`. `heads` are shown at first (all by default; all are
    listed). `selected` (a left token index) has its lines highlighted. `height` caps the
    drawing's height in pixels (it then scrolls); by default it is as tall as the tokens.
    `colour_scale_max` is the weight drawn at full opacity (default: the layer's maximum),
    `colour_scale_name` what it is (for the note).
    `causal` drops lines to later tokens. `segment_b_start` marks sentence B of a pair;
    `piece_marks` flags tokens that continue the previous token's word. Lines: the `top_k`
    strongest per token and head with weight at least `threshold`. `single` names the one
    matrix of a method without heads (no head legend is drawn). `on_select` runs on a
    click, before the run it starts (`clicked_in_callback` reads the token): a page that moves
    its selection there draws every view with it at once, with no second run.

    Returns the token the user clicked in the run that the click started (``None`` when the
    click cleared the selection), and `selected` in every other run, so
    ``selected = head_view(..., selected=selected)`` keeps the two in step.
    """
    # In the run a click started, its token is already in the session state (under the
    # component's key) before the component is mounted: shipping it, rather than the caller's
    # `selected` from before the click, keeps the browser from flashing back to the old one.
    selected = clicked_token(_trigger_before_mount(key), selected)
    payload = build_payload(
        attention,
        left_tokens,
        right_tokens,
        heads=heads,
        selected=selected,
        colour_scale_max=colour_scale_max,
        colour_scale_name=colour_scale_name,
        causal=causal,
        segment_b_start=segment_b_start,
        piece_marks=piece_marks,
        top_k=top_k,
        threshold=threshold,
        single=single,
    )
    if height is not None:
        if isinstance(height, bool) or not isinstance(height, int) or height < 100:
            raise InvalidSelectionError(f"height must be at least 100 pixels, not {height!r}.")
        payload["maxHeight"] = height
    # A string travels as is (Streamlit would re-encode a dict with spaces); the script parses
    # it once.
    result = registered(COMPONENT_NAME, HERE, "head_view")(
        key=key,
        data=payload_json(payload),
        on_select_change=on_select or _ignore_select,
    )
    return clicked_token(result.get(SELECT_EVENT) if result else None, selected)


def _trigger_before_mount(key: str) -> Any:
    """This run's ``select`` trigger payload, read from the session state before mounting."""
    try:
        state = st.session_state.get(key)
    except Exception:  # no session (bare mode) or a key Streamlit will not present yet
        return None
    return state.get(SELECT_EVENT) if isinstance(state, dict) else None


def clicked_token(trigger: Any, selected: int | None) -> int | None:
    """The component's return value from its ``select`` trigger payload (``{"token": i}`` or
    ``{"token": None}`` in the run a click started, ``None`` otherwise)."""
    if not isinstance(trigger, dict):
        return selected
    token = trigger.get("token")
    return token if isinstance(token, int) and not isinstance(token, bool) else None
