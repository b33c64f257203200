"""The Attention page's raw self-attention of a long input, read in pieces.

Beyond the explorer's whole length (`ui.explorer.MAX_TOKENS`), or when the whole `[layers,
heads, n, n]` array exceeds the result's budget, the page shows one head (or the mean of heads)
in the explorer as a pooled overview of the whole matrix with exact tiles the browser asks for
as it zooms and pans, and the selected token's top weights (`core.long_views`), each kept in
the result store. Nothing here builds the whole array.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

import core
from core.families import SELF
from core.long_views import (
    DETAIL_TOKENS,
    OVERVIEW_BLOCKS,
    REDUCES,
    max_whole_tokens,
    top_weights,
    whole_fits,
)
from ui import cache, panels, session
from ui.explorer import build_long_payload, change_in_callback, explorer
from ui.explorer.component import requested_tiles
from ui.explorer.payload import add_tiles, checked_tiles
from ui.page import Page
from ui.text import plain

POOLING_KEY = "long_pooling"
EXPLORER_KEY = "long_explorer"
CHANGED_KEY = "long_explorer_changed"
"""Session: the explorer changed the view; the fragment reruns the page."""
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
    """The view's layer and head in the explorer (pooled overview, exact tiles asked for as
    you zoom) and the selected token's row."""
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
