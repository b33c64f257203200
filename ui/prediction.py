"""Panels of the masked-prediction page: which positions, the bars, the profile, generation,
the gallery. Layout only; numbers come from `core.masking` and the cache."""

from __future__ import annotations

import functools

import streamlit as st

import core
from core import AtlasError, ModelKind, charts
from core.images import gallery_file_name
from core.layer_views import generated_rows
from core.masking import mask_profile, maskable_positions
from core.pooling import thumbnail_size
from core.scales import ScaleMode
from core.tokens import token_labels
from ui import cache, exports, session
from ui.deploy import deploy_policy, model_label, offered_models
from ui.layout import PAGE_PX
from ui.matrix import show_matrix, view_options
from ui.page import Page
from ui.sidebar import CUSTOM_MODE_KEY
from ui.state import MAX_GENERATE, MAX_TOP_K
from ui.text import plain
from ui.widgets import bound, label_from, show_chart, show_error

PROFILE_KEYS = 128
"""A mask profile shows up to this many keys exactly (beyond, as many blocks): at most 18,432
cells for a 12 × 12 model, and the profile fills its column, so a 128-token input's keys are no
longer averaged in pairs."""


def no_head_notice(model: core.LoadedModel) -> None:
    """Say that this model predicts no masked words, and offer the masked-LM presets."""
    policy = deploy_policy()
    # Only presets this deployment allows: a button for another would just load a refusal.
    mlm = [
        name
        for name in offered_models(policy)
        if name in core.PRESETS and core.PRESETS[name].kind is ModelKind.MASKED_LM
    ]
    # The name may come from a link or the model box: escaped, so Markdown in it shows as text.
    missing = f"{plain(model.name)} has no masked-word head ({model.kind.value} model), "
    if not mlm:
        st.info(
            missing + "so it predicts no masked words; this deployment offers no masked-LM "
            "model. The attention of a word you pick is still shown below."
        )
        return
    st.info(missing + "so it predicts no masked words. Switch to a masked-LM model:")
    # A row that wraps, each button as wide as its label: in fixed columns (two to a row)
    # the longer names were cut to "huawei-noah/TinyBERT_General_4L_31…" at 1024 px.
    with st.container(horizontal=True, gap="small"):
        for name in mlm:
            st.button(
                model_label(name),
                on_click=switch_model,
                args=(name,),
                key=f"use_{name}",
                width="content",
            )


def switch_model(name: str) -> None:
    st.session_state[CUSTOM_MODE_KEY] = False
    session.update(model=name)


def top_k_slider(causal: bool) -> int:
    return bound(
        st.slider,
        "Next-token predictions" if causal else "Predictions per mask",
        "top_k",
        min_value=1,
        max_value=MAX_TOP_K,
    )


def positions_and_predictions(
    page: Page, can_predict: bool, causal: bool
) -> tuple[list[int], list[list[core.Prediction]]]:
    """The positions to show and their ranked predictions (empty lists when none)."""
    result = page.result
    if causal:
        # The next token is predicted from the last position: its bars and its attention take
        # the place of a mask's (same pass as the attention, so the two agree).
        return [len(result.tokens) - 1], ([result.next_token] if result.next_token else [])
    if result.mask_positions:
        return drawn_masks(result.mask_positions, result.predictions)
    st.info("The text has no [MASK]. Pick a word to mask it:")
    words = maskable_positions(result.tokens)
    chosen = bound(
        st.selectbox,
        "Word to mask",
        "mask",
        options=words,
        placeholder="Type or pick a word",
        format_func=label_from({i: f"{result.tokens[i].text} ({i})" for i in words}),
    )
    if chosen is None:
        return [], []
    predictions = []
    if can_predict:
        try:
            predictions = cache.predictions_at(page.inputs, chosen, MAX_TOP_K)
        except AtlasError as error:
            show_error(str(error))
    return [chosen], predictions


MAX_MASKS_DRAWN = 16
"""Masks drawn per text on any deployment: each is a bar chart and a layers × heads profile, so
a text of 254 masks would send hundreds of charts (issue 12); public mode may allow fewer."""


def masks_drawn(total: int, notebook: str = "core.predict_masked") -> int:
    """How many of a text's `total` masks are drawn: the deployment's budget, at most
    `MAX_MASKS_DRAWN`, with a note naming `notebook`, which gives them all, when some are left
    out. The Masked and Compare pages both draw this many."""
    from server.policy import masks_allowed

    allowed = min(masks_allowed(deploy_policy(), total), MAX_MASKS_DRAWN)
    if allowed < total:
        st.caption(
            f"The text has {total} masks; the first {allowed} are drawn here. "
            f"`{notebook}` in a notebook predicts them all."
        )
    return allowed


def drawn_masks(
    positions: list[int], predictions: list[list[core.Prediction]]
) -> tuple[list[int], list[list[core.Prediction]]]:
    """The first masks up to the deployment's budget (`masks_drawn`)."""
    allowed = masks_drawn(len(positions))
    return positions[:allowed], predictions[:allowed]


def mask_section(
    page: Page,
    number: int,
    position: int,
    ranked: list[core.Prediction],
    causal: bool,
    top_k: int,
) -> None:
    """One mask: its top predictions and how it attends in every layer and head."""
    result = page.result
    if causal:
        st.subheader(f"Next token after position {position}: {plain(result.tokens[position].text)}")
    else:
        st.subheader(f"Mask {number + 1}: position {position}")
    # Predictions above the profile, not beside it: at 1024 px with the sidebar open two
    # columns leave the profile's head labels and legend no room.
    if ranked:
        shown = ranked[:top_k]
        show_chart(
            charts.prediction_bars(
                [p.token for p in shown],
                [p.score for p in shown],
                column_width=PAGE_PX,
                scale="fixed" if scale_of(page) == "fixed" else "chart",
            ),
            theme="streamlit",
        )
    profile, labels = mask_profile(
        result.attentions,
        position,
        token_labels(result.tokens, "marked"),
        PROFILE_KEYS,
        PROFILE_KEYS,
    )
    with st.container():
        chart = charts.layer_head_profile(
            profile,
            labels,
            title=f"Attention of position {position} in every layer and head",
            column_width=PAGE_PX,
            scale=scale_of(page),
            fill=True,
        )
        # Many keys fill the column at every window width; a few keep 22 px each.
        filled = chart.width == "container"
        show_chart(chart, theme="streamlit", width="stretch" if filled else "content")
        if len(result.labels) > PROFILE_KEYS:
            st.caption(
                f"Keys averaged into {profile.shape[-1]} blocks of about "
                f"{len(result.labels) / profile.shape[-1]:.0f} tokens."
            )


def generation(page: Page) -> None:
    """Greedy continuation of the text; each generated token's attention over the prompt."""
    st.subheader("Generate a continuation")
    view, result = page.view, page.result
    count_column, layer_column, head_column = st.columns(3)
    with count_column:
        count = bound(
            st.slider,
            "Tokens to generate (0: off)",
            "generate",
            min_value=0,
            max_value=MAX_GENERATE,
            help="Generates greedily and shows what each new token attends to in the prompt.",
        )
    if not count:
        return
    with layer_column:
        bound(st.selectbox, "Layer", "layer", options=list(range(result.num_layers)))
    with head_column:
        bound(
            st.selectbox,
            "Head",
            "head",
            value=view.head if view.head != "all" else "mean",
            options=["mean", *range(result.num_heads)],
            format_func=label_from(
                {"mean": "mean of heads"} | {h: str(h) for h in range(result.num_heads)}
            ),
        )
    try:
        with st.spinner(f"Generating {count} tokens…"):
            out = cache.generation(page.inputs, count)
    except AtlasError as error:
        show_error(str(error))
        return
    start = out.generated_from or len(out.tokens)
    if start >= len(out.tokens):
        st.info("The model generated nothing after this text.")
        return
    continuation = page.model.tokenizer.decode([t.token_id for t in out.tokens[start:]])
    st.markdown(f"**Continuation:** {plain(continuation)}")
    matrix, rows, keys = generated_rows(out.attentions, out.tokens, start, view.layer, view.head)
    which = f"head {view.head}" if isinstance(view.head, int) else "mean of heads"
    show_matrix(
        matrix,
        rows,
        key_labels=keys,
        key="generation",
        title=f"Generated tokens → prompt, layer {view.layer}, {which}",
        **view_options(view),
    )
    st.caption(
        "Row i: what the i-th generated token attends to in the prompt (the attention it used "
        "to predict the token after it). The rest of each row goes to the tokens generated "
        "before it." + (" The continuation is generated from the text only." if view.pair else "")
    )


def gallery(page: Page) -> None:
    """Every head for this sentence, and all of them as PNGs in a ZIP."""
    st.subheader("Gallery: every head for this sentence")
    result = page.result
    n = len(result.tokens)
    if page.model.kind is not ModelKind.MASKED_LM:
        # The overview page already draws the grid; here only the download is new.
        st.caption(
            f"{result.num_layers} layers × {result.num_heads} heads: the grid is on the Model "
            "overview page."
        )
    else:
        largest = min(40, charts.largest_thumbnail(result.num_heads, PAGE_PX))
        size = thumbnail_size(
            result.num_layers, result.num_heads, n, budget=250_000, largest=largest
        )
        show_chart(
            charts.head_grid(
                cache.thumbnails(page.inputs, core.families.SELF, size),
                max_width=PAGE_PX,
                scale=scale_of(page),
            ),
            theme="streamlit",
            width="content",
        )
        if n > size:
            st.caption(f"Thumbnails averaged down to {size}×{size} blocks.")
    palette_column, labels_column = st.columns(2)
    palette = palette_column.radio(
        "PNG colours",
        ["blue", "cs50"],
        format_func=label_from({"blue": "blue, each head to its maximum", "cs50": "CS50 grey"}),
        horizontal=True,
        key="gallery_palette",
        help="CS50's attention exercise draws every head in absolute grey: 0 black, 1 white.",
    )
    raw = labels_column.toggle(
        "Raw word pieces",
        key="gallery_raw",
        help="Label the images with the tokenizer's own pieces (Ġsat, ##ding).",
    )
    prov = exports.provenance(page.view, page.inputs)
    last = gallery_file_name(
        result.num_layers - 1,
        result.num_heads - 1,
        layers=result.num_layers,
        heads=result.num_heads,
    )
    first = gallery_file_name(0, 0, layers=result.num_layers, heads=result.num_heads)
    st.caption(
        f"The ZIP holds one full-resolution PNG per head, counted from 0 as everywhere in the "
        f"app ({first} … {last}), and a provenance.json."
    )
    st.download_button(
        "Download all heads as PNG images (ZIP)",
        data=functools.partial(cache.gallery, page.inputs, palette, raw, prov),
        file_name=core.export_file_name(
            page.model.name, "raw", None, None, core.families.SELF, "zip", kind="gallery"
        ),
        mime="application/zip",
        on_click="ignore",
    )


def scale_of(page: Page) -> ScaleMode:
    """The view's colour scale for a chart drawn alone ("shared" has nothing to share)."""
    scale = page.view.colour_scale()
    return "chart" if scale == "shared" else scale  # type: ignore[return-value]
