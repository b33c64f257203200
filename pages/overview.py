"""Model overview: every layer × head as a thumbnail, and a sortable table of head statistics."""

import functools

import numpy as np
import streamlit as st

from core.display_matrix import pad_square
from core.families import CROSS
from core.head_stats import STAT_DESCRIPTIONS
from core.long_views import max_whole_tokens, whole_fits
from core.pooling import thumbnail_size
from ui import cache, exports, panels
from ui import head_grid as head_grid_ui
from ui import page as pages
from ui.layout import table_height
from ui.state import HEAD_MEASURES
from ui.widgets import bound, export_buttons

THUMBNAIL_PIXELS = 250_000
"""The thumbnails are one PNG image: 144 heads of 40 × 40 cells stay under 0.5 MB."""
THUMBNAIL_CELLS = 40
"""Most cells a thumbnail's side has; the browser scales them up to the width it has."""
ABOUT = (
    "Each small square is one attention head: rows are queries, columns are keys, as on the "
    "Attention page. Heads with a diagonal stripe just below the diagonal look at the "
    "previous token; a bright first column means attention parked on the first token (an "
    "attention sink). Click a head, or move with the arrow keys and press Enter (or pick it "
    "below), to open it on the Attention page. **Bars under the heads** draw one measure per "
    "head: the first-token share (a sink head passes ε = 0.3, marked on the legend), the local "
    "share, entropy or a head statistic. The table measures the patterns per head; click a "
    "column header to sort."
)


def render(page: pages.Page) -> None:
    view = page.view
    stack = panels.stack_selector(page)
    cross = stack == CROSS
    queries, keys = page.result.stack_tokens(stack)
    # The shape only: a long input's whole array is never built here.
    layers, heads = page.result.pieces(stack).shape[:2]
    n = max(len(queries), len(keys))
    whole = whole_fits(page.result, stack)
    size = thumbnail_size(layers, heads, n, budget=THUMBNAIL_PIXELS, largest=THUMBNAIL_CELLS)
    thumbnails = cache.thumbnails(page.inputs, stack, size, view.hide_special, view.merge_words)
    if cross:
        # Target rows × source columns; the grid's thumbnails are square, the rest stays empty.
        thumbnails = pad_square(thumbnails)
        st.caption(
            f"Each thumbnail: {len(queries)} target tokens (rows) × {len(keys)} source tokens "
            "(columns); the grey rest of the square is padding."
        )
    if not whole:
        st.caption(
            f"{n:,} tokens, read in pieces: each thumbnail is the exact mean of the weights the "
            f"model computes in each of {size}×{size} blocks, recomputed block by block. Hiding "
            "special tokens and merging word pieces apply up to "
            f"{max_whole_tokens(page.result):,} tokens."
        )
    elif n > size:
        st.caption(f"{n} tokens: each thumbnail is averaged down to {size}×{size} blocks.")
    selected = (view.layer, view.head) if isinstance(view.head, int) else None
    own_max_column, measure_column = st.columns(2, vertical_alignment="bottom")
    with own_max_column:
        own_max = bound(
            st.toggle,
            "Own scale per head",
            "own_max",
            help="Off: every thumbnail on the colour scale chosen in the sidebar, so heads "
            "compare; on: each head's pattern at full contrast, whatever its size.",
        )
    with measure_column:
        measure = bound(
            st.selectbox,
            "Bars under the heads",
            "head_measure",
            options=("", *HEAD_MEASURES),
            format_func=head_grid_ui.measure_label,
            disabled=cross,
            help="Draw one measure per head as a bar under its thumbnail (length and colour): "
            "the first-token share finds attention sinks, the local share heads that read "
            "only recent tokens, low entropy focused heads.",
        )
    scale = view.colour_scale()
    top = None if scale != "fixed" else 1.0  # one scale for the grid unless "fixed" 0–1
    measure_options = head_grid_ui.measure_options(page, stack, "" if cross else measure)
    opened = head_grid_ui.head_grid(
        thumbnails,
        vmax=top,
        per_head=own_max,
        scale_title="attention (0–1)" if top else "attention (0–grid max)",
        selected=selected,
        **measure_options,
    )
    if opened is not None:
        pages.open_head(*opened)
    # The button's column is the widest: at 1024 px a third of the page cut its label.
    pick_layer, pick_head, go = st.columns([1, 1, 1.4], vertical_alignment="bottom")
    with pick_layer:
        layer = bound(st.selectbox, "Layer", "layer", options=list(range(layers)))
    with pick_head:
        head = bound(
            st.selectbox,
            "Head",
            "head",
            value=view.head if isinstance(view.head, int) else 0,
            options=list(range(heads)),
        )
    if go.button("Open on Attention", help="Open this layer and head on the Attention page"):
        pages.open_head(layer, head)

    prov = exports.provenance(view, page.inputs, stack=stack)
    if cross:
        st.info(
            "The head statistics describe self-attention (distance, previous and next token, "
            "itself); cross attention relates two different texts. Choose Encoder or Decoder."
        )
    else:
        stats = cache.head_stats(page.inputs, stack)
        table = st.dataframe(
            stats,
            on_select="rerun",
            selection_mode="single-row",
            key="head_table",
            hide_index=True,
            column_config={
                name: st.column_config.NumberColumn(
                    name.replace("_", " "), help=text, format="%.3f"
                )
                for name, text in STAT_DESCRIPTIONS.items()
            },
            height=table_height(len(stats), most=520),
        )
        rows = table.selection.rows if table is not None else []
        if rows:
            picked_row = stats.iloc[rows[0]]
            pages.open_head(int(picked_row["layer"]), int(picked_row["head"]))
        st.caption(
            "Averaged over the query rows of the words (special-token rows left out). "
            "Sort by 'to previous' to find previous-token heads; click a row to open its head."
        )
        export_buttons(
            "Head statistics",
            csv=functools.partial(exports.head_stats_data, page.inputs, stack, prov, "csv"),
            json=functools.partial(exports.head_stats_data, page.inputs, stack, prov, "json"),
            stem=exports.stem(prov, kind="head-statistics"),
        )
    if not whole:
        st.caption(
            f"Exports of every layer and head need the whole attention array (≤ "
            f"{max_whole_tokens(page.result):,} tokens for this model); this text has {n:,}."
        )
        return
    export_buttons(
        "All heads",
        csv=functools.partial(exports.stack_data, page.inputs, stack, prov, "csv"),
        json=functools.partial(exports.stack_data, page.inputs, stack, prov, "json"),
        cells=int(np.prod(page.result.pieces(stack).shape)),
        stem=exports.stem(prov),
    )


pages.run("overview", render, title="Model overview", about=ABOUT)
