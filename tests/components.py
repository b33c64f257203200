"""What a Streamlit bidirectional component was given in an AppTest run (page and ui tests)."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest


def component_payload(at: AppTest, name: str) -> dict:
    """The data component `name` (a ``COMPONENT_NAME``) was given in the last run: one JSON
    string (a dict would be re-encoded with spaces), decoded."""
    [component] = [
        el for el in at.get("bidi_component") if el.proto.json and el.proto.component_name == name
    ]
    return json.loads(json.loads(component.proto.json))
