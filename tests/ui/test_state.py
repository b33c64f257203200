"""The view state's codec: parse, validate, clamp and write links (no Streamlit involved)."""

from __future__ import annotations

import dataclasses

import pytest

import core
from ui.state import (
    DEFAULT,
    MAX_URL_TEXT,
    URL_FIELDS,
    Shape,
    ViewState,
    clamp,
    decode,
    encode,
    from_view_file,
    to_view_file,
)

SHAPE = Shape(
    layers=6,
    heads=12,
    tokens=10,
    stacks=("self",),
    methods=core.method_names(),
    words=(0, 1, 2),
    maskable=(1, 2, 3),
)
# A value other than the default for every field carried in the link.
CHANGED = ViewState(
    model="bert-base-uncased",
    text="A dog barked.",
    pair="It was loud.",
    target="Un chien.",
    stack="cross",
    layer=3,
    head=7,
    method="rollout",
    token=4,
    hide_special=True,
    merge_words=True,
    scale="fixed",
    log_scale=True,
    without_first=True,
    edges=5,
    threshold=0.25,
    flow_chosen=True,
    rows=(1, 3),
    neuron=True,
    word=2,
    replacement="cat",
    second_model="gpt2",
    mask=3,
    top_k=3,
    generate=4,
    corpus="paste",
    corpus_tokens=32,
    corpus_mode="clark",
    corpus_sentences=50,
    graph_threshold=0.2,
    own_max=True,
    sink_measure="local_share",
    sink_epsilon=0.5,
    sink_window=16,
    haystack="text",
    haystack_tokens=1000,
    needle="The key is under the mat.",
    question="Where is the key?",
    depths=(0.25, 0.75),
    needle_run=True,
    ablate=True,
    ablate_k=3,
    head_measure="first_token_share",
)


def test_every_link_field_round_trips():
    differing = [f for f in URL_FIELDS if getattr(CHANGED, f) == getattr(DEFAULT, f)]
    assert not differing, f"CHANGED must change every field: {differing}"
    view, problems = decode(encode(CHANGED))
    assert problems == []
    assert view == CHANGED


def test_defaults_stay_out_of_the_link():
    assert encode(DEFAULT) == {}
    assert encode(dataclasses.replace(DEFAULT, layer=2)) == {"layer": "2"}


def test_head_choices_parse():
    assert decode({"head": "all"})[0].head == "all"
    assert decode({"head": "5"})[0].head == 5


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"layer": "abc"}, "layer=abc"),
        ({"head": "www.example.org"}, "head=www"),
        ({"method": "nope"}, "method=nope"),
        ({"stack": "nope"}, "stack=nope"),
        ({"hide_special": "maybe"}, "hide\\_special=maybe"),
        ({"threshold": "lots"}, "threshold=lots"),
        ({"scale": "loud"}, "scale=loud"),
        ({"rows": "1,x"}, "rows=x"),
        ({"corpus": "shakespeare"}, "corpus=shakespeare"),
        ({"corpus_mode": "paper"}, "corpus\\_mode=paper"),
        ({"corpus_tokens": "many"}, "corpus\\_tokens=many"),
        ({"sink_measure": "sinkiness"}, "sink\\_measure=sinkiness"),
        ({"depths": "0.1,deep"}, "depths=0.1,deep"),
        ({"sink_epsilon": "big"}, "sink\\_epsilon=big"),
    ],
)
def test_unreadable_values_keep_the_default_and_say_so(params, fragment):
    view, problems = decode(params)
    assert view == DEFAULT
    assert len(problems) == 1 and fragment in problems[0].replace("\u2060", "")


def test_method_names_come_from_the_registry():
    for name in core.method_names():
        assert decode({"method": name})[0].method == name
    assert all(name in decode({"method": "x"})[1][0] for name in core.method_names())


def test_legacy_stack_names_map_to_todays():
    assert decode({"stack": "encoder"})[0].stack == "self"
    assert decode({"stack": "decoder"})[0].stack == "decoder_self"


@pytest.mark.parametrize(
    ("changes", "field", "fallback", "fragment"),
    [
        ({"layer": -1}, "layer", 0, "Layer -1 does not exist"),
        ({"layer": 6}, "layer", 0, "layers 0–5"),
        ({"head": 12}, "head", "mean", "Head 12 does not exist"),
        ({"token": 10}, "token", 0, "Token 10 does not exist"),
        ({"stack": "cross"}, "stack", "self", "stack=cross"),
        ({"rows": (2, 99)}, "rows", (2,), "rows=2,99"),
        ({"edges": 0}, "edges", 1, "edges=0"),
        ({"threshold": 0.9}, "threshold", 0.0, "threshold=0.9"),
        ({"top_k": 11}, "top_k", 5, "top\\_k=11"),
        ({"generate": 21}, "generate", 0, "generate=21"),
        ({"word": 7}, "word", None, "word=7"),
        ({"mask": 0}, "mask", None, "mask=0"),
        ({"corpus_tokens": 2}, "corpus_tokens", 8, "corpus\\_tokens=2"),
        ({"corpus_tokens": 4096}, "corpus_tokens", 512, "corpus\\_tokens=4096"),
        ({"corpus_sentences": 0}, "corpus_sentences", 200, "corpus\\_sentences=0"),
        ({"sink_epsilon": 1.0}, "sink_epsilon", 0.3, "sink\\_epsilon=1.0"),
        ({"sink_window": 0}, "sink_window", 1, "sink\\_window=0"),
        ({"haystack_tokens": 10**6}, "haystack_tokens", 8192, "haystack\\_tokens=1000000"),
        ({"ablate_k": 0}, "ablate_k", 1, "ablate\\_k=0"),
        ({"depths": (0.5, 1.5)}, "depths", (0.1, 0.5, 0.9), "depths=0.5,1.5"),
        ({"depths": (0.5,) * 12}, "depths", (0.1, 0.5, 0.9), "depths=0.5,0.5"),
    ],
)
def test_clamp_falls_back_with_a_message(changes, field, fallback, fragment):
    view, problems = clamp(dataclasses.replace(DEFAULT, **changes), SHAPE)
    assert getattr(view, field) == fallback
    assert len(problems) == 1 and fragment in problems[0]


def test_clamp_leaves_a_valid_view_alone():
    view = dataclasses.replace(DEFAULT, layer=5, head=11, token=9, rows=(0, 9), word=2, mask=3)
    assert clamp(view, SHAPE) == (view, [])


def test_clamp_offers_only_the_stacks_methods():
    shape = dataclasses.replace(SHAPE, stacks=("self", "cross"), methods=("raw",))
    view, problems = clamp(dataclasses.replace(DEFAULT, stack="cross", method="flow"), shape)
    assert (view.stack, view.method) == ("cross", "raw")
    assert "flow is not offered" in problems[0]


def test_a_text_too_long_for_a_link_is_left_out_but_kept_in_a_view_file():
    long = dataclasses.replace(CHANGED, text="x" * MAX_URL_TEXT)
    assert not long.text_in_link()
    assert not {"text", "pair", "target"} & set(encode(long))
    assert encode(long)["layer"] == "3"
    opened, problems = from_view_file(to_view_file(long))
    assert problems == [] and opened == long


@pytest.mark.parametrize("data", [b"not json", b"{}", b"[]", b'{"kind": "other"}', b"\xff"])
def test_a_file_that_is_not_a_view_file_is_refused(data):
    view, problems = from_view_file(data)
    assert view == DEFAULT and problems


def test_the_colour_scale_defaults_per_page():
    assert DEFAULT.colour_scale() == "shared"  # the Attention page: across heads and layers
    assert dataclasses.replace(DEFAULT, page="overview").colour_scale() == "chart"
    assert dataclasses.replace(DEFAULT, page="compare").colour_scale() == "shared"
    assert dataclasses.replace(DEFAULT, page="compare", scale="fixed").colour_scale() == "fixed"
