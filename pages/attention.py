"""Attention page: one layer's heads (or another method) as heatmap, line view and bars."""

import dataclasses

import numpy as np
import streamlit as st

import core
from core.display_matrix import causal_display_mask, prepare_cross_display, prepare_display
from core.families import CROSS
from core.layer_views import layer_view
from core.selection import segment_b_start, shown_selection
from core.tokens import unit_labels, word_groups
from ui import costly, long_view, panels, session
from ui import page as pages
from ui.explorer import MAX_TOKENS
from ui.matrix import show_matrix, view_options
from ui.text import plain


def about() -> str:
    methods = "\n".join(
        f"- *{method.label}*: {method.help}" for method in map(core.get_method, core.method_names())
    )
    return f"""
**Rows are queries, columns are keys.** Row *i* shows how the token on the left spreads its
attention over every token of the input: each row sums to 1. The line view draws the same
numbers as lines from the token on the left to the tokens on the right (darker = stronger),
opening on the selected token's lines.

**The explorer** holds every head of the layer: click the matrix, then the arrow keys move the
selected token, `[` and `]` the head, Page Up and Page Down the layer (`?` lists the keys).
Hover a cell for its value. Colours are shared across the model's heads and layers by default,
so a flat head looks faint; the legend offers this matrix's own maximum, a fixed 0–1, a log
scale and the weights without the first token (each row renormalised over the rest).

**Methods.**
{methods}

**Models.** Encoder-decoder models (BART, T5) have three stacks: the encoder's self-attention
over the text, the decoder's self-attention over the target and the cross attention from the
target to the source. Causal models (GPT-2) and the decoder only look back: the cells of later
tokens are left empty (hatched), since the model never computed them.
"""


def render(page: pages.Page) -> None:
    view, result = page.view, page.result
    stack = panels.stack_selector(page)
    cross = stack == CROSS
    tokens, key_tokens = result.stack_tokens(stack)
    spec = result.stack_spec(stack)
    # The selection never rests on a token the display options hide.
    shown_token = shown_selection(
        tokens, view.token, hide_special=view.hide_special, merge_words=view.merge_words
    )
    if shown_token != view.token:
        view = session.update(token=shown_token)
        page = pages.Page(view=view, model=page.model, inputs=page.inputs, result=result)
    note = panels.unavailable_note(page, stack)
    # The token box lists the units drawn: merged words when word pieces are merged.
    units = word_groups(tokens) if view.merge_words else [[t.index] for t in tokens]
    panels.controls(page, stack, units, unit_labels(tokens, units, "clean"))
    if note:
        st.caption(note)
    if long_view.in_pieces(page, stack, MAX_TOKENS):
        long_view.page_body(page, spec.causal, MAX_TOKENS)
        return
    rows = costly.chosen_rows(view.method, [t.text for t in tokens], view.token)
    scores = costly.scores(page.inputs, view.method, stack, view.layer, rows, len(tokens))
    if scores is None:
        return
    layer = layer_view(scores, view.layer, view.head, spec.label if len(result.stacks) > 1 else "")
    options = {"hide_special": view.hide_special, "merge_words": view.merge_words}
    if cross:
        display = prepare_cross_display(layer.matrix, tokens, key_tokens, **options)
    else:
        display = prepare_display(layer.matrix, tokens, **options)
    # Word pieces carry a marker on the axes; a cross view's keys come from the source.
    labels = unit_labels(tokens, display.groups, "marked")
    key_labels = unit_labels(key_tokens, display.key_groups, "marked") if cross else None
    # Keys after the query are masked in a causal stack: left empty, not drawn as zeros.
    empty = causal_display_mask(display.groups) if spec.causal else None
    selected = display.unit_of(view.token)

    size = f"{len(display.labels)} × {len(display.column_labels)}" if cross else len(display.labels)
    caption = [f"{plain(page.model.name)} · {layer.what} · {size} tokens."]
    if spec.causal:
        caption.append("Empty cells: later tokens, which a causal model cannot attend to.")
    caption += display.notes
    if selected is None:
        caption.append(f"The selected token '{plain(tokens[view.token].text)}' is hidden.")
    st.subheader("Matrix")
    send_heads = None
    if max(display.matrix.shape) <= MAX_TOKENS:
        explorer_labels = (labels, key_labels)
        send_heads = panels.matrix_explorer(
            page, scores, stack, selected, explorer_labels, empty, display
        )
        st.caption(" ".join(caption))
        st.subheader("Line view")
        panels.line_view(page, scores, display, selected, stack)
    else:
        # Longer inputs: block-averaged overview and exact detail (to become the explorer's
        # pooled overview and exact tiles, requested as you move).
        seg_b = None if cross else segment_b_start(tokens, display.groups)
        sides = ("target", "source") if cross else ("from", "to")
        title = f"{layer.what} (rows: {sides[0]}, columns: {sides[1]})"
        long_input(display, (labels, key_labels), empty, selected, view, seg_b, title)
        st.caption(" ".join(caption))
        left, right = st.columns([1, 1])
        with left:
            st.subheader("Line view")
            panels.line_view(page, scores, display, selected, stack)
        with right:
            st.subheader("Selected token")
            bars = dataclasses.replace(display, labels=labels, key_labels=key_labels)
            panels.selected_token(bars, selected, empty, cross, view.colour_scale())
    panels.neuron_panel(page, stack)
    st.subheader("Export")
    panels.exports_panel(page, stack, rows, int(np.prod(result.pieces(stack).shape)))
    if send_heads is not None:
        # The explorer's other matrices after everything else the run draws: a layer change
        # paints the shown one first.
        send_heads()


def long_input(display, labels, empty, selected, view, seg_b, title) -> None:
    """The matrix of an input longer than the explorer takes (`ui.explorer.MAX_TOKENS`)."""
    scale = view.colour_scale()
    show_matrix(
        display.matrix,
        labels[0],
        key="heatmap",
        title=title,
        selected=selected,
        key_labels=labels[1],
        pick_groups=display.groups,
        empty_mask=empty,
        scale="chart" if scale == "shared" else scale,
        segment_b_start=seg_b,
        **view_options(view),
    )


pages.run("attention", render, title="Attention", about=about())
