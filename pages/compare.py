"""Compare: replace a word and see the attention change, or put two models side by side."""

import numpy as np
import streamlit as st

import core
from core import PRESETS, AtlasError, charts
from core.tokens import word_groups
from pages import _shared as shared
from pages import _views as views

shared.ensure_router()

st.title("Compare")
with st.expander("What am I looking at?"):
    st.markdown(
        "**Replace a word**: the same layer and head before and after the replacement. The "
        "difference heatmap subtracts *before* from *after* on shared words (a replacement that "
        "splits into several pieces counts as one word: keys summed, queries averaged), so red "
        "cells gained attention and blue cells lost it. Include a [MASK] in the text to see how "
        "the predictions move. **Two models**: the same text in two models side by side."
    )


def cached_comparison(
    model_name: str, text: str, word_index: int, replacement: str
) -> core.Comparison:
    """`compare_replacement`, kept in the shared result store (bounded in bytes).

    One comparison holds two attention results (302 MB for a 12 × 12 model at 512 tokens):
    st.cache_data would unpickle a copy of them on every rerun of this page.
    """
    return shared.result_store().get(
        ("comparison", model_name, text, word_index, replacement),
        lambda: core.compare_replacement(
            shared.cached_model(model_name), text, word_index, replacement
        ),
    )


def head_matrix(attentions: np.ndarray, layer: int, head) -> np.ndarray:
    """`[units, units]` of one head, or the mean of a layer's heads."""
    return attentions[layer, head] if isinstance(head, int) else attentions[layer].mean(0)


def layer_head_pickers(layers: int, heads: int, key: str) -> tuple[int, int | str]:
    left, right = st.columns(2)
    layer_default = min(st.session_state.get("layer", 0), layers - 1)
    layer = left.selectbox("Layer", range(layers), index=layer_default, key=f"{key}_layer")
    head = right.selectbox(
        "Head",
        ["mean", *range(heads)],
        key=f"{key}_head",
        format_func=lambda h: "mean of heads" if h == "mean" else str(h),
    )
    return layer, head


model = shared.load_current_model()
if model is None:
    st.stop()
result = shared.current_result(model)
if result is None:
    st.stop()
text = st.session_state["text"]

replace_tab, models_tab = st.tabs(["Replace a word", "Two models"])

with replace_tab:
    groups = [
        g
        for g in word_groups(result.tokens)
        if not result.tokens[g[0]].is_special and result.tokens[g[0]].segment == 0
    ]
    labels = {
        result.tokens[g[0]].word_index: "".join(result.tokens[i].text for i in g) for g in groups
    }
    pick, typed = st.columns(2)
    word_index = pick.selectbox(
        "Word to replace", list(labels), format_func=lambda w: f"{labels[w]} (word {w})"
    )
    # The deployment's character cap holds for the replacement as for the sidebar's text.
    replacement = typed.text_input(
        "Replacement",
        key="replacement",
        placeholder="e.g. dog",
        max_chars=shared.deploy_policy().max_chars,
    )
    if not replacement.strip():
        st.info("Type a replacement word to compare.")
    else:
        try:
            with st.spinner("Running both sentences…"):
                comparison = cached_comparison(model.name, text, word_index, replacement)
        except AtlasError as error:
            # Messages quote the replacement, which may hold Markdown: shown escaped.
            shared.show_error(str(error))
            comparison = None
        if comparison is not None:
            layer, head = layer_head_pickers(result.num_layers, result.num_heads, "replace")
            before, after = st.columns(2)
            with before:
                views.show_matrix(
                    head_matrix(comparison.before.attentions, layer, head),
                    comparison.before.labels,
                    key="before",
                    title="Before",
                )
            with after:
                views.show_matrix(
                    head_matrix(comparison.after.attentions, layer, head),
                    comparison.after.labels,
                    key="after",
                    title=f"After: {comparison.original_word} → {comparison.replacement}",
                )
            # Only the shown head is merged to word level: the whole stack takes seconds at
            # 512 tokens and is built only if the difference is downloaded.
            views.show_matrix(
                comparison.difference_for(layer, head if isinstance(head, int) else None),
                comparison.alignment.labels,
                key="difference",
                title="Difference (after − before), word level",
                value_label="change",
                diverging=True,
            )
            st.caption(
                "Word level: attention to a word is summed over its pieces, attention from a word "
                "is averaged; the replaced word is one unit."
            )
            units = len(comparison.alignment.labels)
            views.export_buttons(
                "Difference",
                csv=lambda: core.attention_csv(comparison.alignment.labels, comparison.difference),
                json=lambda: core.attention_json(
                    comparison.alignment.labels, comparison.difference, method="difference"
                ),
                # Counted from the shapes, so the full difference is not built to count it.
                cells=result.num_layers * result.num_heads * units * units,
            )
            if comparison.before_predictions:
                st.subheader("Predictions before and after")
                for number, (old, new) in enumerate(
                    zip(comparison.before_predictions, comparison.after_predictions, strict=True)
                ):
                    for column, ranked, when in zip(
                        st.columns(2), (old, new), ("before", "after"), strict=True
                    ):
                        with column:
                            shared.show_chart(
                                charts.prediction_bars(
                                    [p.token for p in ranked],
                                    [p.score for p in ranked],
                                    title=f"Mask {number + 1} {when}",
                                ),
                                theme="streamlit",
                            )
            else:
                st.caption("Add a [MASK] to the text to compare predictions too.")

with models_tab:
    # The same choice the sidebar offers: a public deployment's allowlist, without the free-text
    # box, so a visitor is never offered a model that would only be refused.
    policy = shared.deploy_policy()
    offered = list(PRESETS) if policy.offers_any_model else list(policy.allowed_models or ())
    names = [n for n in offered if n != model.name]
    other_choice = st.selectbox(
        "Second model",
        [*names, shared.CUSTOM_CHOICE] if policy.offers_any_model else names,
        format_func=lambda n: n if n == shared.CUSTOM_CHOICE else shared.model_label(n),
        key="second_model",
        index=None,
        placeholder="Choose a model to compare with",
    )
    if not policy.offers_any_model:
        st.caption(
            "This public deployment offers these models only."
            if names
            else "This public deployment offers no other model to compare with."
        )
    other_name = other_choice or ""
    if other_choice == shared.CUSTOM_CHOICE:
        # Public mode refuses local paths, so it does not ask for them (as in the sidebar).
        label = "Hub id" if policy.public else "Hub id or local directory"
        other_name = st.text_input(label, key="second_custom").strip()
    if other_name:
        other = shared.load_current_model(other_name)
        other_result = None
        if other is not None:
            try:
                other_result = shared.cached_attention(other.name, text, st.session_state["pair"])
            except AtlasError as error:
                shared.show_error(str(error))
        if other_result is not None:
            layers = min(result.num_layers, other_result.num_layers)
            heads = min(result.num_heads, other_result.num_heads)
            if (result.num_layers, result.num_heads) != (
                other_result.num_layers,
                other_result.num_heads,
            ):
                st.caption(
                    f"Shapes differ ({result.num_layers}×{result.num_heads} vs "
                    f"{other_result.num_layers}×{other_result.num_heads}): pickers cover the "
                    "layers and heads both have."
                )
            layer, head = layer_head_pickers(layers, heads, "models")
            for column, (name, res) in zip(
                st.columns(2), [(model.name, result), (other.name, other_result)], strict=True
            ):
                with column:
                    views.show_matrix(
                        head_matrix(res.attentions, layer, head),
                        res.labels,
                        key=f"model_{name}",
                        title=name,
                    )
