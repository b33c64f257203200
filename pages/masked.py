"""Masked prediction: what the model guesses for each mask, and which tokens the mask reads."""

import json

import pandas as pd
import streamlit as st

import core
from core import PRESETS, AtlasError, ModelKind, charts
from core.images import gallery_zip
from core.views import block_labels, pool_keys, thumbnail_size
from pages import _shared as shared
from pages import _views as views

shared.ensure_router()


st.title("Masked prediction")
with st.expander("What am I looking at?"):
    st.markdown(
        "Write `[MASK]` (or `<mask>`) in the text, or pick a word below to mask it. The bars are "
        "the model's top guesses with their probabilities (softmax over the whole vocabulary). "
        "The heatmap below shows, for every layer and head, how the mask position spreads its "
        "attention over the input: these are the tokens the prediction is built from. The "
        "gallery draws every head for this sentence, like the CS50 *attention* exercise."
    )


@st.cache_data(max_entries=32, show_spinner=False)
def predict_at(model_name: str, text: str, position: int, top_k: int):
    return core.predict_masked(shared.cached_model(model_name), text, top_k, position=position)


@st.cache_data(max_entries=4, show_spinner=False)
def gallery(model_name: str, text: str, pair: str) -> bytes:
    result = shared.cached_attention(model_name, text, pair)
    return gallery_zip(result.attentions, result.labels, model_name=model_name)


def switch_model(name: str) -> None:
    st.session_state["model"] = name
    st.session_state["w_model_choice"] = name


model = shared.load_current_model()
if model is None:
    st.stop()
result = shared.current_result(model)
if result is None:
    st.stop()
tokens = result.tokens
text, pair = st.session_state["text"], st.session_state["pair"]

can_predict = model.kind is ModelKind.MASKED_LM
if not can_predict:
    st.warning(
        f"{model.name} has no masked-word head ({model.kind.value} model), so it cannot predict "
        "masked words. Switch to a masked-LM model (these need a download the first time):"
    )
    mlm = [name for name, preset in PRESETS.items() if preset.kind is ModelKind.MASKED_LM]
    for column, name in zip(st.columns(len(mlm)), mlm, strict=True):
        column.button(
            shared.model_label(name), on_click=switch_model, args=(name,), key=f"use_{name}"
        )

top_k = st.slider("Predictions per mask", 1, 10, 5)
mask_positions = result.mask_positions
if mask_positions:
    positions = mask_positions
    predictions = result.predictions
else:
    st.info("The text has no [MASK]. Pick a word to mask it:")
    words = [t for t in tokens if not t.is_special]
    chosen = st.pills(
        "Word to mask",
        options=[t.index for t in words],
        format_func=lambda i: f"{tokens[i].text} ({i})",
        key="mask_word",
    )
    positions = [chosen] if chosen is not None else []
    predictions = []
    if chosen is not None and can_predict:
        try:
            predictions = predict_at(model.name, text, chosen, 10)
        except AtlasError as error:
            st.error(str(error))

if pair and predictions:
    st.caption("Predictions use the first sentence only.")
for number, position in enumerate(positions):
    st.subheader(f"Mask {number + 1}: position {position}")
    left, right = st.columns([1, 2])
    with left:
        if predictions:
            ranked = predictions[number][:top_k]
            st.altair_chart(
                charts.prediction_bars([p.token for p in ranked], [p.score for p in ranked]),
                theme="streamlit",
            )
        elif can_predict:
            st.caption("No prediction for this position.")
    with right:
        profile, profile_labels = result.attentions[:, :, position, :], result.labels
        if len(profile_labels) > views.DETAIL_LIMIT:
            # One cell per head and key would be 70,000 cells at 512 tokens: average the keys
            # into blocks; the exact row is in the exports and on the Attention page.
            profile = pool_keys(profile, views.OVERVIEW_BLOCKS)
            profile_labels = block_labels(profile_labels, views.OVERVIEW_BLOCKS)
        st.altair_chart(
            charts.layer_head_profile(
                profile,
                profile_labels,
                title=f"Attention of position {position} in every layer and head",
            ),
            theme="streamlit",
        )
        if len(result.labels) > views.DETAIL_LIMIT:
            st.caption(
                f"Keys averaged into {profile.shape[-1]} blocks of about "
                f"{len(result.labels) / profile.shape[-1]:.0f} tokens."
            )

if predictions:
    rows = [
        {"mask": m + 1, "position": pos, "rank": r + 1, "token": p.token, "score": p.score}
        for m, (pos, ranked) in enumerate(zip(positions, predictions, strict=False))
        for r, p in enumerate(ranked)
    ]
    views.export_buttons(
        "Predictions",
        csv=lambda: pd.DataFrame(rows).to_csv(index=False),
        json=lambda: json.dumps(rows),
    )

st.subheader("Gallery: every head for this sentence")
n = len(tokens)
size = thumbnail_size(result.num_layers, result.num_heads, n, budget=250_000, largest=40)
st.altair_chart(
    charts.head_grid(charts.pool_matrix(result.attentions, size), max_width=640),
    theme="streamlit",
    width="content",
)
shrunk = f", averaged down to {size}×{size}" if n > size else ""
st.caption(
    f"{result.num_layers} layers × {result.num_heads} heads{shrunk}. The ZIP holds one "
    "full-resolution PNG per head (Attention_Layer1_Head1.png, …)."
)
st.download_button(
    "Download all heads as PNG images (ZIP)",
    data=lambda: gallery(model.name, text, pair),
    file_name="attention_gallery.zip",
    mime="application/zip",
    on_click="ignore",
)
