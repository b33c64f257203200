"""Matrix views that stay fast at the model's full length.

Up to `DETAIL_LIMIT` tokens a matrix is drawn whole. Beyond, the page gets an overview of the
whole matrix averaged over blocks (a few thousand cells; a difference keeps each block's
largest change instead) and a detail window of exact values
around the selected token; the window can be moved with sliders or by clicking the overview.
A click on a cell selects its row's token (`pick_groups`: the input positions of each row).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import streamlit as st

from core import charts
from core.display_matrix import WITHOUT_FIRST_NOTE, without_first_token
from core.pooling import block_edges, block_labels, pool_matrix, pool_signed_max, window
from core.scales import ScaleMode
from ui import session
from ui.layout import PAGE_PX
from ui.state import ViewState
from ui.widgets import show_chart

DETAIL_LIMIT = 80
"""Largest matrix side drawn cell by cell."""
OVERVIEW_BLOCKS = 64
"""The overview of a long input averages it down to at most this many blocks per side."""
WINDOW = 48
"""Default side of the detail window."""

Groups = tuple[tuple[int, ...], ...]


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
    pick_groups: Sequence[Sequence[int]] | None = None,
    empty_mask: np.ndarray | None = None,
    column_width: int = PAGE_PX,
    scale: ScaleMode = "chart",
    shared_max: float | None = None,
    segment_b_start: int | None = None,
    log: bool = False,
    without_first: bool = False,
) -> tuple[int, int] | None:
    """Draw `matrix` `[q, k]`; returns the query window `[start, stop)` when it was cut.

    `empty_mask` bool `[q, k]` marks cells to leave undrawn (a causal model's future keys).
    `column_width` is the px the chart must fit in (`ui.layout`); `scale` and `shared_max` the
    colour scale (`core.scales.shared_max` of every compared matrix for "shared");
    `segment_b_start` the first unit of a pair's sentence B (A/B bands, whole matrices only).
    `log` draws the colours on a log scale (not for `diverging` data: the legend says so).
    `without_first` leaves the first key out and renormalises each row
    (`core.display_matrix.without_first_token`, idempotent up to rounding, so a caller that already
    applied it, e.g. for `shared_max`, may pass the result); a `diverging` matrix (a difference)
    is only labelled: the caller builds it from transformed matrices. The legend says both.
    """
    key_labels = labels if key_labels is None else key_labels
    groups: Groups | None = None
    if pick_groups is not None:
        groups = tuple(tuple(group) for group in pick_groups)
    q, k = matrix.shape
    if without_first and not diverging:
        matrix = without_first_token(matrix)
    options = {
        "log": log,
        "legend_notes": [WITHOUT_FIRST_NOTE] if without_first else [],
        "diverging": diverging,
        "value_label": value_label,
        "column_width": column_width,
        "scale": scale,
        "shared_max": shared_max,
    }
    if max(q, k) <= DETAIL_LIMIT:
        whole = {**options, "segment_b_start": segment_b_start}
        _heatmap(matrix, labels, key_labels, key, title, selected, groups, 0, empty_mask, whole)
        return None

    # A difference keeps each block's largest change: block means cancel a sparse one out.
    overview = (pool_signed_max if diverging else pool_matrix)(matrix, OVERVIEW_BLOCKS)
    pooling = "largest change per block" if diverging else "block means"
    overview_empty = None
    if empty_mask is not None:
        # A block is empty only when all of its cells are: a block straddling the diagonal
        # still averages the keys the model could see.
        overview_empty = pool_matrix(empty_mask.astype(np.float64), OVERVIEW_BLOCKS) == 1
    row_edges = tuple(int(e) for e in block_edges(q, OVERVIEW_BLOCKS))
    col_edges = tuple(int(e) for e in block_edges(k, OVERVIEW_BLOCKS))
    center_key = f"{key}_center"
    show_chart(
        charts.attention_heatmap(
            overview,
            block_labels(labels, OVERVIEW_BLOCKS),
            block_labels(key_labels, OVERVIEW_BLOCKS),
            title=f"{title}: overview of all {q}×{k} ({pooling})",
            empty_mask=overview_empty,
            **options,
        ),
        theme="streamlit",
        width="content",
        on_select=functools.partial(_centre_on_click, key, row_edges, col_edges),
        selection_mode="cell",
        key=f"{key}_overview",
    )
    block = f"a block of about {q / overview.shape[0]:.1f} × {k / overview.shape[1]:.1f} tokens"
    st.caption(
        (
            f"Each overview cell is the largest change (by size, with its sign) in {block}."
            if diverging
            else f"Each overview cell averages {block}."
        )
        + " Click a block to move the detail window there; the detail below shows exact values."
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
    _heatmap(
        matrix[row_start:row_stop, col_start:col_stop],
        [f"{i}·{labels[i]}" for i in range(row_start, row_stop)],
        [f"{i}·{key_labels[i]}" for i in range(col_start, col_stop)],
        key,
        f"{title}: detail, queries {row_start}–{row_stop - 1}, keys {col_start}–{col_stop - 1}",
        detail_selected,
        groups,
        row_start,
        None if empty_mask is None else empty_mask[row_start:row_stop, col_start:col_stop],
        options,
    )
    return row_start, row_stop


def view_options(view: ViewState) -> dict[str, bool]:
    """`show_matrix`'s keyword arguments for the sidebar's heatmap settings in `view`."""
    return {"log": view.log_scale, "without_first": view.without_first}


def _centre_on_click(key: str, row_edges: tuple[int, ...], col_edges: tuple[int, ...]) -> None:
    cells = st.session_state[f"{key}_overview"].selection.get("cell") or []
    if cells and cells[0].get("q") is not None:
        block_q, block_k = int(cells[0]["q"]), int(cells[0]["k"])
        st.session_state[f"{key}_center"] = (
            (row_edges[block_q] + row_edges[block_q + 1]) // 2,
            (col_edges[block_k] + col_edges[block_k + 1]) // 2,
        )


def _select_clicked_row(key: str, groups: Groups, offset: int) -> None:
    """A click on a heatmap cell selects its row's token in every view."""
    cells = st.session_state[key].selection.get("cell") or []
    if cells and cells[0].get("q") is not None:
        row = int(cells[0]["q"]) + offset
        if 0 <= row < len(groups):
            session.update(token=groups[row][0])


def _heatmap(
    matrix: np.ndarray,
    labels: list[str],
    key_labels: list[str],
    key: str,
    title: str,
    selected: int | None,
    groups: Groups | None,
    offset: int,
    empty_mask: np.ndarray | None,
    options: dict,
) -> None:
    selection = {}
    if groups is not None:
        selection = {
            "on_select": functools.partial(_select_clicked_row, key, groups, offset),
            "selection_mode": "cell",
        }
    show_chart(
        charts.attention_heatmap(
            matrix,
            labels,
            key_labels,
            title=title,
            selected=selected,
            empty_mask=empty_mask,
            **options,
        ),
        theme="streamlit",
        width="content",
        key=key,
        **selection,
    )
