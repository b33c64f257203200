"""Compare: replace a word and see the attention change, or put two models side by side."""

import functools
from collections.abc import Callable

import streamlit as st

from core import AtlasError
from ui import cache, compare, exports, session
from ui import page as pages
from ui.explorer import change_in_callback, compare_explorer
from ui.widgets import export_buttons, file_stem, show_error

ABOUT = (
    "**Replace a word**: the same layer and head before and after the replacement, and their "
    "difference, in one explorer: zoom, pan and hover move all three. The difference subtracts "
    "*before* from *after* on shared words (a replacement that splits into several pieces "
    "counts as one word: keys summed, queries averaged), on its own symmetric scale: red cells "
    "gained attention and blue cells lost it. Include a [MASK] in the text to see how the "
    "predictions move. **Two models**: the same text in two models side by side, tokens "
    "matched by character offsets."
)
REPLACE_KEY = "compare_replace"
MODELS_KEY = "compare_models"


def apply_change(key: str) -> bool:
    """The explorer's `on_change`: its head and (Page Up / Page Down) layer become the view's,
    so the Layer and Head pickers and the link follow. Returns whether the view changed."""
    change = change_in_callback(key)
    if change is None:
        return False
    current = session.view()
    updates = {field: change[field] for field in ("head", "layer") if field in change}
    updates = {f: v for f, v in updates.items() if v is not None and getattr(current, f) != v}
    if updates:
        session.update(**updates)
    return bool(updates)


def show_explorer(build: Callable[[], dict], key: str) -> bool:
    """The payload `build` makes, in the compare explorer under `key`, its changes applied to
    the view; whether it was shown. Building reads each result's whole attention: a long
    input's may be over its budget (`AttentionTooLargeError`), shown as a message."""
    try:
        payload = build()
    except AtlasError as error:
        show_error(str(error))
        return False
    compare_explorer(payload, key=key, on_change=functools.partial(apply_change, key))
    if apply_change(key):
        # Defensive, as on the Attention page: a change that reached the run without its
        # callback is applied here and the page drawn again.
        st.rerun()
    return True


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
    build = functools.partial(compare.replacement_payload, comparison, view, layer, head)
    if not show_explorer(build, REPLACE_KEY):
        return
    units = len(comparison.alignment.labels)
    prov = exports.provenance(view, page.inputs, method="difference")
    data = functools.partial(
        exports.difference_data, page.inputs, word, replacement, prov, view.without_first
    )
    export_buttons(
        "Difference",
        csv=functools.partial(data, "csv"),
        json=functools.partial(data, "json"),
        # Counted from the shapes, so the full difference is not built to count it.
        cells=result.num_layers * result.num_heads * units * units,
        stem=f"{exports.stem(prov, kind='difference')}_word{word}-{file_stem(replacement)}",
    )
    compare.predictions(comparison, view.colour_scale())


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
            "heads both have; each model's mean is of all its own heads."
        )
    layer, head = compare.layer_and_head(layers, heads, key_suffix="_models")
    shown = [(page.model.name, result), (other.name, other_result)]
    show_explorer(functools.partial(compare.models_payload, shown, view, layer, head), MODELS_KEY)


def render(page: pages.Page) -> None:
    replace_tab, models_tab = st.tabs(["Replace a word", "Two models"])
    with replace_tab:
        replace_word(page)
    with models_tab:
        two_models(page)


pages.run("compare", render, title="Compare", about=ABOUT)
