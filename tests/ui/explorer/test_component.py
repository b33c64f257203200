"""The Streamlit side of the explorer: what it mounts and what a change from the browser does."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.components import component_payload
from ui.explorer.component import COMPONENT_NAME, checked_change


def demo_script() -> None:
    import numpy as np
    import streamlit as st

    from ui.explorer import build_payload, change_in_callback, explorer
    from ui.explorer.component import _on_view

    if st.session_state.get("simulate_callback"):
        # What Streamlit does before a run a trigger started: the component's callback.
        _on_view("ex", ("ex",), lambda: st.session_state.update(called=True))
    weights = np.array([[[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]]] * 2)
    head = st.session_state.get("head", "mean")
    payload = build_payload(
        weights, ["the", "cat", "·s"], mean=weights.mean(0), selected=1, head=head
    )
    explorer(payload, key="ex")
    st.write(f"heard {change_in_callback('ex')}")


def test_mounts_one_component_with_the_payload_as_one_binary_message():
    at = AppTest.from_function(demo_script, default_timeout=60).run()
    assert not at.exception
    [component] = at.get("bidi_component")
    assert "export default function" in component.proto.js_content
    payload = component_payload(at, COMPONENT_NAME)
    assert payload["rows"] == ["the", "cat", "·s"] and payload["sel"] == 1
    assert payload["names"] == ["0", "1", "mean"]
    assert at.markdown[0].value == "heard None"


def payload_of(at: AppTest) -> dict:
    return component_payload(at, COMPONENT_NAME)


def test_the_matrices_travel_once_and_again_when_the_browser_asks():
    at = AppTest.from_function(demo_script, default_timeout=60).run()
    first = payload_of(at)
    assert first["codes"] and first["exact"] and len(first["key"]) == 16
    # The same matrices again: their keys only; the browser keeps its copy.
    at.run()
    again = payload_of(at)
    assert again["codes"] is None and again["exact"] is None and again["key"] == first["key"]
    # Another head of the same layer: its float16 only, once.
    at.session_state["head"] = 0
    at.run()
    head_0 = payload_of(at)
    assert head_0["codes"] is None and head_0["exact"] and head_0["exactOf"] == 0
    at.session_state["head"] = "mean"
    at.run()
    assert payload_of(at)["exact"] is None  # the browser still has the mean's
    # A browser without its copy asks for it: the next run sends the data again.
    at.session_state["ex"] = {"view": {"need": True}}
    at.session_state["simulate_callback"] = True
    at.run()
    assert not at.exception
    assert payload_of(at)["codes"] == first["codes"] and payload_of(at)["exact"] == first["exact"]
    assert "called" not in at.session_state  # a request for data is no view change
    at.session_state["ex"] = {"view": {"token": 2}}
    at.run()
    assert at.session_state["called"] is True


def test_a_change_in_the_browser_is_read_back_checked():
    at = AppTest.from_function(demo_script, default_timeout=60).run()
    at.session_state["ex"] = {"view": {"head": "mean", "token": 2, "layer": "x"}}
    at.run()
    assert not at.exception
    assert at.markdown[0].value == "heard {'head': 'mean', 'token': 2}"


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        (None, None),
        ("view", None),
        ({"head": 3, "token": 7}, {"head": 3, "token": 7}),
        ({"head": "mean", "token": None}, {"head": "mean", "token": None}),
        ({"head": 1, "token": 2, "layer": 4}, {"head": 1, "token": 2, "layer": 4}),
        # Nonsense from the browser is dropped field by field.
        ({"head": "best", "token": -1, "layer": True}, None),
        ({"head": True, "token": 2.5}, None),
        ({"head": 2, "token": "x"}, {"head": 2}),
    ],
)
def test_checked_change(trigger, expected):
    assert checked_change(trigger) == expected


def long_script() -> None:
    import numpy as np
    import streamlit as st

    from ui.explorer import build_long_payload, explorer
    from ui.explorer.component import requested_tiles
    from ui.explorer.payload import add_tiles, checked_tiles

    edges = np.array([0, 4, 8])
    grid = np.array([[0.2, np.nan], [0.1, 0.3]], np.float32)
    payload = build_long_payload(
        grid,
        edges,
        edges,
        [f"t{i}" for i in range(8)],
        reduce=st.session_state.get("reduce", "mean"),
        n_heads=2,
        selected=1,
        selected_row=np.full(8, 0.125),
        tile_size=4,
    )
    asked = checked_tiles(requested_tiles("ex"), 8, 4)
    add_tiles(payload, [(r, c, np.full((4, 4), r + c / 10)) for r, c in asked])
    explorer(payload, key="ex")


def test_a_long_input_sends_its_overview_once_and_the_tiles_asked_for():
    at = AppTest.from_function(long_script, default_timeout=60).run()
    assert not at.exception
    first = payload_of(at)
    assert first["overview"] and first["tiles"] == [] and first["long"]["tile"] == 4
    at.run()
    assert payload_of(at)["overview"] is None and payload_of(at)["key"] == first["key"]
    # The browser asks for two tiles (and some nonsense): this run answers with them only.
    at.session_state["ex"] = {"tiles": {"tiles": [[4, 0], [0, 4], [5, 5]]}}
    at.run()
    answer = payload_of(at)
    assert answer["tiles"] == [[4, 0, 4, 4], [0, 4, 4, 4]] and answer["overview"] is None
    assert len(answer["tileData"]) == 2 * 2 * 16
    # Another pooling is another overview.
    at.session_state["reduce"] = "max"
    at.run()
    assert payload_of(at)["overview"] and payload_of(at)["key"] != first["key"]


def head_first_script() -> None:
    import numpy as np
    import streamlit as st

    from ui.explorer import build_payload, explorer

    rng = np.random.default_rng(int(st.session_state.get("layer", 0)))
    weights = rng.random((3, 4, 4)).astype(np.float32)
    st.session_state["weights"] = weights
    payload = build_payload(
        weights,
        ["a", "b", "c", "d"],
        mean=weights.mean(0),
        head=st.session_state.get("head", 1),
        heads_later=True,
    )
    send_heads = explorer(payload, key="ex")
    st.write("the page's other views")
    send_heads()


def heads_of(at: AppTest) -> dict:
    from ui.explorer.component import HEADS_NAME

    return component_payload(at, HEADS_NAME)


def test_a_new_layer_sends_its_shown_matrix_first_and_every_matrix_after_it():
    from ui.explorer import decode_codes, decode_values

    at = AppTest.from_function(head_first_script, default_timeout=60).run()
    assert not at.exception
    first = payload_of(at)
    weights = at.session_state["weights"]
    # The explorer's message: the shown head's float16 only, and word that the rest follows.
    assert first["codes"] is None and first["scales"] is None and first["later"] is True
    assert first["exactOf"] == 1
    shown = decode_values(first["exact"], first["shape"][1:])
    np.testing.assert_allclose(shown, weights[1], rtol=2**-11, atol=6e-8)
    # After the page's other views, the hidden element: every matrix's codes, this layer's key.
    elements = [e.proto.component_name for e in at.get("bidi_component")]
    assert elements == [COMPONENT_NAME, "attention_atlas.explorer_heads"]
    heads = heads_of(at)
    assert heads["headsOf"] == first["key"] and heads["shape"] == [4, 4, 4]
    decoded = decode_codes({**first, **heads})
    np.testing.assert_allclose(decoded[:3], weights, atol=weights.max() / 254)
    np.testing.assert_allclose(decoded[3], weights.mean(0), atol=weights.max() / 254)
    # The same layer again: nothing travels, the hidden element stays (empty).
    at.run()
    again = payload_of(at)
    assert again["codes"] is None and again["exact"] is None and again["later"] is False
    assert again["key"] == first["key"] and heads_of(at)["headsOf"] is None
    # Another head of the layer: its float16 only; the codes are the browser's already.
    at.session_state["head"] = 2
    at.run()
    head_2 = payload_of(at)
    assert head_2["exactOf"] == 2 and head_2["later"] is False and heads_of(at)["headsOf"] is None
    # Another layer: its shown matrix first again, then its codes.
    at.session_state["layer"] = 1
    at.run()
    second = payload_of(at)
    assert second["key"] != first["key"] and second["later"] is True and second["exact"]
    assert heads_of(at)["headsOf"] == second["key"] and heads_of(at)["codes"]


def test_codes_a_run_did_not_send_go_with_the_next_and_again_if_the_browser_asks():
    at = AppTest.from_function(head_first_script, default_timeout=60).run()
    key = payload_of(at)["key"]
    # A run stopped between the explorer and its hidden element (a new trigger): the session
    # still owes the browser the codes, and the next run sends them.
    at.session_state["ex__sent_data"] = {**at.session_state["ex__sent_data"], "heads": False}
    at.run()
    assert payload_of(at)["later"] is True and payload_of(at)["codes"] is None
    assert heads_of(at)["headsOf"] == key and heads_of(at)["codes"]
    assert at.session_state["ex__sent_data"]["heads"] is True
    # A browser whose codes never came asks ({need: true}): the shown matrix and the codes again.
    del at.session_state["ex__sent_data"]  # what `_on_view` does for `need` (tested above)
    at.run()
    assert payload_of(at)["exact"] and payload_of(at)["later"] is True
    assert heads_of(at)["headsOf"] == key and heads_of(at)["codes"]


def test_a_payload_without_heads_later_keeps_one_message():
    at = AppTest.from_function(demo_script, default_timeout=60).run()
    assert payload_of(at)["codes"] and payload_of(at)["later"] is False
    assert [e.proto.component_name for e in at.get("bidi_component")] == [COMPONENT_NAME]
