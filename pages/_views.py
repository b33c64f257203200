"""Matrix views that stay fast at the model's full length (UI layer only).

Up to `DETAIL_LIMIT` tokens a matrix is drawn whole. Beyond, the page gets an overview of the
whole matrix averaged over blocks (a few thousand cells) and a detail window of exact values
around the selected token; the window can be moved with sliders or by clicking the overview.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import streamlit as st

import core
from core import charts
from core.views import block_edges, block_labels, window
from pages import _shared as shared

DETAIL_LIMIT = 80
"""Largest matrix side drawn cell by cell."""
OVERVIEW_BLOCKS = 64
"""The overview of a long input averages it down to at most this many blocks per side."""
WINDOW = 48
"""Default side of the detail window."""
EXPORT_CELL_LIMIT = 4_000_000
"""Larger exports (hundreds of MB of text) are left to notebooks: one click could exhaust a
shared server's memory."""


def _detail_labels(labels: list[str], start: int, stop: int) -> list[str]:
    # Positions keep duplicates apart and tell where in the long input a row is.
    return [f"{i}·{labels[i]}" for i in range(start, stop)]


def show_matrix(
    matrix: np.ndarray,
    labels: list[str],
    *,
    key: str,
    title: str,
    selected: int | None = None,
    key_labels: list[str] | None = None,
    diverging: bool = False,
    value_label: str = "attention",
    on_pick: Callable[[int], None] | None = None,
    empty_mask: np.ndarray | None = None,
) -> tuple[int, int] | None:
    """Draw `matrix` `[q, k]`; returns the query window `[start, stop)` when it was cut.

    `on_pick(row)` is called with the matrix row of a clicked cell, so the page can select it.
    `empty_mask` bool `[q, k]` marks cells to leave undrawn (a causal model's future keys).
    """
    key_labels = labels if key_labels is None else key_labels
    q, k = matrix.shape
    if max(q, k) <= DETAIL_LIMIT:
        _heatmap(
            matrix,
            labels,
            key_labels,
            key,
            title,
            selected,
            diverging,
            value_label,
            on_pick,
            empty_mask,
        )
        return None

    overview = charts.pool_matrix(matrix, OVERVIEW_BLOCKS)
    overview_empty = None
    if empty_mask is not None:
        # A block is empty only when all of its cells are: a block straddling the diagonal
        # still averages the keys the model could see.
        overview_empty = charts.pool_matrix(empty_mask.astype(np.float64), OVERVIEW_BLOCKS) == 1
    row_edges, col_edges = block_edges(q, OVERVIEW_BLOCKS), block_edges(k, OVERVIEW_BLOCKS)
    center_key = f"{key}_center"

    def centre_on_click() -> None:
        cells = st.session_state[f"{key}_overview"].selection.get("cell") or []
        if cells and cells[0].get("q") is not None:
            block_q, block_k = int(cells[0]["q"]), int(cells[0]["k"])
            st.session_state[center_key] = (
                int((row_edges[block_q] + row_edges[block_q + 1]) // 2),
                int((col_edges[block_k] + col_edges[block_k + 1]) // 2),
            )

    shared.show_chart(
        charts.attention_heatmap(
            overview,
            block_labels(labels, OVERVIEW_BLOCKS),
            block_labels(key_labels, OVERVIEW_BLOCKS),
            title=f"{title}: overview of all {q}×{k} (block means)",
            diverging=diverging,
            value_label=value_label,
            empty_mask=overview_empty,
            width=min(640, 10 * overview.shape[1]),
            height=min(640, 10 * overview.shape[0]),
        ),
        theme="streamlit",
        width="content",
        on_select=centre_on_click,
        selection_mode="cell",
        key=f"{key}_overview",
    )
    st.caption(
        f"Each overview cell averages a block of about {q / overview.shape[0]:.1f} × "
        f"{k / overview.shape[1]:.1f} tokens. Click a block to move the detail window there; "
        "the detail below shows exact values."
    )
    default_center = st.session_state.get(center_key) or (selected or 0, selected or 0)
    row_start, row_stop = window(q, default_center[0], WINDOW)
    col_start, col_stop = window(k, default_center[1], WINDOW)
    pick_rows, pick_cols = st.columns(2)
    row_start, row_stop = pick_rows.slider(
        "Query tokens in detail", 0, q, (row_start, row_stop), key=f"{key}_rows_{row_start}"
    )
    col_start, col_stop = pick_cols.slider(
        "Key tokens in detail", 0, k, (col_start, col_stop), key=f"{key}_cols_{col_start}"
    )
    if row_stop - row_start > DETAIL_LIMIT or col_stop - col_start > DETAIL_LIMIT:
        st.warning(f"The detail window is limited to {DETAIL_LIMIT} tokens per side.")
        row_stop = min(row_stop, row_start + DETAIL_LIMIT)
        col_stop = min(col_stop, col_start + DETAIL_LIMIT)
    row_stop, col_stop = max(row_stop, row_start + 1), max(col_stop, col_start + 1)
    detail_selected = (
        selected - row_start if selected is not None and row_start <= selected < row_stop else None
    )

    def pick_in_window(row: int) -> None:
        if on_pick is not None:
            on_pick(row + row_start)

    _heatmap(
        matrix[row_start:row_stop, col_start:col_stop],
        _detail_labels(labels, row_start, row_stop),
        _detail_labels(key_labels, col_start, col_stop),
        key,
        f"{title}: detail, queries {row_start}–{row_stop - 1}, keys {col_start}–{col_stop - 1}",
        detail_selected,
        diverging,
        value_label,
        pick_in_window if on_pick else None,
        None if empty_mask is None else empty_mask[row_start:row_stop, col_start:col_stop],
    )
    return row_start, row_stop


def _heatmap(
    matrix: np.ndarray,
    labels: list[str],
    key_labels: list[str],
    key: str,
    title: str,
    selected: int | None,
    diverging: bool,
    value_label: str,
    on_pick: Callable[[int], None] | None,
    empty_mask: np.ndarray | None = None,
) -> None:
    def picked() -> None:
        cells = st.session_state[key].selection.get("cell") or []
        if on_pick is not None and cells and cells[0].get("q") is not None:
            on_pick(int(cells[0]["q"]))

    shared.show_chart(
        charts.attention_heatmap(
            matrix,
            labels,
            key_labels,
            title=title,
            selected=selected,
            diverging=diverging,
            value_label=value_label,
            empty_mask=empty_mask,
        ),
        theme="streamlit",
        width="content",
        on_select=picked,
        selection_mode="cell",
        key=key,
    )


CROSS_NO_ROLLOUT = (
    "Rollout and flow are not offered for cross attention: it maps target tokens to source "
    "tokens, so it is not a square matrix that chains through the layers (rollout multiplies "
    "each layer's token-to-token matrix into the next; flow needs paths from one token list "
    "back to the same list), and they are undefined. Raw weights are shown."
)


def stack_selector(result: core.AttentionResult) -> str:
    """Encoder / Decoder / Cross control for encoder-decoder results; returns the stack shown.

    Other models have one stack and get no control (the state is reset to "encoder", so a link
    from an encoder-decoder model does not leave it pointing at a stack that is not there).
    """
    stacks = result.stacks
    if len(stacks) < 2:
        st.session_state["stack"] = core.families.SELF
        return core.families.SELF
    if st.session_state.get("stack") not in stacks:
        st.session_state["stack"] = core.families.SELF
    choice = shared.bound(
        st.segmented_control,
        "Attention stack",
        "stack",
        options=list(stacks),
        format_func=lambda name: result.stack_spec(name).label,
        required=True,
        help="Encoder-decoder models attend three ways: within the source (encoder), within "
        "the target (decoder) and from the target to the source (cross).",
    )
    if choice not in stacks:
        choice = st.session_state["stack"] = core.families.SELF
    st.caption(result.stack_spec(choice).description)
    return choice


def export_buttons(
    name: str, *, csv: Callable[[], str], json: Callable[[], str], cells: int = 0
) -> None:
    """CSV and JSON download buttons; the data is only built when a button is clicked.

    `cells` is the number of values exported; above `EXPORT_CELL_LIMIT` the buttons are
    replaced by a note.
    """
    if cells > EXPORT_CELL_LIMIT:
        st.caption(
            f"{name}: {cells:,} values are too many to download here. Export one layer on the "
            "Attention page, or use `core.run_attention` in a notebook."
        )
        return
    left, right = st.columns(2)
    left.download_button(
        f"{name} as CSV",
        data=csv,
        file_name=f"{name.lower().replace(' ', '_')}.csv",
        mime="text/csv",
        on_click="ignore",
    )
    right.download_button(
        f"{name} as JSON",
        data=json,
        file_name=f"{name.lower().replace(' ', '_')}.json",
        mime="application/json",
        on_click="ignore",
    )
