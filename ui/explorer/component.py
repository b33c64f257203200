"""The explorer as a bidirectional Streamlit component (``st.components.v2``, no build step).

The browser gets one layer's matrices (:mod:`ui.explorer.payload`, as one binary message) and
does the rest itself:
head and token changes, hover, the legend's options, PNG export. What comes back is the view
(trigger ``view``): ``{"head": h or "mean", "token": row}`` once the keys rest, with a
``"layer"`` at once for Page Up / Page Down, or ``{"need": true}`` when it lacks the data.
The page applies a view in an ``on_change`` callback before its run
(:func:`change_in_callback`), so the controls and the link follow.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import streamlit as st

from ui.explorer.payload import PAYLOAD_VERSION, LayerCodes, pack, pack_compare

COMPONENT_NAME = "attention_atlas.explorer"
HERE = Path(__file__).parent
VIEW_EVENT = "view"
HEADS_NAME = "attention_atlas.explorer_heads"
HEADS_JS = """export default function heads({ data }) {
  // The explorer's codes, for ui/explorer/explorer.js to read: nothing is drawn here.
  window.__atlasExplorerHeadsMessage = data;
  window.dispatchEvent(new CustomEvent("atlas-explorer-heads-message"));
}"""
"""The hidden element that carries a layer's codes after the explorer's shown matrix."""
TILES_EVENT = "tiles"
"""A long input's browser asks for exact tiles: ``{"tiles": [[row, col], ...]}``."""


@cache
def _mount():
    # Registered once per process: registering again under the same name logs a warning.
    return st.components.v2.component(
        COMPONENT_NAME,
        css=(HERE / "explorer.css").read_text(encoding="utf-8"),
        js=(HERE / "explorer.js").read_text(encoding="utf-8"),
    )


@cache
def _mount_heads():
    return st.components.v2.component(HEADS_NAME, js=HEADS_JS)


def _ignore_change() -> None:
    """The ``view`` trigger needs a callback to be registered."""


def explorer(
    payload: dict[str, Any],
    *,
    key: str = "explorer",
    on_change: Callable[[], None] | None = None,
) -> Callable[[], None]:
    """Mount the explorer with `payload` (:func:`ui.explorer.payload.build_payload`, or
    :func:`~ui.explorer.payload.build_long_payload` for a long input, whose browser asks for
    exact tiles with the ``tiles`` trigger: :func:`requested_tiles`).

    `on_change` runs before the run a change in the browser starts; it reads the change with
    :func:`change_in_callback`.

    The matrices travel once per layer: a run that shows the ones this session sent last
    (same ``"key"``, a hash of the codes) sends ``"codes": null`` and the browser reuses its
    copy (3.4 MB at 512 tokens, which a token or head change must not send again). Each head's
    float16 (``"exact"``, keyed by ``"exactKey"``) travels once too while the layer stays. A
    browser without a copy (a reload of the component) asks for it with ``{"need": true}``.

    A payload built with ``heads_later`` (:func:`~ui.explorer.payload.build_payload`) sends a
    new layer's shown matrix first (its float16: 0.5 MB at 512 tokens, against 4 MB for the
    layer) with ``"later": true``; the returned function, called once later in the run (after
    the page's other views), sends the codes of every matrix in a second, hidden element
    (:func:`_send_heads`). Until they come the browser draws the shown matrix and waits for
    any other. For other payloads the function does nothing; calling it is harmless.
    """
    payload = dict(payload)
    later = None
    if "long" in payload:
        _send_overview_once(payload, key)
    else:
        later = _send_layer_once(payload, key)
    _mount()(
        key=key,
        data=pack(payload),
        on_view_change=functools.partial(_on_view, key, (key,), on_change or _ignore_change),
        on_tiles_change=_ignore_change,
    )
    if later is None:
        return _ignore_change
    return functools.partial(_send_heads, key, later)


def _send_heads(key: str, later: LayerCodes) -> None:
    """The codes of every matrix of the layer `later`, in a hidden element keyed after the
    explorer `key`, when this session has not sent them since the layer changed (an empty
    message otherwise: the element stays in place, so nothing below it moves)."""
    sent = st.session_state.get(_sent_key(key))
    message: dict[str, Any] = {"v": PAYLOAD_VERSION, "headsOf": None}
    if sent is not None and not sent.get("heads", True):
        message = {**message, "headsOf": sent["codes"], "shape": list(later.values.shape)}
        message.update(later.encode())
        st.session_state[_sent_key(key)] = {**sent, "heads": True}
    _mount_heads()(key=f"{key}_heads", data=pack(message), height=0)


def requested_tiles(key: str = "explorer") -> Any:
    """In the run a tile request started (a fragment's, ideally): what the browser asked for
    (unchecked: `ui.explorer.payload.checked_tiles` checks it), or None."""
    state = st.session_state.get(key)
    trigger = state.get(TILES_EVENT) if isinstance(state, dict) else None
    return trigger.get("tiles") if isinstance(trigger, dict) else None


def _send_overview_once(payload: dict[str, Any], key: str) -> None:
    """A long input's overview travels once per layer, head and pooling (the tiles when
    asked for, the selected row each run: 2 bytes a token)."""
    payload["key"] = _digest(payload["overview"], str(payload["long"]).encode())
    state = st.session_state
    if state.get(_sent_key(key)) == {"overview": payload["key"]}:
        payload["overview"] = None
    state[_sent_key(key)] = {"overview": payload["key"]}


def _send_layer_once(payload: dict[str, Any], key: str) -> LayerCodes | None:
    """Drops from `payload` what this session's browser has; the layer's codes still to send
    after the shown matrix (a ``heads_later`` payload), else None."""
    later = payload.pop("later", None)
    if later is None:
        payload["key"] = _digest(payload["codes"], payload["scales"])
    else:
        payload["key"] = later.key()
    payload["exactKey"] = _digest(payload["exact"], str(payload["exactOf"]).encode())
    state = st.session_state
    sent = state.get(_sent_key(key))
    if sent is None or sent["codes"] != payload["key"]:
        # "heads": whether the codes of a heads_later layer went out (they follow this run).
        sent = {"codes": payload["key"], "exact": [], "heads": later is None}
    else:
        payload["codes"] = payload["scales"] = None
    payload["later"] = not sent.get("heads", True)
    if payload["exactKey"] in sent["exact"]:
        payload["exact"] = None
    else:
        sent["exact"] = [*sent["exact"], payload["exactKey"]]
    state[_sent_key(key)] = sent
    return later


def _digest(*parts: bytes) -> str:
    digest = hashlib.blake2b(digest_size=8)
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


def _sent_key(key: str) -> str:
    """Session key holding the codes key the explorer `key` was last sent and the exact keys
    sent with them."""
    return f"{key}__sent_data"


def _on_view(key: str, sent_keys: tuple[str, ...], on_change: Callable[[], None]) -> None:
    """The view trigger of the explorer `key`: a browser that lost its copies of the matrices
    (``{"need": true}``) has this run send them again (the sent-state of each of `sent_keys`
    is forgotten); any other change goes to `on_change`."""
    state = st.session_state.get(key)
    trigger = state.get(VIEW_EVENT) if isinstance(state, dict) else None
    if isinstance(trigger, dict) and trigger.get("need") is True:
        for sent_key in sent_keys:
            st.session_state.pop(_sent_key(sent_key), None)
        return
    on_change()


def change_in_callback(key: str = "explorer") -> dict[str, Any] | None:
    """In an `on_change` callback: the browser's change, checked, or None.

    Returns a dict with ``head`` (an int or ``"mean"``), ``token`` (a row or None) and, when the
    keyboard asked for another layer, ``layer``; nonsense from the browser is dropped.
    """
    try:
        state = st.session_state.get(key)
    except Exception:  # no session (bare mode)
        return None
    trigger = state.get(VIEW_EVENT) if isinstance(state, dict) else None
    return checked_change(trigger)


def checked_change(trigger: Any) -> dict[str, Any] | None:
    """The fields of a ``view`` trigger payload that have the right types (None: nothing)."""
    if not isinstance(trigger, dict):
        return None

    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    change: dict[str, Any] = {}
    head = trigger.get("head")
    if head == "mean" or whole(head):
        change["head"] = head
    token = trigger.get("token")
    if token is None or whole(token):
        change["token"] = token
    if whole(trigger.get("layer")):
        change["layer"] = trigger["layer"]
    return change or None


# ---------------------------------------------------------------------- compare
def compare_explorer(
    payload: dict[str, Any],
    *,
    key: str,
    on_change: Callable[[], None] | None = None,
) -> None:
    """Mount the explorer in its compare mode (:func:`ui.explorer.payload.build_compare_payload`):
    several matrices sharing one view. Each panel's matrices travel once per layer as in
    :func:`explorer` (its own sent-state, ``"<key>:<panel>"``); the view trigger is the same
    (:func:`change_in_callback` with `key`)."""
    payload = {
        **payload,
        # The browser keeps each panel's matrices and the view by this key (explorer.js).
        "compare": {**payload["compare"], "key": key},
        "panels": [dict(panel) for panel in payload["panels"]],
    }
    for index, panel in enumerate(payload["panels"]):
        _send_layer_once(panel, _panel_key(key, index))
    _mount()(
        key=key,
        data=pack_compare(payload),
        on_view_change=functools.partial(
            _on_view,
            key,
            tuple(_panel_key(key, index) for index in range(len(payload["panels"]))),
            on_change or _ignore_change,
        ),
        on_tiles_change=_ignore_change,
    )


def _panel_key(key: str, index: int) -> str:
    return f"{key}:{index}"
