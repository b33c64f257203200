"""Compare: replace a word and see the attention change, or put two models side by side."""

import functools

import streamlit as st

from core import AtlasError, AttentionResult
from core.display_matrix import blank_causal, without_first_token
from core.layer_views import head_matrix
from core.scales import shared_max
from core.selection import segment_b_start
from core.tokens import token_labels
from ui import cache, compare, exports
from ui import page as pages
from ui.matrix import show_matrix, view_options
from ui.widgets import export_buttons, file_stem, show_error

ABOUT = (
    "**Replace a word**: the same layer and head before and after the replacement. The "
    "difference heatmap subtracts *before* from *after* on shared words (a replacement that "
    "splits into several pieces counts as one word: keys summed, queries averaged), so orange "
    "cells gained attention and blue cells lost it. Include a [MASK] in the text to see how "
    "the predictions move. **Two models**: the same text in two models side by side."
)


def marked(result: AttentionResult) -> dict:
    """`show_matrix`'s axis labels (word pieces marked) and where a pair's sentence B starts."""
    groups = [[t.index] for t in result.tokens]
    return {
        "labels": token_labels(result.tokens, "marked"),
        "segment_b_start": segment_b_start(result.tokens, groups),
    }


def replace_word(page: pages.Page) -> None:
    word, replacement = compare.word_and_replacement(page)
    if word is None or not replacement.strip():
        st.info("Type a replacement word to compare.")
        return
    try:
        with st.spinner("Running both sentences…"):
            comparison = cache.comparison(page.inputs, word, replacement)
    except AtlasError as error:
        # Messages quote the replacement, which may hold Markdown: shown escaped.
        show_error(str(error))
        return
    result, view = page.result, page.view
    layer, head = compare.layer_and_head(result.num_layers, result.num_heads)
    before = head_matrix(comparison.before.attentions, layer, head)
    after = head_matrix(comparison.after.attentions, layer, head)
    if view.without_first:
        # Transformed here so the shared scale spans what is drawn (show_matrix's is idempotent).
        before, after = without_first_token(before), without_first_token(after)
    # Stacked, not side by side: the server cannot know the window's width, and two heatmaps
    # in columns are clipped below about 1200 px.
    scale = view.colour_scale()
    heat = view_options(view)
    shared = {"scale": scale, "shared_max": shared_max([before, after]), **heat}
    show_matrix(before, **marked(comparison.before), key="before", title="Before", **shared)
    title = f"After: {comparison.original_word} → {comparison.replacement}"
    show_matrix(after, **marked(comparison.after), key="after", title=title, **shared)
    difference = comparison.difference_for(
        layer, head if isinstance(head, int) else None, without_first=view.without_first
    )
    # Only the shown head is merged to word level: the whole stack takes seconds at 512 tokens
    # and is built only if the difference is downloaded.
    show_matrix(
        difference,
        comparison.alignment.labels,
        key="difference",
        title="Difference (after − before), word level",
        value_label="change",
        diverging=True,
        # A difference is signed: fixed 0–1 would hide it, so "fixed" draws it on ±1.
        scale=scale,
        shared_max=shared_max([difference], absolute=True),
        # Signed: the legend says the log scale does not apply; the difference is already of
        # the matrices without the first token.
        **heat,
    )
    st.caption(
        "Word level: attention to a word is summed over its pieces, attention from a word is "
        "averaged; the replaced word is one unit."
    )
    units = len(comparison.alignment.labels)
    prov = exports.provenance(view, page.inputs, method="difference")
    data = functools.partial(exports.difference_data, page.inputs, word, replacement, prov)
    export_buttons(
        "Difference",
        csv=functools.partial(data, "csv"),
        json=functools.partial(data, "json"),
        # Counted from the shapes, so the full difference is not built to count it.
        cells=result.num_layers * result.num_heads * units * units,
        stem=f"{exports.stem(prov, kind='difference')}_word{word}-{file_stem(replacement)}",
    )
    compare.predictions(comparison, scale)


def two_models(page: pages.Page) -> None:
    name = compare.second_model(page)
    other = pages.load_model(name) if name else None
    if other is None:
        return
    try:
        other_result = cache.attention(cache.inputs_of(page.view, other))
    except AtlasError as error:
        show_error(str(error))
        return
    result, view = page.result, page.view
    layers = min(result.num_layers, other_result.num_layers)
    heads = min(result.num_heads, other_result.num_heads)
    if (result.num_layers, result.num_heads) != (other_result.num_layers, other_result.num_heads):
        st.caption(
            f"Shapes differ ({result.num_layers}×{result.num_heads} vs "
            f"{other_result.num_layers}×{other_result.num_heads}): pickers cover the layers and "
            "heads both have."
        )
    layer, head = compare.layer_and_head(layers, heads, key_suffix="_models")
    shown = [(page.model.name, result), (other.name, other_result)]
    # A causal model never computes its later keys: empty cells (NaN), as on the Attention
    # page, not zeros that read as measured "no attention".
    matrices = [
        blank_causal(head_matrix(res.attentions, layer, head))
        if res.is_causal()
        else head_matrix(res.attentions, layer, head)
        for _, res in shown
    ]
    if view.without_first:
        matrices = [without_first_token(matrix) for matrix in matrices]
    heat = view_options(view)
    shared = {"scale": view.colour_scale(), "shared_max": shared_max(matrices), **heat}
    # Stacked for the same reason as before/after: side by side they clip below ~1200 px.
    for (label, res), matrix in zip(shown, matrices, strict=True):
        show_matrix(matrix, **marked(res), key=f"model_{label}", title=label, **shared)


def render(page: pages.Page) -> None:
    replace_tab, models_tab = st.tabs(["Replace a word", "Two models"])
    with replace_tab:
        replace_word(page)
    with models_tab:
        two_models(page)


pages.run("compare", render, title="Compare", about=ABOUT)
