"""Masked prediction: what the model guesses for each mask, and which tokens the mask reads."""

import json
import warnings

import pandas as pd
import streamlit as st

import core
from core import PRESETS, AtlasError, ModelKind, charts
from core.images import gallery_zip
from core.views import block_labels, pool_keys, thumbnail_size
from pages import _shared as shared
from pages import _views as views

shared.ensure_router()

PROFILE_WIDTH = 400
"""px of the key axis of the mask profile, so its legend stays inside its column."""


st.title("Masked prediction")
with st.expander("What am I looking at?"):
    st.markdown(
        "Write `[MASK]` (or `<mask>`) in the text, or pick a word below to mask it. The bars are "
        "the model's top guesses with their probabilities (softmax over the whole vocabulary). "
        "The heatmap below shows, for every layer and head, how the mask position spreads its "
        "attention over the input: these are the tokens the prediction is built from. The "
        "gallery draws every head for this sentence, like the CS50 *attention* exercise. "
        "Causal models (GPT-2) predict the next token instead, from the text's last position, "
        "and can generate a continuation whose attention to the prompt is drawn."
    )


# Bounded in bytes as well as entries: all st.cache_data shares one 512 MB budget. Predictions
# are a few KB; a gallery ZIP of a 12 × 12 model at 512 tokens is tens of MB.
@st.cache_data(max_entries=32, max_size="16MB", show_spinner=False)
def predict_at(model_name: str, text: str, position: int, top_k: int):
    return core.predict_masked(shared.cached_model(model_name), text, top_k, position=position)


@st.cache_data(max_entries=4, max_size="128MB", show_spinner=False)
def gallery(model_name: str, text: str, pair: str) -> bytes:
    result = shared.cached_attention(model_name, text, pair)
    return gallery_zip(result.attentions, result.labels, model_name=model_name)


MAX_GENERATED = 20
"""Most tokens the continuation panel generates: enough to see a pattern, quick on a CPU."""


# ≤ 20 generated tokens: the result is a few MB even for a long prompt on a 12 × 12 model.
@st.cache_data(max_entries=8, max_size="64MB", ttl="1h", show_spinner=False)
def generated(model_name: str, text: str, count: int) -> core.AttentionResult:
    with warnings.catch_warnings():
        # A truncated prompt is already reported at the top of the page.
        warnings.simplefilter("ignore", core.TruncationWarning)
        return core.generate_with_attention(shared.cached_model(model_name), text, count)


def show_generation() -> None:
    """Greedy continuation of the text; each generated token's attention over the prompt."""
    st.subheader("Generate a continuation")
    if not st.toggle("Generate tokens and show what each attends to in the prompt", key="gen_on"):
        return
    count_column, layer_column, head_column = st.columns(3)
    count = count_column.slider("Tokens to generate", 1, MAX_GENERATED, 8, key="gen_count")
    layer = layer_column.selectbox("Layer", range(result.num_layers), key="gen_layer")
    head = head_column.selectbox(
        "Head",
        ["mean", *range(result.num_heads)],
        format_func=lambda h: "mean of heads" if h == "mean" else str(h),
        key="gen_head",
    )
    try:
        with st.spinner(f"Generating {count} tokens…"):
            out = generated(model.name, text, count)
    except AtlasError as error:
        shared.show_error(str(error))
        return
    start = out.generated_from or len(out.tokens)
    new_tokens = out.tokens[start:]
    if not new_tokens:
        st.info("The model generated nothing after this text.")
        return
    continuation = model.tokenizer.decode([t.token_id for t in new_tokens])
    st.markdown(f"**Continuation:** {shared.plain(continuation)}")
    weights = out.attentions[layer]  # [heads, n, n]
    weights = weights.mean(0) if head == "mean" else weights[head]
    which = "mean of heads" if head == "mean" else f"head {head}"
    views.show_matrix(
        weights[start:, :start],  # [generated, prompt]
        [f"{i}·{t.text}" for i, t in enumerate(new_tokens, start=1)],
        key_labels=[t.text for t in out.tokens[:start]],
        key="generation",
        title=f"Generated tokens → prompt, layer {layer}, {which}",
    )
    st.caption(
        "Row i: what the i-th generated token attends to in the prompt (the attention it used "
        "to predict the token after it). The rest of each row goes to the tokens generated "
        "before it." + (" The continuation is generated from the text only." if pair else "")
    )


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
# Causal LMs (GPT-2) predict the next token instead: shown below in place of the masks.
causal = model.kind is ModelKind.CAUSAL_LM
if not can_predict and not causal:
    # Only presets this deployment allows: a button for another would just load a refusal.
    policy = shared.deploy_policy()
    mlm = [
        name
        for name, preset in PRESETS.items()
        if preset.kind is ModelKind.MASKED_LM
        and (policy.offers_any_model or name in (policy.allowed_models or ()))
    ]
    # The name may come from a link or the model box: escaped, so Markdown in it shows as text.
    missing = f"{shared.plain(model.name)} has no masked-word head ({model.kind.value} model), "
    if mlm:
        st.warning(
            missing + "so it cannot predict masked words. Switch to a masked-LM model (these "
            "need a download the first time):"
        )
        for column, name in zip(st.columns(len(mlm)), mlm, strict=True):
            column.button(
                shared.model_label(name), on_click=switch_model, args=(name,), key=f"use_{name}"
            )
    else:
        st.warning(
            missing + "so it cannot predict masked words, and this deployment offers no "
            "masked-LM model. The attention of a word you pick is still shown below."
        )

top_k = st.slider("Next-token predictions" if causal else "Predictions per mask", 1, 10, 5)
mask_positions = result.mask_positions
if causal:
    # The next token is predicted from the last position: its bars and its attention take the
    # place of a mask's (same pass as the attention, so the two agree).
    positions = [len(tokens) - 1]
    predictions = [result.next_token] if result.next_token else []
elif mask_positions:
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
            shared.show_error(str(error))

if pair and predictions and not causal:
    st.caption("Predictions use the first sentence only.")
for number, position in enumerate(positions):
    if causal:
        st.subheader(f"Next token after position {position}: {shared.plain(tokens[position].text)}")
    else:
        st.subheader(f"Mask {number + 1}: position {position}")
    left, right = st.columns([1, 2])
    with left:
        if predictions:
            ranked = predictions[number][:top_k]
            shared.show_chart(
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
        shared.show_chart(
            charts.layer_head_profile(
                profile,
                profile_labels,
                title=f"Attention of position {position} in every layer and head",
                # The column is two thirds of the page: room for the head labels and legend.
                width=min(PROFILE_WIDTH, 22 * profile.shape[-1]),
            ),
            theme="streamlit",
            width="content",
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

if causal:
    show_generation()

st.subheader("Gallery: every head for this sentence")
n = len(tokens)
size = thumbnail_size(result.num_layers, result.num_heads, n, budget=250_000, largest=40)
shared.show_chart(
    charts.head_grid(
        # A causal model's later tokens stay empty, as on the other pages.
        shared.cached_thumbnails(
            model.name, text, pair, shared.current_target(model), core.families.SELF, size
        ),
        max_width=640,
    ),
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
