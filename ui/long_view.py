"""The Attention page's raw self-attention of a long input, read in pieces.

Beyond the explorer's length (`ui.explorer.MAX_TOKENS`), or when the whole `[layers, heads,
n, n]` array exceeds the result's budget, the page shows one head (or the mean of heads) as a
pooled overview of the whole matrix, an exact detail window and the selected token's top
weights (`core.long_views`), each kept in the result store. Nothing here builds the whole array.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

import core
from core import charts
from core.families import SELF
from core.long_views import (
    DETAIL_TOKENS,
    REDUCES,
    max_whole_tokens,
    top_weights,
    whole_fits,
    window_start,
)
from ui import cache, panels
from ui.layout import PAGE_PX
from ui.page import Page
from ui.text import plain
from ui.widgets import show_chart

POOLING_KEY = "long_pooling"
ROW_KEY, COL_KEY = "long_row", "long_col"
CENTRED_KEY = "long_centred_on"
"""Session: the token the detail window was last centred on; a new selection moves it."""
POOLING_LABELS = {"mean": "Mean", "max": "Max"}
ROW_PX = 35
"""Height of one row of Streamlit's data frame."""


def in_pieces(page: Page, stack: str, explorer_tokens: int) -> bool:
    """Whether `stack` is read in pieces: the self stack whose whole array exceeds the budget,
    or its raw weights of more tokens than the explorer (`explorer_tokens`) takes."""
    if stack != SELF:
        return False
    if not whole_fits(page.result):
        return True
    return len(page.result.tokens) > explorer_tokens and page.view.method == "raw"


def page_body(page: Page, causal: bool, explorer_tokens: int) -> None:
    """The page below its controls when `in_pieces`: raw weights, and what else needs more."""
    n, most = len(page.result.tokens), max_whole_tokens(page.result)
    whole = (
        f"needs the whole attention array (≤ {most:,} tokens for this model); this text has {n:,}"
    )
    if page.view.method != "raw":
        label = core.get_method(page.view.method).label
        st.info(f"{label} {whole}. Raw attention reads any length.")
        return
    st.subheader("Matrix")
    show(page, causal)
    if n > explorer_tokens:
        st.caption(f"The line view draws at most {explorer_tokens} tokens; this text has {n:,}.")
    else:
        st.caption(f"The line view {whole}.")
    panels.neuron_panel(page, SELF)
    if n > most:
        st.caption(f"Exports of every layer and head: this {whole}.")
    else:
        st.subheader("Export")
        panels.exports_panel(page, SELF, None, int(np.prod(page.result.pieces(SELF).shape)))


def show(page: Page, causal: bool) -> None:
    """Overview, detail and the selected token's row of the view's layer and head."""
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
    table = top_weights(row, labels)
    st.dataframe(
        table,
        hide_index=True,
        height=ROW_PX * (len(table) + 1) + 3,  # every listed key, without a scroll box
        column_config={
            "position": st.column_config.NumberColumn("Position"),
            "token": st.column_config.TextColumn("Token"),
            "weight": st.column_config.ProgressColumn(
                "Weight", format="%.4f", min_value=0.0, max_value=1.0
            ),
        },
    )


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
