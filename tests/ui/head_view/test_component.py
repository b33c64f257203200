"""The Streamlit side of the head view: what it mounts and what it returns."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.errors import InvalidSelectionError
from tests.components import component_payload
from ui.head_view.component import COMPONENT_NAME, clicked_token


def demo_script() -> None:
    import numpy as np
    import streamlit as st

    from ui.head_view import head_view

    weights = np.array([[[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]]] * 2)
    chosen = head_view(
        weights,
        ["the", "cat", "##s"],
        selected=1,
        key="hv",
        height=240,
        piece_marks=[False, False, True],
    )
    st.write(f"returned {chosen}")


def test_mounts_one_component_with_the_compact_payload_and_returns_the_selection():
    at = AppTest.from_function(demo_script, default_timeout=60).run()
    assert not at.exception
    [component] = at.get("bidi_component")
    assert "export default function" in component.proto.js_content
    payload = component_payload(at, COMPONENT_NAME)
    assert payload["left"] == ["the", "cat", "##s"] and payload["sel"] == 1
    assert payload["maxHeight"] == 240 and payload["pieces"] == [0, 0, 1]
    assert len(payload["edges"]) == 2
    # No click in this run: the selection passed in comes back.
    assert at.markdown[0].value == "returned 1"


@pytest.mark.parametrize(
    ("trigger", "selected", "expected"),
    [
        (None, 4, 4),  # no click in this run
        (None, None, None),
        ({"token": 7}, 4, 7),  # a click on token 7
        ({"token": None}, 4, None),  # a click on the selected token clears it
        ({"token": True}, 4, None),  # nonsense from the browser is no selection
    ],
)
def test_clicked_token(trigger, selected, expected):
    assert clicked_token(trigger, selected) == expected


def test_height_error_is_an_atlas_error():
    import numpy as np

    from ui.head_view import head_view

    with pytest.raises(InvalidSelectionError, match="at least 100"):
        head_view(np.ones((1, 2, 2)) / 2, ["a", "b"], height=50)
