"""Controls bound to the view state, charts, downloads and messages.

Nothing here closes over a result: callbacks get small values through `args` or
`functools.partial`, so the widget metadata a kept session holds pins no arrays.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from server.policy import export_refusal
from ui import session
from ui.cache import admitted_export, in_heavy_page
from ui.deploy import deploy_policy
from ui.runtime import skip_final_validation
from ui.text import plain


def bound(
    widget: Callable[..., Any],
    label: str,
    field: str,
    *,
    value: Any = session.FROM_VIEW,
    key_suffix: str = "",
    **kwargs: Any,
) -> Any:
    """Render `widget` bound to view field `field` (showing `value` if given); its value.

    `key_suffix` lets a page draw a second control of the same field (see `session.widget_key`).
    """
    key = session.widget_key(field, value, key_suffix)
    return widget(label, key=key, on_change=session.sync, args=(field, key), **kwargs)


def label_from(labels: Sequence[str] | dict[Any, str]) -> Callable[[Any], str]:
    """A `format_func` reading option labels from `labels` (strings only, nothing else held)."""
    return functools.partial(_lookup, labels)


def _lookup(labels: Sequence[str] | dict[Any, str], option: Any) -> str:
    return str(labels[option])


def show_chart(chart: Any, **kwargs: Any) -> Any:
    """Draw a builder's chart: a plain Vega-Lite spec (`core.charts.Spec`) as it is, an Altair
    chart without Altair's validation of the finished spec."""
    if isinstance(chart, dict):
        return st.vega_lite_chart(chart, **kwargs)
    return st.altair_chart(skip_final_validation(chart), **kwargs)


def show_error(message: str) -> None:
    """An error for people: escaped, on one line (messages quote what visitors typed)."""
    st.error(plain(message))


def file_stem(*parts: object) -> str:
    """A descriptive file name stem: the parts joined by "_", safe characters only."""
    text = "_".join(str(part) for part in parts if part not in ("", None))
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-") or "export"


def export_buttons(
    name: str,
    *,
    csv: Callable[[], str],
    json: Callable[[], str],
    cells: int = 0,
    stem: str | None = None,
) -> None:
    """CSV and JSON download buttons; the data is only built when a button is clicked.

    `csv` and `json` are built lazily: pass `functools.partial`s of cache functions with small
    arguments, not closures over arrays. Over the deployment's export cap
    (`ATLAS_MAX_EXPORT_CELLS`) the buttons are replaced by a note.
    """
    refusal = export_refusal(deploy_policy(), cells)
    if refusal is not None:
        st.caption(f"{name}: {refusal}")
        return
    stem = stem or file_stem(name.lower().replace(" ", "_"))
    # Built when clicked; a file of a heavy page's size waits in the heavy line (`ui.cache`).
    heavy = in_heavy_page()
    csv = functools.partial(admitted_export, csv, cells, heavy)
    json = functools.partial(admitted_export, json, cells, heavy)
    left, right = st.columns(2)
    left.download_button(
        f"{name} as CSV", data=csv, file_name=f"{stem}.csv", mime="text/csv", on_click="ignore"
    )
    right.download_button(
        f"{name} as JSON",
        data=json,
        file_name=f"{stem}.json",
        mime="application/json",
        on_click="ignore",
    )
