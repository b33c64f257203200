"""Panels of the Compare page: the word and its replacement, the layer and head pickers,
the predictions before and after, and the second model's picker; the controls are bound to the
view, so they travel in the link."""

from __future__ import annotations

import functools

import streamlit as st

from core import Comparison, MaskPair, charts
from core.masking import replaceable_words
from core.scales import ScaleMode
from ui import cache, prediction, session
from ui.deploy import CUSTOM_CHOICE, deploy_policy, model_label, picker_options
from ui.layout import COLUMN_PX
from ui.page import Page
from ui.widgets import bound, label_from, show_chart

CUSTOM_SECOND_KEY = "atlas_custom_second_mode"


def word_and_replacement(page: Page) -> tuple[int, str]:
    """The word to replace (an index of the text's words) and the replacement typed."""
    words = replaceable_words(page.result.tokens)
    pick, typed = st.columns(2)
    with pick:
        word = bound(
            st.selectbox,
            "Word to replace",
            "word",
            value=page.view.word if page.view.word in words else next(iter(words), None),
            options=list(words),
            format_func=label_from({w: f"{label} (word {w})" for w, label in words.items()}),
        )
    with typed:
        # The deployment's character cap holds for the replacement as for the sidebar's text.
        replacement = bound(
            st.text_input,
            "Replacement",
            "replacement",
            placeholder="e.g. dog",
            max_chars=deploy_policy().max_chars,
        )
    return word, replacement


def layer_and_head(layers: int, heads: int, key_suffix: str = "") -> tuple[int, int | str]:
    """Layer and head pickers within `layers` × `heads` (the Attention page's choice).

    Returns the layer and head shown: the view's, or the nearest both models have. Each tab
    draws its own pickers of the one view's layer and head, told apart by `key_suffix`.
    """
    view = session.view()
    layer = min(view.layer, layers - 1)
    options = ["mean", *range(heads)]
    head = view.head if view.head in options else "mean"
    left, right = st.columns(2)
    with left:
        bound(
            st.selectbox,
            "Layer",
            "layer",
            value=layer,
            options=list(range(layers)),
            key_suffix=key_suffix,
        )
    with right:
        bound(
            st.selectbox,
            "Head",
            "head",
            value=head,
            options=options,
            format_func=label_from({"mean": "mean of heads"} | {h: str(h) for h in range(heads)}),
            key_suffix=key_suffix,
        )
    return layer, head


def predictions(comparison: Comparison, scale: ScaleMode) -> None:
    """Each mask's predictions before and after the replacement, up to the deployment's mask
    budget (as on the Masked page); the charts are built inside the admission limit."""
    pairs = comparison.mask_pairs
    if not pairs:
        st.caption("Add a [MASK] to the text to compare predictions too.")
        return
    st.subheader("Predictions before and after")
    pairs = pairs[: prediction.masks_drawn(len(pairs), "core.compare_replacement")]
    built = cache.admitted(functools.partial(prediction_charts, pairs, scale))
    for number, row in enumerate(built):
        for column, chart, change in zip(st.columns(2), row, ("added", "removed"), strict=True):
            with column:
                if chart is None:
                    st.caption(f"Mask {number + 1} was {change} by the replacement.")
                else:
                    show_chart(chart, theme="streamlit")


def prediction_charts(pairs: list[MaskPair], scale: ScaleMode) -> list[list[charts.Spec | None]]:
    """`[before, after]` bar charts of each mask pair; None for a side without the mask."""
    built = []
    for number, pair in enumerate(pairs):
        # One probability axis for both, so the bars compare.
        both = pair.before_predictions + pair.after_predictions
        top = max((p.score for p in both), default=1.0) or 1.0
        sides = [(pair.before, pair.before_predictions, "before")]
        sides.append((pair.after, pair.after_predictions, "after"))
        built.append(
            [
                None
                if position is None
                else charts.prediction_bars(
                    [p.token for p in ranked],
                    [p.score for p in ranked],
                    title=f"Mask {number + 1} {when}",
                    column_width=COLUMN_PX,
                    scale="fixed" if scale == "fixed" else "shared",
                    shared_max=top,
                )
                for position, ranked, when in sides
            ]
        )
    return built


def second_model(page: Page) -> str:
    """The model shown beside the sidebar's ("" until one is chosen).

    The same choice the sidebar offers: a public deployment's allowlist, without the free-text
    box, so a visitor is never offered a model that would only be refused.
    """
    policy = deploy_policy()
    options = picker_options(policy, exclude=page.model.name)
    current = page.view.second_model
    # Once a visitor chose "Other", the picker stays there until they pick a listed model.
    custom_mode = st.session_state.get(CUSTOM_SECOND_KEY, False) or bool(
        current and current not in options
    )
    shown = CUSTOM_CHOICE if custom_mode and CUSTOM_CHOICE in options else (current or None)
    st.session_state["w_second_choice"] = shown if shown in options else None
    choice = st.selectbox(
        "Second model",
        options,
        key="w_second_choice",
        on_change=_choose_second,
        format_func=model_label,
        placeholder="Choose a model to compare with",
    )
    if not policy.offers_any_model:
        st.caption(
            "This public deployment offers these models only."
            if options
            else "This public deployment offers no other model to compare with."
        )
    if choice == CUSTOM_CHOICE:
        # Public mode refuses local paths, so it does not ask for them (as in the sidebar).
        label = "Hub id" if policy.public else "Hub id or local directory"
        st.session_state["w_second_custom"] = current
        st.text_input(label, key="w_second_custom", on_change=_type_second)
    return current if choice is not None else ""


def _choose_second() -> None:
    choice = st.session_state["w_second_choice"]
    st.session_state[CUSTOM_SECOND_KEY] = choice == CUSTOM_CHOICE
    if choice != CUSTOM_CHOICE:
        session.update(second_model=choice or "")


def _type_second() -> None:
    session.update(second_model=st.session_state["w_second_custom"].strip())
