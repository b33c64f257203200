"""Every control of every page travels in the link, and every bad link value is explained.

Round trip: set a control the way a visitor does, take the link the app writes, open it in a
fresh session on the same page, and find the control set. Out of range: a link with an index
the model or text does not have shows a clear warning and the page still draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from tests.pages.conftest import (
    assert_clean,
    compare_panels,
    explorer_drawn,
    head_grid_drawn,
    on_page,
    start,
)

ATTENTION, OVERVIEW, MASKED, COMPARE, CORPUS, EXPLAIN, LONG_CONTEXT = (
    "pages/attention.py",
    "pages/overview.py",
    "pages/masked.py",
    "pages/compare.py",
    "pages/corpus.py",
    "pages/explain.py",
    "pages/long_context.py",
)
TEXT = "The cat sat on the mat because it was tired."


def link_of(at: AppTest) -> dict[str, str]:
    return {key: at.query_params[key] for key in at.query_params}


def reopen(at: AppTest, page: str) -> AppTest:
    """A fresh session opened from `at`'s link, on `page`."""
    again = start(page, **link_of(at))
    assert_clean(again)
    return again


@dataclass(frozen=True)
class Control:
    """One control: how to find it, the value to set, and the link to start from."""

    page: str
    kind: str
    key: str
    value: Any
    start: tuple[tuple[str, str], ...] = ()
    model: str | None = None
    """A tiny model family ("bert", "gpt2", "bart", "roberta") to open with."""
    prepare: tuple[tuple[str, str, Any], ...] = ()
    """Controls to set first (kind, key, value), e.g. flow before its rows."""


CONTROLS = [
    # sidebar (the entrypoint's controls, on every page)
    Control(ATTENTION, "text_area", "w_text", "A dog barked at the moon."),
    Control(ATTENTION, "text_input", "w_pair", "It was loud."),
    Control(ATTENTION, "toggle", "w_hide_special", True),
    Control(ATTENTION, "toggle", "w_merge_words", True),
    Control(ATTENTION, "selectbox", "w_scale", "fixed"),
    Control(ATTENTION, "toggle", "w_log_scale", True),
    Control(ATTENTION, "toggle", "w_without_first", True),
    Control(ATTENTION, "text_input", "w_target", "Le chat.", model="bart"),
    # attention
    Control(ATTENTION, "selectbox", "w_layer", 3),
    Control(ATTENTION, "selectbox", "w_head", 7),
    Control(ATTENTION, "selectbox", "w_head", "all"),
    Control(ATTENTION, "segmented_control", "w_method", "rollout"),
    Control(ATTENTION, "selectbox", "w_token", 4),
    Control(ATTENTION, "slider", "w_edges", 5),
    Control(ATTENTION, "slider", "w_threshold", 0.1),
    Control(ATTENTION, "segmented_control", "w_stack", "cross", model="bart"),
    Control(ATTENTION, "toggle", "w_flow_chosen", True, start=(("method", "flow"),)),
    Control(
        ATTENTION,
        "multiselect",
        "w_rows",
        [1, 3],
        start=(("method", "flow"), ("flow_chosen", "1")),
    ),
    # overview
    Control(OVERVIEW, "selectbox", "w_layer", 2),
    Control(OVERVIEW, "selectbox", "w_head", 9),
    Control(OVERVIEW, "toggle", "w_own_max", True),
    Control(OVERVIEW, "selectbox", "w_head_measure", "first_token_share"),
    # masked
    Control(MASKED, "slider", "w_top_k", 3, start=(("text", "the [MASK] sat ."),), model="bert"),
    Control(MASKED, "selectbox", "w_mask", 2, start=(("text", "the cat sat"),), model="roberta"),
    Control(MASKED, "slider", "w_generate", 3, model="gpt2"),
    # compare
    Control(COMPARE, "selectbox", "w_word", 1),
    Control(COMPARE, "text_input", "w_replacement", "dog"),
    Control(COMPARE, "selectbox", "w_layer", 4, prepare=(("text_input", "w_replacement", "dog"),)),
    Control(COMPARE, "selectbox", "w_head", 2, prepare=(("text_input", "w_replacement", "dog"),)),
    # corpus (its layer and head are the view's, as on the other pages)
    Control(CORPUS, "segmented_control", "w_corpus", "paste"),
    Control(CORPUS, "number_input", "w_corpus_tokens", 32),
    Control(CORPUS, "segmented_control", "w_corpus_mode", "clark"),
    Control(CORPUS, "number_input", "w_corpus_sentences", 5),
    # explain
    Control(
        EXPLAIN, "selectbox", "w_token", 3, start=(("text", "the [MASK] sat ."),), model="bert"
    ),
    Control(EXPLAIN, "slider", "w_graph_threshold", 0.2, model="gpt2"),
    # long context (the needle's controls need a causal model)
    Control(LONG_CONTEXT, "selectbox", "w_sink_measure", "local_share"),
    Control(LONG_CONTEXT, "number_input", "w_sink_epsilon", 0.45),
    Control(LONG_CONTEXT, "number_input", "w_sink_window", 8),
    Control(LONG_CONTEXT, "radio", "w_haystack", "text", model="gpt2"),
    Control(LONG_CONTEXT, "number_input", "w_haystack_tokens", 150, model="gpt2"),
    Control(LONG_CONTEXT, "text_input", "w_needle", "The key is under the stone.", model="gpt2"),
    Control(LONG_CONTEXT, "text_input", "w_question", "Where is the key?", model="gpt2"),
    Control(LONG_CONTEXT, "multiselect", "w_depths", [0.2, 0.8], model="gpt2"),
    Control(
        LONG_CONTEXT,
        "toggle",
        "w_needle_run",
        True,
        start=(("haystack_tokens", "100"), ("depths", "0.5")),
        model="gpt2",
    ),
]


def widget(at: AppTest, kind: str, key: str):
    return getattr(at, kind)(key=key)


def control_id(control: Control) -> str:
    page = control.page.split("/")[-1].removesuffix(".py")
    return f"{page}-{control.key}={control.value}" + (f"-{control.model}" if control.model else "")


@pytest.mark.parametrize("control", CONTROLS, ids=control_id)
def test_every_control_round_trips_through_the_link(control, tiny_model_path):
    query = {"text": TEXT, **dict(control.start)}
    if control.model:
        query["model"] = str(tiny_model_path(control.model))
    at = on_page(control.page, **query)
    for kind, key, value in control.prepare:
        widget(at, kind, key).set_value(value).run()
    widget(at, control.kind, control.key).set_value(control.value).run()
    assert_clean(at)
    assert widget(at, control.kind, control.key).value == control.value

    again = reopen(at, control.page)
    for kind, key, value in control.prepare:
        if widget(again, kind, key).value != value:  # texts like the replacement travel too
            raise AssertionError(f"{key} was not restored from the link {link_of(at)}")
    assert widget(again, control.kind, control.key).value == control.value, link_of(at)


def test_the_second_model_round_trips(tiny_model_path):
    path = str(tiny_model_path("bert"))
    at = on_page(COMPARE, text="the cat sat on the mat")
    choice = at.selectbox(key="w_second_choice")
    choice.set_value(choice.options[-1]).run()
    at.text_input(key="w_second_custom").set_value(path).run()
    assert_clean(at)
    assert at.query_params["second_model"] == path
    again = reopen(at, COMPARE)
    assert again.text_input(key="w_second_custom").value == path
    assert compare_panels(again) == 2


def test_the_model_round_trips(tiny_model_path):
    path = str(tiny_model_path("bert"))
    at = start()
    choice = at.selectbox(key="w_model_choice")
    choice.set_value(choice.options[-1]).run()
    at.text_input(key="w_custom_model").set_value(path).run()
    assert_clean(at)
    again = reopen(at, ATTENTION)
    assert again.text_input(key="w_custom_model").value == path


def test_the_neuron_view_opens_from_the_link(tiny_model_path):
    at = start(model=str(tiny_model_path("bert")), text=TEXT, head=1, neuron=1)
    assert_clean(at)
    assert any("query vector" in chart.proto.spec for chart in at.get("vega_lite_chart"))


# ------------------------------------------------------------------ out of range
# Every bad value is handled by one codec whatever the page, so each page is tried with the
# index parameters it shows; the Attention page, which has the most controls, with all of them.
BAD_VALUES = [
    {"layer": "-1"},
    {"layer": "99"},
    {"layer": "abc"},
    {"head": "99"},
    {"head": "-1"},
    {"head": "www.example.org"},
    {"token": "abc"},
    {"token": "999"},
    {"method": "nope"},
    {"stack": "nope"},
    {"edges": "0"},
    {"threshold": "2"},
    {"rows": "1,999"},
    {"scale": "loud"},
    {"hide_special": "maybe"},
    {"top_k": "0"},
    {"generate": "99"},
    {"word": "99"},
    {"mask": "999"},
]
PAGE_VALUES = {
    ATTENTION: BAD_VALUES,
    OVERVIEW: [{"layer": "-1"}, {"head": "99"}, {"stack": "decoder"}],
    MASKED: [{"layer": "99"}, {"head": "-1"}, {"mask": "999"}, {"top_k": "11"}],
    COMPARE: [{"layer": "-1"}, {"head": "99"}, {"word": "99"}, {"scale": "loud"}],
}
CASES = [(page, query) for page, values in PAGE_VALUES.items() for query in values]


def case_id(case) -> str:
    page, query = case
    return (
        page.split("/")[-1].removesuffix(".py")
        + "-"
        + "&".join(f"{k}={v}" for k, v in query.items())
    )


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_out_of_range_link_values_are_explained(case):
    page, query = case
    at = start(page, text="The cat sat on the [MASK] mat.", **query)
    assert_clean(at)
    assert not at.error
    warnings = " ".join(w.value for w in at.warning)
    (key,) = query
    assert key in warnings.lower().replace("\\", ""), warnings
    # The page is drawn after the fallback.
    assert at.get("vega_lite_chart") or at.info or explorer_drawn(at) or head_grid_drawn(at)


def test_compare_with_a_negative_layer_then_a_replacement():
    """Issue 12, item 6: `/compare?layer=-1`, then typing a replacement, raised an exception."""
    at = start(COMPARE, layer=-1)
    assert any("Layer -1 does not exist" in w.value for w in at.warning)
    at.text_input(key="w_replacement").set_value("dog").run()
    assert_clean(at)
    assert at.selectbox(key="w_layer").value == 0
    assert compare_panels(at) == 3


def test_legacy_stack_names_still_open(tiny_model_path):
    at = start(model=str(tiny_model_path("bart")), text=TEXT, stack="decoder")
    assert_clean(at)
    assert not at.warning
    assert at.segmented_control(key="w_stack").value == "decoder_self"


def test_a_text_too_long_for_a_link_says_so():
    text = "word " * 400  # 2,000 characters
    at = start(text=text)
    assert_clean(at)
    assert "text" not in at.query_params
    assert any("too long for a link" in c.value for c in at.caption)
    assert any(b.label == "Download this view" for b in at.get("download_button"))
