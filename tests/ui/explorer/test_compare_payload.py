"""The explorer's compare mode: panels with link units, in one binary message, checked."""

import numpy as np
import pytest

from core.errors import InvalidSelectionError
from ui.explorer.payload import (
    build_compare_payload,
    build_payload,
    decode_codes,
    link_panel,
    pack_compare,
    unpack_compare,
)


def panel(n: int, title: str, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    heads = rng.dirichlet(np.ones(n), size=(2, n)).astype(np.float32)
    payload = build_payload(heads, [f"t{i}" for i in range(n)], mean=heads.mean(0), title=title)
    return payload


def test_panels_travel_with_their_link_units_and_bytes_in_one_message():
    before = link_panel(panel(4, "Before"), [0, 1, 2, 3], [0, 1, 2, 3], notes=["a note"])
    after = link_panel(panel(5, "After", 1), [0, 1, 1, 2, 3], [0, 1, 3, 4])
    payload = build_compare_payload([before, after], link="words", units=4, caption="shared")
    back = unpack_compare(pack_compare(payload))
    assert back["compare"] == {"link": "words", "units": 4, "caption": "shared"}
    assert [p["title"] for p in back["panels"]] == ["Before", "After"]
    assert back["panels"][1]["rowUnit"] == [0, 1, 1, 2, 3]
    assert back["panels"][1]["unitRow"] == [0, 1, 3, 4]
    assert back["panels"][0]["notes"] == ["a note"]
    for sent, received in zip(payload["panels"], back["panels"], strict=True):
        assert received["codes"] == sent["codes"] and received["exact"] == sent["exact"]
        np.testing.assert_array_equal(decode_codes(received), decode_codes(sent))


def test_a_compare_payload_is_checked():
    good = link_panel(panel(3, "A"), [0, 1, 2], [0, 1, 2])
    with pytest.raises(InvalidSelectionError):
        link_panel(panel(3, "A"), [0, 1], [0, 1, 2])  # a row without its unit
    with pytest.raises(InvalidSelectionError):
        link_panel(panel(3, "A"), [0, 1, 2], [0, 5, 2])  # no row 5
    with pytest.raises(InvalidSelectionError):
        build_compare_payload([good, good], link="tokens", units=3)
    with pytest.raises(InvalidSelectionError):
        build_compare_payload([good], link="words", units=3)
    with pytest.raises(InvalidSelectionError):
        build_compare_payload([good, good], link="words", units=4)  # units the panels lack
    other_heads = link_panel(
        build_payload(np.ones((3, 3, 3), np.float32) / 3, ["a", "b", "c"]), [0, 1, 2], [0, 1, 2]
    )
    with pytest.raises(InvalidSelectionError):
        build_compare_payload([good, other_heads], link="words", units=3)


def compare_script() -> None:
    import numpy as np
    import streamlit as st

    from ui.explorer import build_payload, compare_explorer
    from ui.explorer.component import _on_view
    from ui.explorer.payload import build_compare_payload, link_panel

    if st.session_state.get("simulate_need"):
        # What Streamlit runs before a run the browser's {"need": true} started.
        st.session_state["cx"] = {"view": {"need": True}}
        _on_view("cx", ("cx:0", "cx:1"), lambda: None)
    weights = np.array([[[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]]] * 2)
    panels = [
        link_panel(
            build_payload(weights, ["a", "b", "c"], mean=weights.mean(0)), [0, 1, 2], [0, 1, 2]
        )
        for _ in range(2)
    ]
    compare_explorer(build_compare_payload(panels, link="words", units=3), key="cx")


def test_each_panel_travels_once_and_again_when_the_browser_asks():
    from streamlit.testing.v1 import AppTest

    from ui.explorer.component import COMPONENT_NAME

    def sent(at) -> dict:
        [element] = [
            e for e in at.get("bidi_component") if e.proto.component_name == COMPONENT_NAME
        ]
        return unpack_compare(element.proto.bytes)

    at = AppTest.from_function(compare_script, default_timeout=60).run()
    first = sent(at)
    assert first["compare"]["key"] == "cx"  # the browser keeps its copies by it
    assert all(p["codes"] and p["exact"] for p in first["panels"])
    at.run()
    assert all(p["codes"] is None and p["exact"] is None for p in sent(at)["panels"])
    at.session_state["simulate_need"] = True
    at.run()
    assert all(p["codes"] and p["exact"] for p in sent(at)["panels"])
