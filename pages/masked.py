"""Masked prediction: what the model guesses for each mask, and which tokens the mask reads."""

import functools

import streamlit as st

from core import ModelKind
from ui import exports, prediction
from ui import page as pages
from ui.widgets import export_buttons

ABOUT = (
    "Write `[MASK]` (or `<mask>`) in the text, or pick a word below to mask it. The bars are "
    "the model's top guesses with their probabilities (softmax over the whole vocabulary). "
    "The heatmap below shows, for every layer and head, how the mask position spreads its "
    "attention over the input: these are the tokens the prediction is built from. The "
    "gallery draws every head for this sentence, like the CS50 *attention* exercise. "
    "Causal models (GPT-2) predict the next token instead, from the text's last position, "
    "and can generate a continuation whose attention to the prompt is drawn."
)


def render(page: pages.Page) -> None:
    can_predict = page.model.kind is ModelKind.MASKED_LM
    # Causal LMs (GPT-2) predict the next token instead: shown below in place of the masks.
    causal = page.model.kind is ModelKind.CAUSAL_LM
    if not can_predict and not causal:
        prediction.no_head_notice(page.model)
    # A model without a head predicts nothing: no slider that would do nothing.
    top_k = prediction.top_k_slider(causal) if can_predict or causal else 0
    positions, predictions = prediction.positions_and_predictions(page, can_predict, causal)
    if page.view.pair and predictions and not causal:
        st.caption("Predictions use the first sentence only.")
    for number, position in enumerate(positions):
        ranked = predictions[number] if number < len(predictions) else []
        if not ranked and can_predict and not causal:
            st.caption("No prediction for this position.")
        prediction.mask_section(page, number, position, ranked, causal, top_k)
    if predictions:
        prov = exports.provenance(page.view, page.inputs)
        data = functools.partial(exports.predictions_data, page.inputs, positions[0], causal, prov)
        export_buttons(
            "Predictions",
            csv=functools.partial(data, "csv"),
            json=functools.partial(data, "json"),
            stem=exports.stem(prov, kind="predictions"),
        )
    if causal:
        prediction.generation(page)
    prediction.gallery(page)


pages.run("masked", render, title="Masked prediction", about=ABOUT)
