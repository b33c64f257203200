"""The Attention page's self-attention of a long input, read in pieces.

Beyond the explorer's whole length (`ui.explorer.MAX_TOKENS`), or when the whole `[layers,
heads, n, n]` array exceeds the result's budget, the page shows one head (or the mean of heads)
in the explorer as a pooled overview of the whole matrix with exact tiles the browser asks for
as it zooms and pans, the selected token's top weights, the line view of a window around it
(`core.long_views`), and for methods that read rows in pieces (rollout) the chosen rows. Each
piece is kept in the result store; nothing here builds the whole array.
"""

from __future__ import annotations

import functools

import numpy as np
import streamlit as st

import core
from core import MethodRequest
from core.families import SELF
from core.long_views import (
    DETAIL_TOKENS,
    OVERVIEW_BLOCKS,
    REDUCES,
    TOP_WEIGHTS,
    max_whole_tokens,
    top_weights,
    whole_fits,
    window_start,
)
from core.methods import Needs
from core.methods.registry import check_length, max_tokens
from ui import cache, panels, session, stoppable
from ui.explorer import build_long_payload, change_in_callback, explorer
from ui.explorer.component import requested_tiles
from ui.explorer.payload import add_tiles, checked_tiles
from ui.head_view import head_view
from ui.head_view.component import clicked_in_callback
from ui.page import Page
from ui.text import plain
from ui.widgets import show_error

POOLING_KEY = "long_pooling"
EXPLORER_KEY = "long_explorer"
CHANGED_KEY = "long_explorer_changed"
"""Session: the explorer changed the view; the fragment reruns the page."""

POOLING_LABELS = {"mean": "Mean", "max": "Max"}
ROW_PX = 35
"""Height of one row of Streamlit's data frame."""
CHOSEN_KEY = "long_chosen_rows"
MAX_CHOSEN_ROWS = 8
"""Rows a method read in pieces computes per request (the selected token and up to 7 more)."""
LINE_VIEW_KEY = "head_view"
NEURON_KEYS = 32
"""Keys a long input's neuron view draws: those the query weighs most (and itself)."""


def in_pieces(page: Page, stack: str, explorer_tokens: int) -> bool:
    """Whether `stack` is read in pieces: the self stack whose whole array exceeds the budget
    (unless the view's method re-runs the model within its own memory budget, and so reads no
    whole array), or its raw weights of more tokens than the explorer (`explorer_tokens`)."""
    if stack != SELF:
        return False
    method, result = page.view.method, page.result
    if not whole_fits(result):
        entry = core.get_method(method)
        reads_whole = method == "raw" or entry.needs is Needs.ATTENTIONS
        return reads_whole or len(result.tokens) > max_tokens(entry, result)
    return len(result.tokens) > explorer_tokens and method == "raw"


def page_body(page: Page, causal: bool, explorer_tokens: int) -> None:
    """The page below its controls when `in_pieces`: raw weights, a method's chosen rows where
    it reads them in pieces (rollout), and for any other method the length it accepts."""
    n, most = len(page.result.tokens), max_whole_tokens(page.result)
    entry = core.get_method(page.view.method)
    if entry.rows_at_length is not None:
        chosen_rows(page, entry)
        return
    if page.view.method != "raw":
        st.info(f"{too_long(page, entry)} Raw attention and rollout read any length.")
        return
    st.subheader("Matrix")
    window = show(page, causal)
    st.subheader("Line view")
    window_line_view(page, window, window)
    panels.neuron_panel(page, SELF, keys=NEURON_KEYS)
    whole = (
        f"needs the whole attention array (≤ {most:,} tokens for this model); this text has {n:,}"
    )
    if n > most:
        st.caption(f"Exports of every layer and head: this {whole}.")
    else:
        st.subheader("Export")
        panels.exports_panel(page, SELF, None, int(np.prod(page.result.pieces(SELF).shape)))


def too_long(page: Page, entry: core.Method) -> str:
    """Why `entry` is not computed for this text: the length it accepts on this model, as the
    registry's check says it (`core.methods.registry.check_length`), for the chosen token and
    layer where it computes chosen ones."""
    declared = {parameter.name for parameter in entry.parameters}
    request = MethodRequest(
        result=page.result,
        rows=(page.view.token,) if "rows" in declared else None,
        layers=(page.view.layer,) if "layers" in declared else None,
    )
    try:
        check_length(entry, request)
    except core.MethodTooLongError as error:
        return str(error)
    return f"{entry.label} needs the whole attention array, which this text exceeds."


def chosen_rows(page: Page, entry: core.Method) -> None:
    """A method's rows for the selected token and any chosen ones, read in pieces at any length
    (`Method.rows_at_length`), each as its largest shares."""
    view, result = page.view, page.result
    labels = [t.text for t in result.tokens]  # chart and table text is data, not Markdown
    n, label = len(labels), entry.label
    st.subheader(f"{label[:1].upper()}{label[1:]} of chosen tokens")
    extra = st.multiselect(
        "Also for tokens",
        list(range(n)),
        format_func=lambda i: f"{i}: {labels[i]}",
        max_selections=MAX_CHOSEN_ROWS - 1,
        key=CHOSEN_KEY,
        help="The selected token's row is always computed; each row reads every layer once.",
    )
    rows = tuple(sorted({view.token, *extra}))
    bar = stoppable.ProgressBar(label, result.num_layers * n, unit="query rows")
    try:
        shares = cache.method_rows(
            page.inputs, view.method, view.layer, rows, bar.part(result.num_layers * n)
        )
    except core.AtlasError as error:
        show_error(str(error))
        return
    finally:
        bar.close()
    st.caption(
        f"Layer {view.layer}: which input tokens each chosen position is made of after this "
        f"layer ({entry.help.split(':')[0]}), read exactly from the captured attention at "
        f"{n:,} tokens. The largest {TOP_WEIGHTS} shares of each row."
    )
    columns = st.columns(min(2, len(rows)))
    for index, (row, values) in enumerate(zip(rows, shares, strict=True)):
        with columns[index % len(columns)]:
            st.markdown(f"**Token {row}** `{plain(labels[row])}`")
            _weights_table(top_weights(values, labels), "Share")


def window_line_view(page: Page, rows: range, cols: range) -> None:
    """The line view of the detail window: its rows' tokens on the left, its columns' on the
    right, every head's exact weights (the legend toggles them); a click selects a token."""
    view, result = page.view, page.result
    labels = [f"{i} {t.text}" for i, t in enumerate(result.tokens)]
    weights = np.stack(
        [result.tile(view.layer, head, rows, cols) for head in range(result.num_heads)]
    )
    head_view(
        np.nan_to_num(weights, nan=0.0),  # never computed: no line
        labels[rows.start : rows.stop],
        labels[cols.start : cols.stop],
        heads=[view.head] if isinstance(view.head, int) else None,
        selected=view.token - rows.start if view.token in rows else None,
        key=LINE_VIEW_KEY,
        height=panels.HEAD_VIEW_HEIGHT,
        # A window holds a part of each row, often of small weights: the strongest lines of
        # each token are drawn whatever their weight, their opacity on the window's maximum.
        threshold=0.0,
        on_select=functools.partial(_select_in_window, rows),
    )
    st.caption(
        f"Lines of the detail window, layer {view.layer}: queries {_span(rows)} on the left, "
        f"keys {_span(cols)} on the right, exact weights; cells the model never computes draw "
        "no line. The window follows the selected token."
    )


def _select_in_window(rows: range) -> None:
    """The window's line view `on_select`: a clicked query becomes the page's token."""
    clicked = clicked_in_callback(LINE_VIEW_KEY)
    if isinstance(clicked, int) and 0 <= clicked < len(rows):
        session.update(token=rows.start + clicked)


def _weights_table(table, value_label: str = "Weight") -> None:
    st.dataframe(
        table,
        hide_index=True,
        height=ROW_PX * (len(table) + 1) + 3,  # every listed key, without a scroll box
        column_config={
            "position": st.column_config.NumberColumn("Position"),
            "token": st.column_config.TextColumn("Token"),
            "weight": st.column_config.ProgressColumn(
                value_label, format="%.4f", min_value=0.0, max_value=1.0
            ),
        },
    )


def show(page: Page, causal: bool) -> range:
    """The view's layer and head in the explorer (pooled overview, exact tiles asked for as
    you zoom) and the selected token's row; returns the window of tokens around that token
    (`DETAIL_TOKENS` of them) for the line view."""
    view, result = page.view, page.result
    layer, n = view.layer, len(result.tokens)
    head = view.head if isinstance(view.head, int) else None
    who = f"head {head}" if head is not None else "mean of heads"
    labels = [t.text for t in result.tokens]  # chart and table text is data, not Markdown
    reduce = st.segmented_control(
        "Overview pooling",
        list(REDUCES),
        format_func=POOLING_LABELS.get,
        default="mean",
        key=POOLING_KEY,
        required=True,
        help="Where the explorer is zoomed out, each block shows the mean of its computed "
        "weights, or the largest: max pooling keeps a single strong weight visible. Zoomed "
        "in, it shows exact weights.",
    )
    _long_explorer(page, reduce, labels)
    st.caption(
        f"Layer {layer}, {who}: {n:,} tokens; rows are queries (from), columns keys (to). "
        f"Zoomed out, blocks of about {n / OVERVIEW_BLOCKS:.0f} tokens a side ({reduce} "
        f"pooling); zoom in (+, Ctrl + wheel) and exact {DETAIL_TOKENS} × {DETAIL_TOKENS} "
        "tiles replace them. " + empty_note(causal, result.window(layer))
    )
    st.subheader("Selected token")
    row = cache.row(page.inputs, layer, head, view.token)
    st.caption(f"What token {view.token} '{plain(labels[view.token])}' attends to most ({who}).")
    _weights_table(top_weights(row, labels))
    start = window_start(view.token, n)
    return range(start, min(n, start + DETAIL_TOKENS))


@st.fragment
def _long_explorer(page: Page, reduce: str, labels: list[str]) -> None:
    """The explorer of a long input. A fragment: a tile request reruns only this (the
    browser asks as it zooms and pans); a new head, token or layer reruns the page."""
    view = session.view()
    if st.session_state.pop(CHANGED_KEY, False):
        st.rerun(scope="app")  # the table, the link and the controls follow the explorer
    layer, n = view.layer, len(labels)
    head = view.head if isinstance(view.head, int) else None
    overview = cache.overview(page.inputs, layer, head, reduce)
    scale = "fixed" if view.colour_scale() == "fixed" else "chart"
    payload = build_long_payload(
        overview.grid,
        overview.row_edges,
        overview.col_edges,
        labels,
        reduce=reduce,
        n_heads=page.result.num_heads,
        head=head if head is not None else "mean",
        selected=view.token,
        selected_row=cache.row(page.inputs, layer, head, view.token),
        layer=layer,
        layers=page.result.num_layers,
        scale=scale,
        tile_size=DETAIL_TOKENS,
        title=f"Layer {layer} (rows: from, columns: to)",
        log=view.log_scale,
    )
    asked = checked_tiles(requested_tiles(EXPLORER_KEY), n, DETAIL_TOKENS)
    add_tiles(payload, [_tile(page, layer, head, row, col) for row, col in asked])
    explorer(payload, key=EXPLORER_KEY, on_change=_apply_change)


def _tile(page: Page, layer: int, head: int | None, row: int, col: int):
    """The exact tile from (`row`, `col`), cut from the stored detail window there (a window
    near the end starts earlier so as to hold `DETAIL_TOKENS`; the tile keeps its origin)."""
    detail = cache.detail(page.inputs, layer, head, row, col)
    return row, col, detail.matrix[row - detail.rows.start :, col - detail.cols.start :]


def _apply_change() -> None:
    """The explorer's `on_change`: its head, token and layer become the view's; the fragment
    then reruns the whole page (`CHANGED_KEY`)."""
    change = change_in_callback(EXPLORER_KEY)
    if change is None:
        return
    current = session.view()
    updates = {field: change[field] for field in ("head", "token", "layer") if field in change}
    updates = {f: v for f, v in updates.items() if v is not None and getattr(current, f) != v}
    if updates:
        session.update(**updates)
        st.session_state[CHANGED_KEY] = True


def empty_note(causal: bool, window: int | None) -> str:
    """What the empty cells are: later tokens, and keys outside a layer's sliding window."""
    if window is not None:
        return (
            f"Empty cells: weights the model never computes (later tokens, and keys more than "
            f"{window - 1} tokens back: this layer's sliding window is {window} tokens)."
        )
    if causal:
        return "Empty cells: later tokens, which a causal model cannot attend to."
    return ""


def _span(positions: range) -> str:
    return f"{positions.start}–{positions.stop - 1}"
