"""The Attention page's raw self-attention of a long input, read in pieces.

Beyond the explorer's length (`ui.explorer.MAX_TOKENS`), or when the whole `[layers, heads,
n, n]` array exceeds the result's budget, the page shows one head (or the mean of heads) as a
pooled overview of the whole matrix, an exact detail window and the selected token's top
weights (`core.long_views`), each kept in the result store. Nothing here builds the whole array.
"""

from __future__ import annotations

import functools

import numpy as np
import streamlit as st

import core
from core import MethodRequest, charts
from core.families import SELF
from core.long_views import (
    DETAIL_TOKENS,
    REDUCES,
    TOP_WEIGHTS,
    Detail,
    max_whole_tokens,
    top_weights,
    whole_fits,
    window_start,
)
from core.methods import Needs
from core.methods.registry import check_length, max_tokens
from ui import cache, panels, session, stoppable
from ui.head_view import head_view
from ui.head_view.component import clicked_in_callback
from ui.layout import PAGE_PX
from ui.page import Page
from ui.text import plain
from ui.widgets import show_chart, show_error

POOLING_KEY = "long_pooling"
ROW_KEY, COL_KEY = "long_row", "long_col"
CENTRED_KEY = "long_centred_on"
"""Session: the token the detail window was last centred on; a new selection moves it."""
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
    detail = show(page, causal)
    st.subheader("Line view")
    window_line_view(page, detail.rows, detail.cols)
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
        "no line. Move the window with the detail's controls."
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


def show(page: Page, causal: bool) -> Detail:
    """Overview, detail and the selected token's row of the view's layer and head; returns the
    detail window shown."""
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
        help="Each block of the overview shows the mean of its computed weights, or the "
        "largest: max pooling keeps a single strong weight visible.",
    )
    overview = cache.overview(page.inputs, layer, head, reduce)
    blocks = f"{overview.grid.shape[0]} × {overview.grid.shape[1]} blocks"
    show_chart(
        charts.attention_heatmap(
            overview.grid,
            overview.row_labels,
            overview.col_labels,
            title=f"Layer {layer}, {who}: {n:,} tokens in {blocks}, {reduce} pooling",
            value_label=f"{reduce} weight",
            column_width=PAGE_PX,
            selection_name="overview",
        ),
        theme="streamlit",
        width="content",
    )
    st.caption(
        f"Overview: the {overview.what}; rows are queries (from), columns keys (to), each "
        f"block about {n / overview.grid.shape[0]:.0f} tokens a side. "
        + empty_note(causal, result.window(layer))
    )
    st.subheader("Detail (exact)")
    _centre_on(view.token, n)
    row_column, col_column = st.columns(2)
    step = DETAIL_TOKENS // 4
    last = max(0, n - DETAIL_TOKENS)
    row_column.number_input("Detail rows from token", 0, last, step=step, key=ROW_KEY)
    col_column.number_input("Detail columns from token", 0, last, step=step, key=COL_KEY)
    detail = cache.detail(
        page.inputs, layer, head, st.session_state[ROW_KEY], st.session_state[COL_KEY]
    )
    selected = view.token - detail.rows.start if view.token in detail.rows else None
    show_chart(
        charts.attention_heatmap(
            detail.matrix,
            [f"{i} {labels[i]}" for i in detail.rows],
            [f"{i} {labels[i]}" for i in detail.cols],
            title=f"Layer {layer}, {who}: tokens {_span(detail.rows)} × {_span(detail.cols)}",
            selected=selected,
            column_width=PAGE_PX,
            selection_name="detail",
        ),
        theme="streamlit",
        width="content",
    )
    st.caption(
        "Exact weights, recomputed for this window. A new selected token centres it; the "
        "controls above move it."
    )
    st.subheader("Selected token")
    row = cache.row(page.inputs, layer, head, view.token)
    st.caption(f"What token {view.token} '{plain(labels[view.token])}' attends to most ({who}).")
    _weights_table(top_weights(row, labels))
    return detail


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


def _centre_on(token: int, n: int) -> None:
    """Centre the detail window on `token` when it is newly selected (or on first use)."""
    state = st.session_state
    if state.get(CENTRED_KEY) != token or ROW_KEY not in state or COL_KEY not in state:
        state[ROW_KEY] = state[COL_KEY] = window_start(token, n)
        state[CENTRED_KEY] = token


def _span(positions: range) -> str:
    return f"{positions.start}–{positions.stop - 1}"
