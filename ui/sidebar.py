"""The sidebar every page shares: model, texts, display options, and opening a view file."""

from __future__ import annotations

import streamlit as st

from core import PRESETS
from core.scales import LOG_DECADES
from server.settings import shown_name
from ui import cache, session
from ui.deploy import (
    CUSTOM_CHOICE,
    mode_notice,
    model_label,
    model_note,
    offered_models,
    read_deploy_policy,
)
from ui.state import DEFAULT, SCALES, from_view_file
from ui.text import plain
from ui.widgets import bound, label_from, show_error

SCALE_LABELS = {
    "": "page default",
    "chart": "each chart to its maximum",
    "shared": "shared (compared charts; a model's heads and layers)",
    "fixed": "fixed 0–1",
}
EXAMPLES: dict[str, tuple[str, str, str]] = {
    "Coreference": (
        "The animal didn't cross the street because it was too tired.",
        "",
        "Select 'it': in the middle layers some heads point it at 'animal', not 'street'. "
        "Replace 'tired' by 'wide' on Compare and watch the pull move.",
    ),
    "Agreement": (
        "The keys to the cabinet are on the table.",
        "",
        "Select 'are': heads that track subject–verb agreement look past 'cabinet' to 'keys'.",
    ),
    "Previous-token heads": (
        "One two three four five six seven eight nine ten.",
        "",
        "On the Model overview, a stripe just below the diagonal marks a head that looks at "
        "the previous token; sort the table by 'to previous' to find them.",
    ),
    "Sentence pair": (
        "The cat sat on the mat.",
        "It was very comfortable.",
        "A/B bands mark the two sentences; late-layer heads often attend across the [SEP].",
    ),
    "Word pieces": (
        "Tokenization splits unbelievably long words into embeddings of pieces.",
        "",
        "Continuation pieces carry a ## marker; 'Merge word pieces' joins them into words.",
    ),
}
"""Built-in examples: (text, second sentence, what to look for). Chosen by the text itself,
so a link carries an example as its text and no separate field."""
CUSTOM_MODE_KEY = "atlas_custom_model_mode"
"""The visitor chose "Other" in the model picker: it stays there until they pick a preset."""
OPEN_PAGE_KEY = "atlas_open_page"
"""A view file names the page to show; the entrypoint switches to it."""


def render() -> None:
    with st.sidebar:
        st.header("Attention Atlas")
        model_picker()
        texts()
        display_options()
        view_file_opener()


def model_picker() -> None:
    policy, problem = read_deploy_policy()
    if problem:
        show_error(problem)
    notice = None if problem else mode_notice(policy)
    if notice:
        st.info(notice)
    names = offered_models(policy)
    options = [*names, CUSTOM_CHOICE] if policy.offers_any_model else names
    current = session.view().model
    if not policy.offers_any_model and current not in names:
        # A shared link may name a model this deployment does not offer: say so, show another.
        if current != DEFAULT.model:
            session.report(
                plain(
                    f"'{shown_name(current)}' is not offered by this public deployment; "
                    f"showing {names[0]} instead."
                )
            )
        current = session.update(model=names[0]).model
    shown = current if current in names else CUSTOM_CHOICE
    # Once a visitor chose "Other", the picker stays there (also while the id is typed and
    # after a preset's name is typed into the box).
    custom_mode = st.session_state.get(CUSTOM_MODE_KEY, False)
    st.session_state["w_model_choice"] = CUSTOM_CHOICE if custom_mode else shown
    choice = st.selectbox(
        "Model",
        options,
        key="w_model_choice",
        on_change=choose_model,
        format_func=model_label,
        help="The line under the box gives the model's full Hub id and its download, which "
        "needs the network the first time; the embedded model works offline.",
    )
    if choice == CUSTOM_CHOICE:
        if "w_custom_model" not in st.session_state:
            st.session_state["w_custom_model"] = "" if current in names else current
        custom = st.text_input(
            "Hub id" if policy.public else "Hub id or local directory",
            key="w_custom_model",
            on_change=type_model,
            placeholder="e.g. bert-large-cased"
            if policy.public
            else "e.g. bert-large-cased or /path/to/checkpoint",
        ).strip()
        if not custom:
            st.caption("Type a model id, then press Enter.")
    else:
        preset = PRESETS.get(choice)
        if preset is not None:
            st.caption(f"{model_note(choice)}. {preset.description}")
    if not policy.offers_any_model:
        st.caption(
            "This public deployment offers these models only; typing other Hub ids or local "
            "directories is turned off. Run Attention Atlas on your own machine to analyse any "
            "model."
        )


def choose_model() -> None:
    choice = st.session_state["w_model_choice"]
    st.session_state[CUSTOM_MODE_KEY] = choice == CUSTOM_CHOICE
    if choice != CUSTOM_CHOICE:
        session.update(model=choice)


def type_model() -> None:
    typed = st.session_state["w_custom_model"].strip()
    if typed:
        session.update(model=typed)


def texts() -> None:
    # The browser stops typing and pasting at the deployment's character cap (None: no cap) and
    # the server cuts longer values a client sends; text longer than the cap can then only come
    # from a link, which the page refuses with a message, keeping the text.
    max_chars = read_deploy_policy()[0].max_chars
    current = session.view()
    chosen = next(
        (
            name
            for name, (text, pair, _) in EXAMPLES.items()
            if (text, pair) == (current.text, current.pair)
        ),
        None,
    )
    st.session_state["w_example"] = chosen
    st.selectbox(
        "Example",
        list(EXAMPLES),
        key="w_example",
        placeholder="Pick an example sentence…",
        on_change=choose_example,
        help="Sentences that show a known pattern; the note below says what to look for.",
    )
    if chosen is not None:
        st.caption(EXAMPLES[chosen][2])
    bound(
        st.text_area,
        "Text",
        "text",
        height=110,
        max_chars=max_chars,
        help="Use [MASK] (or <mask>) where the model should predict a word.",
    )
    bound(
        st.text_input,
        "Second sentence (optional)",
        "pair",
        help="For sentence-pair inputs: [CLS] A [SEP] B [SEP].",
        max_chars=max_chars,
    )
    if cache.is_encoder_decoder(session.view().model):
        bound(
            st.text_input,
            "Target text (decoder)",
            "target",
            placeholder="empty: the model writes its own",
            max_chars=max_chars,
            help="What the decoder reads (e.g. a translation or summary of the text). Leave it "
            "empty to let the model generate one greedily; the pages then show what it wrote.",
        )


def choose_example() -> None:
    name = st.session_state["w_example"]
    if name in EXAMPLES:
        text, pair, _ = EXAMPLES[name]
        session.update(text=text, pair=pair)


def display_options() -> None:
    st.subheader("Display")
    bound(st.toggle, "Hide special tokens", "hide_special")
    bound(st.toggle, "Merge word pieces into words", "merge_words")
    bound(
        st.selectbox,
        "Colour scale",
        "scale",
        options=["", *SCALES],
        format_func=label_from(SCALE_LABELS),
        help="Each chart from 0 to its own maximum, one scale shared by charts shown side by "
        "side (the default on Compare; on Attention, shared by every head and layer of the "
        "model, the default there), or fixed from 0 to 1.",
    )
    bound(
        st.toggle,
        "Log colour scale",
        "log_scale",
        help=f"Colours span {LOG_DECADES} decades below the scale's top; smaller weights, zeros "
        "included, get the bottom colour. Differences (signed) stay linear.",
    )
    bound(
        st.toggle,
        "Without the first token",
        "without_first",
        help="Leave the first token out as a key and renormalise each row over the others: "
        "many heads park most of their weight on it (an attention sink).",
    )


def view_file_opener() -> None:
    st.file_uploader(
        "Open a view file",
        type=["json"],
        key="w_view_file",
        on_change=open_view_file,
        help="A view downloaded with 'Download this view' (for texts too long for a link).",
        max_upload_size=1,
    )


def open_view_file() -> None:
    uploaded = st.session_state.get("w_view_file")
    if uploaded is None:
        return
    view, problems = from_view_file(uploaded.getvalue())
    for problem in problems:
        session.report(problem)
    if not problems or view != DEFAULT:
        session.set_view(view)
        st.session_state[OPEN_PAGE_KEY] = view.page


def page_to_open() -> str | None:
    """The page a view file just opened names (once), for the entrypoint to switch to."""
    return st.session_state.pop(OPEN_PAGE_KEY, None)
