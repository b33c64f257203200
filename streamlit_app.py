"""Attention Atlas: the router and the sidebar every page shares."""

import streamlit as st

from core import PRESETS
from pages import _shared as shared

st.set_page_config(page_title="Attention Atlas", page_icon="🔭", layout="wide")
shared.init_state()

PAGES = [
    st.Page("pages/attention.py", title="Attention", icon="🔍", url_path="attention", default=True),
    st.Page("pages/overview.py", title="Model overview", icon="🗺️", url_path="overview"),
    st.Page("pages/masked.py", title="Masked prediction", icon="🎭", url_path="masked"),
    st.Page("pages/compare.py", title="Compare", icon="⚖️", url_path="compare"),
]


def model_picker() -> None:
    from core.deploy import shown_name

    # Runs first on every page, before any model or result is allocated.
    shared.limit_memory_fragmentation()
    policy, problem = shared.read_deploy_policy()
    if problem:
        shared.show_error(problem)
    names = list(PRESETS) if policy.offers_any_model else list(policy.allowed_models or ())
    options = [*names, shared.CUSTOM_CHOICE] if policy.offers_any_model else names
    current = st.session_state["model"]
    if not policy.offers_any_model and current not in names:
        # A shared link may name a model this deployment does not offer: say so, show another.
        if current != shared.STATE_DEFAULTS["model"]:
            st.session_state.setdefault("_url_problems", []).append(
                shared.plain(
                    f"'{shown_name(current)}' is not offered by this public "
                    f"deployment; showing {names[0]} instead."
                )
            )
        current = st.session_state["model"] = names[0]
        st.session_state["w_model_choice"] = current
    choice_index = names.index(current) if current in names else len(names)
    if st.session_state.get("w_model_choice", options[choice_index]) not in options:
        st.session_state["w_model_choice"] = options[choice_index]
    st.session_state.setdefault("w_model_choice", options[choice_index])
    choice = st.selectbox(
        "Model",
        options,
        key="w_model_choice",
        format_func=lambda n: n if n == shared.CUSTOM_CHOICE else shared.model_label(n),
        help="Presets marked 'download' need the network the first time; the embedded model "
        "works offline.",
    )
    if choice == shared.CUSTOM_CHOICE:
        st.session_state.setdefault("w_custom_model", "" if current in names else current)
        custom = st.text_input(
            "Hub id" if policy.public else "Hub id or local directory",
            key="w_custom_model",
            placeholder="e.g. bert-large-cased"
            if policy.public
            else "e.g. bert-large-cased or /path/to/checkpoint",
        ).strip()
        if custom:
            st.session_state["model"] = custom
        else:
            st.caption("Type a model id, then press Enter.")
    else:
        st.session_state["model"] = choice
        preset = PRESETS.get(choice)
        if preset is not None:
            st.caption(preset.description)
    if not policy.offers_any_model:
        st.caption(
            "This public deployment offers these models only; typing other Hub ids or local "
            "directories is turned off. Run Attention Atlas on your own machine to analyse any "
            "model."
        )


with st.sidebar:
    st.header("Attention Atlas")
    model_picker()
    # The browser stops typing and pasting at the deployment's character cap (None: no cap) and
    # the server cuts longer values a client sends; text longer than the cap can then only come
    # from a link, which current_result refuses with a message, keeping the text.
    max_chars = shared.deploy_policy().max_chars
    st.text_area(
        "Text",
        key=shared.widget_key("text"),
        on_change=shared.sync,
        args=("text",),
        height=110,
        max_chars=max_chars,
        help="Use [MASK] (or <mask>) where the model should predict a word.",
    )
    st.text_input(
        "Second sentence (optional)",
        key=shared.widget_key("pair"),
        on_change=shared.sync,
        args=("pair",),
        help="For sentence-pair inputs: [CLS] A [SEP] B [SEP].",
        max_chars=max_chars,
    )
    if shared.is_encoder_decoder(st.session_state["model"]):
        st.text_input(
            "Target text (decoder)",
            key=shared.widget_key("target"),
            on_change=shared.sync,
            args=("target",),
            placeholder="empty: the model writes its own",
            max_chars=max_chars,
            help="What the decoder reads (e.g. a translation or summary of the text). Leave it "
            "empty to let the model generate one greedily; the pages then show what it wrote.",
        )
    st.subheader("Display")
    shared.bound(st.toggle, "Hide special tokens", "hide_special")
    shared.bound(st.toggle, "Merge word pieces into words", "merge_words")

shared.show_url_problems()
navigation = st.navigation(PAGES)
navigation.run()
shared.write_query_params()
