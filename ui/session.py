"""The view state in a Streamlit session: read once from the link, written back after each run.

The session holds one `ViewState` under `VIEW_KEY`. Controls are bound to one field each
(`widget_key`, `sync`): a control's change replaces that field before the rerun, so a page
reads its state from the `ViewState` it is given, never from `st.session_state`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import streamlit as st

from ui.state import Shape, ViewState, clamp, decode, encode

VIEW_KEY = "atlas_view"
PROBLEMS_KEY = "atlas_problems"
APP_RERUN_KEY = "atlas_app_rerun"
SIDEBAR_FIELDS = frozenset(
    {"model", "text", "pair", "target", "hide_special", "merge_words", "scale", "page"}
)
"""View fields drawn outside a page's fragment (the sidebar, the navigation): a change of one
of them from inside the fragment must rerun the whole app."""


def view() -> ViewState:
    """This session's view; the first call of a session reads it from the link."""
    current = st.session_state.get(VIEW_KEY)
    if current is None:
        params = {key: st.query_params.get(key) for key in st.query_params}
        current, problems = decode(params)
        for problem in problems:
            report(problem)
        st.session_state[VIEW_KEY] = current
    return current


def set_view(new: ViewState) -> ViewState:
    old = st.session_state.get(VIEW_KEY)
    if old is not None and any(getattr(old, f) != getattr(new, f) for f in SIDEBAR_FIELDS):
        st.session_state[APP_RERUN_KEY] = True
    st.session_state[VIEW_KEY] = new
    return new


def take_app_rerun() -> bool:
    """Whether a field drawn outside the page's fragment changed since the last call."""
    return bool(st.session_state.pop(APP_RERUN_KEY, False))


def update(**changes: Any) -> ViewState:
    """Replace some fields of the session's view; returns the new view."""
    return set_view(dataclasses.replace(view(), **changes))


def clamp_view(shape: Shape) -> ViewState:
    """Keep the session's view inside `shape`, reporting each value changed."""
    clamped, problems = clamp(view(), shape)
    for problem in problems:
        report(problem)
    return set_view(clamped)


def report(problem: str) -> None:
    """Queue a problem (already escaped) to show at the top of the page."""
    st.session_state.setdefault(PROBLEMS_KEY, []).append(problem)


def show_problems() -> None:
    for problem in st.session_state.pop(PROBLEMS_KEY, []):
        st.warning(problem)


FROM_VIEW = object()
"""`widget_key`'s default: the control shows the view's value."""


def widget_key(field: str, value: Any = FROM_VIEW, suffix: str = "") -> str:
    """Key of the control bound to view field `field`, set to the view's value (or `value`).

    Page controls lose their state when another page is shown; setting it from the view on
    every run keeps it, and lets another page (the overview grid, say) change it. `suffix`
    tells apart two controls of one field drawn in the same run (one per tab, say).
    """
    key = f"w_{field}{suffix}"
    st.session_state[key] = getattr(view(), field) if value is FROM_VIEW else value
    return key


def sync(field: str, key: str | None = None) -> None:
    """`on_change` of a bound control (`key`, default `w_<field>`): its new value becomes the
    view's field."""
    value = st.session_state[key or f"w_{field}"]
    update(**{field: tuple(value) if isinstance(value, list) else value})


def write_url(current: ViewState) -> None:
    """Mirror `current` in the link so it can be shared and survives a reload."""
    values = encode(current)
    known = {key: st.query_params.get(key) for key in st.query_params}
    if known != values:
        st.query_params.from_dict(values)
