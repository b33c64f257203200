"""Panels of the Compare page: the word and its replacement, the layer and head pickers,
the predictions before and after, and the second model's picker; the controls are bound to the
view, so they travel in the link."""

from __future__ import annotations

import functools

import numpy as np
import streamlit as st

from core import AttentionResult, Comparison, MaskPair, charts
from core.compare_view import (
    character_units,
    pooled_row_units,
    row_units,
    token_units,
    unit_rows,
)
from core.display_matrix import causal_display_mask, prepare_display, without_first_token
from core.masking import replaceable_words
from core.pooling import block_labels, pool_matrix, pool_signed_max
from core.scales import ScaleMode
from core.selection import segment_b_start
from core.tokens import unit_labels
from ui import cache, prediction, session
from ui.deploy import CUSTOM_CHOICE, deploy_policy, model_label, picker_options
from ui.explorer import MAX_TOKENS, build_payload
from ui.explorer.payload import build_compare_payload, link_panel, outside_window
from ui.layout import COLUMN_PX
from ui.page import Page
from ui.state import ViewState
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


# ---------------------------------------------------------------------- the explorer's panels
WITHOUT_FIRST = "without the first token (each row renormalised over the rest)"
DIVERGING = "blue: less attention after, red: more (colour-blind safe); background: no change"
REPLACE_CAPTION = (
    "Before, after and their difference share one view: zoom (Ctrl + wheel, + and −), pan "
    "(drag, Shift + arrows), hover and the selected row move all three. Rows and columns are "
    "matched through word units: a replacement that splits into pieces is one unit (keys "
    "summed, queries averaged)."
)
MODELS_CAPTION = (
    "Both models share one view: zoom, pan, hover and the selected row move both. Tokens are "
    "matched by character offsets: a token meets the other model's token that covers its first "
    "character (a special token meets the token before it, a leading one the first)."
)


def never_computed(
    result: AttentionResult, groups: list[list[int]], layer: int
) -> np.ndarray | None:
    """bool `[units, units]`: display cells of `layer` the model never computes (a causal
    model's later keys; keys outside a sliding-window layer's window), or None (none)."""
    window = result.window(layer)
    if window is not None:
        return outside_window(groups, window, causal=result.is_causal())
    return causal_display_mask(groups) if result.is_causal() else None


def _layer_stack(result: AttentionResult, layer: int, heads: int) -> np.ndarray:
    """`[heads + 1, n, n]`: the first `heads` heads of `layer`, then the mean of all its heads."""
    weights = result.attentions[layer]
    return np.concatenate([weights[:heads], weights.mean(axis=0, keepdims=True)])


def _panel(
    result: AttentionResult,
    stack: np.ndarray,
    units_of_tokens: np.ndarray,
    view: ViewState,
    light: dict,
) -> tuple[dict, float]:
    """One side's panel (before, after, or a model) with its link units and its largest
    value (for the shared scale): the view's display options, then "without the first
    token", then mean pooling beyond the explorer's length."""
    tokens = result.tokens
    shown = prepare_display(
        stack, tokens, hide_special=view.hide_special, merge_words=view.merge_words
    )
    values = without_first_token(shown.matrix) if view.without_first else shown.matrix
    empty = never_computed(result, shown.groups, light["layer"])
    labels = unit_labels(tokens, shown.groups, "marked")
    rows = row_units(shown.groups, units_of_tokens)
    segment = segment_b_start(tokens, shown.groups)
    notes = [WITHOUT_FIRST] if view.without_first else []
    if len(labels) > MAX_TOKENS:
        if empty is not None:
            values = np.where(empty, np.nan, values)
        block = len(labels) / MAX_TOKENS
        values, empty = pool_matrix(values, MAX_TOKENS), None
        labels, rows = block_labels(labels, MAX_TOKENS), pooled_row_units(rows, MAX_TOKENS)
        segment = None
        notes.append(f"mean pooled: each cell a block of about {block:.1f} tokens a side")
    top = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    payload = build_payload(
        values[:-1],
        mean=values[-1],
        row_labels=labels,
        empty=empty,
        segment_b_start=segment,
        **light,
    )
    return {"payload": payload, "rows": rows, "notes": notes}, top


def _linked(panels: list[dict], tops: list[float], n_units: int, shared_name: str) -> list[dict]:
    """The panels with their link units, on one shared scale named `shared_name`."""
    shared = max(max(tops), 1e-12)
    return [
        link_panel(
            {**panel["payload"], "shared": shared},
            panel["rows"],
            unit_rows(panel["rows"], n_units),
            notes=panel["notes"],
            scale_names={"shared": shared_name},
        )
        for panel in panels
    ]


def _light(view: ViewState, layer: int, layers: int, head: int | str, title: str) -> dict:
    return {
        "head": head,
        "layer": layer,
        "layers": layers,
        "scale": view.colour_scale(),
        "shared_max": 1.0,  # replaced by the panels' own shared maximum (`_linked`)
        "title": title,
        "log": view.log_scale,
        "drop_first": False,  # applied here, to every panel alike (`_panel`)
    }


def replacement_payload(
    comparison: Comparison, view: ViewState, layer: int, head: int | str
) -> dict:
    """Before, After and the word-level Difference of `layer` (every head and the mean) as one
    compare payload; the difference on its own symmetric scale, max-|Δ| pooled at length."""
    alignment = comparison.alignment
    n_units = len(alignment.labels)
    heads = comparison.before.num_heads
    layers = comparison.before.num_layers
    sides = []
    tops = []
    for result, groups, title in (
        (comparison.before, alignment.before, "Before"),
        (
            comparison.after,
            alignment.after,
            f"After: {comparison.original_word} → {comparison.replacement}",
        ),
    ):
        panel, top = _panel(
            result,
            _layer_stack(result, layer, heads),
            token_units(groups, len(result.tokens)),
            view,
            _light(view, layer, layers, head, title),
        )
        sides.append(panel)
        tops.append(top)
    panels = _linked(sides, tops, n_units, "shared by before and after (this layer's heads)")
    panels.append(difference_panel(comparison, view, layer, head))
    return build_compare_payload(panels, link="words", units=n_units, caption=REPLACE_CAPTION)


def difference_panel(comparison: Comparison, view: ViewState, layer: int, head: int | str) -> dict:
    """The Difference panel: after − before on word units, every head and the mean (each as
    `Comparison.difference_for` draws it), cells never computed empty, special units hidden when the
    view hides special tokens (not renormalised: a difference does not sum to 1)."""
    alignment = comparison.alignment
    first = view.without_first
    values = np.concatenate(
        [
            comparison.layer_difference(layer, without_first=first),
            comparison.difference_for(layer, None, without_first=first)[None],
        ]
    )
    before = never_computed(comparison.before, alignment.before, layer)
    if before is not None:
        # A unit cell is empty where neither side computed any of its token pairs.
        after = never_computed(comparison.after, alignment.after, layer)
        values = np.where(before & after, np.nan, values)
    tokens = comparison.before.tokens
    kept = list(range(len(alignment.labels)))
    if view.hide_special:
        kept = [
            u for u in kept if not all(tokens[p].is_special for p in alignment.before[u])
        ] or kept
        values = values[:, kept][:, :, kept]
    labels = [alignment.labels[u] for u in kept]
    notes = [DIVERGING]
    # Said whatever the sidebar's log setting: the legend's Log box turns it on in the browser.
    notes.append("linear (the log scale applies to before and after only)")
    if first:
        notes.append("of the matrices without the first token")
    if view.hide_special and len(kept) < len(alignment.labels):
        notes.append("special tokens hidden (a difference is not renormalised)")
    rows = kept
    if len(labels) > MAX_TOKENS:
        block = len(labels) / MAX_TOKENS
        values = pool_signed_max(values, MAX_TOKENS)
        labels, rows = block_labels(labels, MAX_TOKENS), pooled_row_units(kept, MAX_TOKENS)
        notes.append(
            f"max-|Δ| pooled: each cell the largest change (sign kept) of a block of about "
            f"{block:.1f} words a side, so a single change stays visible"
        )
    finite = np.isfinite(values)
    top = float(np.abs(values[finite]).max()) if finite.any() else 0.0
    light = _light(
        view,
        layer,
        comparison.before.num_layers,
        head,
        "Difference (after − before)",
    )
    payload = build_payload(
        values[:-1],
        mean=values[-1],
        row_labels=labels,
        value_label="change",
        **{**light, "shared_max": top if top > 0 else 1.0},
    )
    return link_panel(
        payload,
        rows,
        unit_rows(rows, len(alignment.labels)),
        notes=notes,
        scale_names={
            "shared": "±the largest |change| of this layer's heads",
            "chart": "±this matrix's largest |change|",
            "fixed": "fixed ±1",
        },
    )


def models_payload(
    named: list[tuple[str, AttentionResult]], view: ViewState, layer: int, head: int | str
) -> dict:
    """Two models' `layer` (the heads both have, and each one's mean of heads) as one compare
    payload, their tokens matched by character offsets (`core.compare_view.character_units`)."""
    heads = min(result.num_heads for _, result in named)
    layers = min(result.num_layers for _, result in named)
    units = [character_units(result.tokens) for _, result in named]
    n_units = max(total for _, total in units)
    panels, tops = [], []
    for (name, result), (of_tokens, _) in zip(named, units, strict=True):
        panel, top = _panel(
            result,
            _layer_stack(result, layer, heads),
            of_tokens,
            view,
            _light(view, layer, layers, head, name),
        )
        # The chips show the heads both have; each "mean" is of every head its model has.
        panel["payload"]["meanOf"] = result.num_heads
        panels.append(panel)
        tops.append(top)
    linked = _linked(panels, tops, n_units, "shared by both models (this layer's heads)")
    return build_compare_payload(linked, link="characters", units=n_units, caption=MODELS_CAPTION)
