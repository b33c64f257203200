"""The session's view: which changes must rerun the whole app rather than the page's fragment."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _script() -> None:
    import streamlit as st

    from ui import session

    session.view()
    session.take_app_rerun()
    for field, value in [("layer", 2), ("token", 3), ("model", "other"), ("hide_special", True)]:
        session.update(**{field: value})
        st.text(f"{field}: {session.take_app_rerun()}")
    st.text(f"again: {session.take_app_rerun()}")


def test_only_a_field_drawn_outside_the_fragment_asks_for_a_whole_app_run():
    app = AppTest.from_function(_script, default_timeout=60).run()
    assert not app.exception, app.exception
    assert [t.value for t in app.text] == [
        "layer: False",
        "token: False",
        "model: True",
        "hide_special: True",
        "again: False",
    ]
