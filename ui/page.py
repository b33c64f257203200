"""What every page does first: load the model and the result, check the view, hand it over.

A page script is one `render(page: Page)` function and a call to `run`. Everything a page
draws is reached from its `Page`: nothing of it stays in the script's globals, and the page's
callbacks take small arguments only, so a session kept after its visitor left pins no result.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

import core
from core import AtlasError, AttentionResult, LoadedModel
from core.families import SELF
from core.masking import maskable_positions, replaceable_words
from server.policy import deployment
from ui import cache, session
from ui.cache import Inputs
from ui.deploy import deploy_policy
from ui.runtime import leave_legacy_pages_mode
from ui.state import MAX_URL_TEXT, Shape, ViewState, to_view_file
from ui.text import plain
from ui.widgets import file_stem, show_error


@dataclass(frozen=True)
class Page:
    """A page's material for one run: the checked view, the model, its inputs and result."""

    view: ViewState
    model: LoadedModel
    inputs: Inputs
    result: AttentionResult


def run(name: str, render: Callable[[Page], None], *, title: str, about: str) -> None:
    """Draw page `name`: title, its "What am I looking at?" text, then `render` (if loaded)."""
    if session.VIEW_KEY not in st.session_state:
        # The page ran without the entrypoint (a `pages/` folder's legacy mode on a fresh
        # server): leave that mode and rerun through the entrypoint, sidebar and all.
        leave_legacy_pages_mode()
        st.rerun()
    session.update(page=name)
    st.title(title)
    with st.expander("What am I looking at?"):
        st.markdown(about)
    session.take_app_rerun()  # this is the whole app's run
    _page_body(render)


@st.fragment
def _page_body(render: Callable[[Page], None]) -> None:
    """Everything below the page's title, rerun alone when one of its own controls changes.

    A change of layer, head, method or token then redraws the page's views only, not the
    sidebar and the page around them (the interaction-speed targets of bench/RESULTS.md). A
    control that changes what the sidebar shows (the model, say) reruns the whole app.
    """
    if session.take_app_rerun():
        st.rerun(scope="app")
    session.show_problems()
    opened = open_page()
    if opened is not None:
        link_note(opened.view)
        render(opened)
    # The entrypoint writes the link after a whole run; a fragment's run ends here.
    session.write_url(session.view())


def open_page() -> Page | None:
    """Load the view's model and result and clamp the view to them; None after an error."""
    model = load_model(session.view().model)
    if model is None:
        return None
    inputs = cache.inputs_of(session.view(), model)
    result = load_result(inputs, model)
    if result is None:
        return None
    view = session.view()
    stack = view.stack if view.stack in result.stacks else SELF
    # The shape only: a long input's whole array is never built here (`core.long_views`).
    layers, heads, _, _ = result.pieces(stack).shape
    queries, _ = result.stack_tokens(stack)
    view = session.clamp_view(
        Shape(
            layers=layers,
            heads=heads,
            tokens=len(queries),
            stacks=result.stacks,
            methods=tuple(core.list_methods(model, stack)),
            words=tuple(replaceable_words(result.tokens)),
            maskable=tuple(maskable_positions(result.tokens)),
        )
    )
    session.show_problems()
    return Page(view=view, model=model, inputs=inputs, result=result)


def load_model(name: str) -> LoadedModel | None:
    """Model `name`, loaded with a spinner; shows the error and returns None on failure."""
    from server.policy import check_model_allowed
    from server.settings import shown_name

    preset = core.PRESETS.get(name)
    if preset is not None and preset.needs_download:
        what = f"Loading {name} (downloads ≈{preset.download_mb} MB the first time)…"
    else:
        what = f"Loading {shown_name(name)}…"
    try:
        # Checked here too so a refused name never shows a loading spinner.
        check_model_allowed(deploy_policy(), name)
        with st.spinner(plain(what)):
            return cache.cached_model(name)
    except AtlasError as error:
        show_error(str(error))
    except Exception as error:  # a model's own code can fail in any way
        show_error(f"Could not load '{shown_name(name)}': {type(error).__name__}: {error}")
    return None


def load_result(inputs: Inputs, model: LoadedModel) -> AttentionResult | None:
    """Attention for `inputs` on `model`; shows the error and returns None on failure.

    Text beyond the deployment's token cap is truncated, not refused: the visitor still sees
    the start of a pasted paragraph, the warning says how much was left out, and the cost is
    bounded by the tokens kept. Only text beyond the character cap is refused, because the
    tokenizer would spend seconds on it before truncating.
    """
    from server.memory import check_text_memory
    from server.policy import check_text_length

    try:
        check_text_length(deploy_policy(), inputs.text, inputs.pair + inputs.target)
        if not cache.is_attention_stored(inputs):
            # Judged by this text's length (estimated before tokenizing), not the model's limit.
            tokens = cache.estimated_tokens(inputs, model.max_length)
            check_text_memory(model.model.config, tokens, model.name)
        with st.spinner("Running the model…"):
            result = cache.attention(inputs)
    except AtlasError as error:
        show_error(str(error))
        return None
    describe_result(result, model, inputs)
    return result


def describe_result(result: AttentionResult, model: LoadedModel, inputs: Inputs) -> None:
    """What a visitor should know about how the text was read (generated, cut, ignored)."""
    name = plain(model.name)
    if result.target_generated:
        generated = result.target_text.strip() if result.target_text else ""
        st.info(
            f"Target generated greedily: “{plain(generated) or '(special tokens only)'}”. "
            "Type a target text (decoder) in the sidebar to see the attention for your own."
        )
    if result.dropped_target_tokens:
        st.warning(
            f"The target text is longer than {name} can read ({model.max_length} tokens): "
            f"the last {result.dropped_target_tokens} target tokens were dropped."
        )
    if inputs.pair and model.kind is core.ModelKind.ENCODER_DECODER:
        st.caption("Encoder-decoder models read the text only; the second sentence is not used.")
    if result.dropped_tokens:
        own_limit = model.extra.get("model_max_length", model.max_length)
        if model.max_length < own_limit:
            st.warning(
                f"This {deployment(deploy_policy())} reads at most {model.max_length} tokens "
                "per text "
                f"({name} itself reads {own_limit}): the last {result.dropped_tokens} tokens "
                "were dropped. Your text is unchanged; shorten it to see all of it."
            )
        else:
            st.warning(
                f"The input is longer than {name} can read ({model.max_length} tokens): the "
                f"last {result.dropped_tokens} tokens were dropped."
            )


def link_note(view: ViewState) -> None:
    """Say when the text is too long for the link, and offer the view as a file instead."""
    if view.text_in_link():
        return
    length = len(view.text) + len(view.pair) + len(view.target)
    # The button's column fits "Download this view" at 1024 px (a quarter cut it).
    note, button = st.columns([2, 1], vertical_alignment="center")
    note.caption(
        f"This text ({length:,} characters) is too long for a link (at most {MAX_URL_TEXT:,}): "
        "the address bar keeps the other settings only. Download the view as a file and open it "
        "with 'Open a view file' in the sidebar to share all of it."
    )
    button.download_button(
        "Download this view",
        data=functools.partial(to_view_file, view),
        file_name=f"{file_stem('atlas_view', view.page)}.json",
        mime="application/json",
        on_click="ignore",
    )


def open_head(layer: int, head: int) -> None:
    """Show one head on the Attention page (raw weights: the methods with heads)."""
    session.update(layer=int(layer), head=int(head), method="raw")
    st.switch_page("pages/attention.py")
