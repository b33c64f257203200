"""Attention page: one layer's heads (or another method) as heatmap, line view and bars."""

import streamlit as st

import core
from core.display import colour_domain, layer_view
from core.families import CROSS
from core.views import causal_display_mask, prepare_cross_display, prepare_display
from ui import flow, panels
from ui import page as pages
from ui.matrix import show_matrix
from ui.text import plain


def about() -> str:
    methods = "\n".join(
        f"- *{method.label}*: {method.help}" for method in map(core.get_method, core.method_names())
    )
    return f"""
**Rows are queries, columns are keys.** Row *i* shows how the token on the left spreads its
attention over every token of the input: each row sums to 1. The line view draws the same
numbers as lines from the token on the left to the tokens on the right (darker = stronger).

**Methods.**
{methods}

**Models.** Encoder-decoder models (BART, T5) have three stacks: the encoder's self-attention
over the text, the decoder's self-attention over the target and the cross attention from the
target to the source. Causal models (GPT-2) and the decoder only look back: the cells of later
tokens are left empty, since the model never computed them.
"""


def render(page: pages.Page) -> None:
    view, result = page.view, page.result
    stack = panels.stack_selector(page)
    cross = stack == CROSS
    attentions, tokens, key_tokens = result.stack(stack)
    spec = result.stack_spec(stack)
    note = panels.unavailable_note(page, stack)
    panels.controls(page, stack, [t.text for t in tokens])
    if note:
        st.caption(note)
    rows = flow.chosen_rows(view.method, [t.text for t in tokens], view.token)
    scores = flow.scores(page.inputs, view.method, stack, view.layer, rows, len(tokens))
    if scores is None:
        return
    layer = layer_view(scores, view.layer, view.head, spec.label if len(result.stacks) > 1 else "")
    options = {"hide_special": view.hide_special, "merge_words": view.merge_words}
    if cross:
        display = prepare_cross_display(layer.matrix, tokens, key_tokens, **options)
    else:
        display = prepare_display(layer.matrix, tokens, **options)
    # Keys after the query are masked in a causal stack: left empty, not drawn as zeros.
    empty = causal_display_mask(display.groups) if spec.causal else None
    selected = display.unit_of(view.token)

    st.subheader("Matrix")
    sides = ("target", "source") if cross else ("from", "to")
    shown_rows = show_matrix(
        display.matrix,
        display.labels,
        key="heatmap",
        title=f"{layer.what} (rows: {sides[0]}, columns: {sides[1]})",
        selected=selected,
        key_labels=display.key_labels,
        pick_groups=display.groups,
        empty_mask=empty,
        domain=colour_domain(view.colour_scale(), [display.matrix]),
    )
    size = f"{len(display.labels)} × {len(display.column_labels)}" if cross else len(display.labels)
    caption = [f"{plain(page.model.name)} · {layer.what} · {size} tokens."]
    if spec.causal:
        caption.append("Empty cells: later tokens, which a causal model cannot attend to.")
    caption += display.notes
    if selected is None:
        caption.append(f"The selected token '{plain(tokens[view.token].text)}' is hidden.")
    st.caption(" ".join(caption))

    left, right = st.columns([1, 1])
    with left:
        st.subheader("Line view")
        if cross:
            st.caption(
                "The line view joins one token list to itself; for cross attention (target → "
                "source) read the heatmap and the bars."
            )
        else:
            panels.line_view(display, layer, selected, shown_rows, tokens)
    with right:
        st.subheader("Selected token")
        panels.selected_token(display, selected, empty, cross)
    panels.neuron_panel(page, stack)
    st.subheader("Export")
    panels.exports_panel(page, stack, rows, attentions.size)


pages.run("attention", render, title="Attention", about=about())
