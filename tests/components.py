"""What a Streamlit bidirectional component was given in an AppTest run (page and ui tests)."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest


def component_payload(at: AppTest, name: str) -> dict:
    """The data component `name` (a ``COMPONENT_NAME``) was given in the last run, decoded:
    one JSON string (a dict would be re-encoded with spaces), or the explorer's binary message
    (`ui.explorer.payload.pack`)."""
    from ui.explorer.payload import unpack

    [component] = [
        el
        for el in at.get("bidi_component")
        if (el.proto.json or el.proto.bytes) and el.proto.component_name == name
    ]
    if component.proto.bytes:
        return unpack(component.proto.bytes)
    return json.loads(json.loads(component.proto.json))
