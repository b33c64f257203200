"""Hostile inputs through the real app (AppTest): a clear message, no traceback, text kept, and
the app still works for the next input.

Each case starts a fresh session, feeds one hostile input the way a visitor would (sidebar text,
replacement box, model box or the URL), checks what the page says, then types an ordinary
sentence (or picks the embedded model again) and checks the three attention views come back.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest
from transformers import BertConfig, ResNetConfig

from core import EMBEDDED_MODEL, AtlasError
from tests.fake_hub import serve_fake_hub
from tests.pages.conftest import (
    APP,
    assert_clean,
    chart_specs,
    compare_explorers,
    compare_panels,
    explorer_drawn,
    explorer_payload,
    start,
)
from ui.deploy import CUSTOM_CHOICE
from ui.explorer import decode_codes

GOOD_TEXT = "A quiet dog slept by the door."
HTML_TEXT = "<script>alert('x')</script> <b>bold</b> <img src=x onerror=alert(1)> ${y} \"q\""


def messages(at: AppTest, kind: str) -> str:
    # Word joiners (U+2060) keep Markdown from linking addresses; they show nothing.
    return " | ".join(element.value for element in at.get(kind)).replace("\u2060", "")


def assert_recovers(at: AppTest) -> None:
    """The next ordinary input works: heatmap and bars of the new sentence, no error."""
    at.text_area(key="w_text").set_value(GOOD_TEXT).run()
    assert_clean(at)
    assert not at.error, messages(at, "error")
    assert explorer_drawn(at)
    assert "quiet" in token_labels(at)


def token_labels(at: AppTest) -> list[str]:
    """Token texts as the charts carry them: JSON string arrays in `tok_*` parameters, and the
    explorer's rows."""
    labels: list[str] = explorer_payload(at)["rows"] if explorer_drawn(at) else []
    for spec in chart_specs(at):
        for param in spec.get("params", []):
            if param["name"].startswith("tok_"):
                labels.extend(param["value"])
    return labels


def walk(node: Any):
    yield node
    for child in getattr(node, "children", {}).values() if hasattr(node, "children") else ():
        yield from walk(child)


def assert_no_raw_html(at: AppTest) -> None:
    """No element renders HTML: no st.html, no Markdown with unsafe_allow_html."""
    for node in walk(at._tree):
        proto = getattr(node, "proto", None)
        assert getattr(node, "type", "") != "html"
        if proto is not None and hasattr(proto, "allow_html"):
            assert not proto.allow_html, f"{node.type} renders HTML: {getattr(node, 'value', '')}"


# ---------------------------------------------------------------- the text box
TEXT_CASES = [
    # (id, text, what the page must say: "charts", or a fragment of an error / warning)
    ("empty", "", ("error", "empty")),
    ("spaces only", "     ", ("error", "empty")),
    ("single character", "a", ("charts", None)),
    ("10,000 characters", "word " * 2000, ("warning", "1490 tokens were dropped")),
    ("600 tokens of one word", " ".join(["cat"] * 600), ("warning", "90 tokens were dropped")),
    ("only punctuation", "?!.,;:…—()[]{}", ("charts", None)),
    ("typed special tokens", "[CLS] [SEP] [PAD]", ("error", "no words the model can read")),
    ("emoji", "I love 🍕🔥 and 👩‍👩‍👧", ("charts", None)),
    ("CJK", "猫がマットの上に座った。我爱北京", ("charts", None)),
    ("Arabic", "جلست القطة على السجادة", ("charts", None)),
    ("combining characters", "e\u0301\u0301\u0301 Z̷̢a̶l̸g̵o̴", ("charts", None)),
    ("control characters and NUL", "hello\x00world\x07\x1b[31m red", ("charts", None)),
    ("only control characters", "\x00\x01\x02\x7f", ("error", "no words the model can read")),
    ("only zero-width characters", "\u200b\ufeff", ("error", "no words the model can read")),
    ("bidi override", "abc \u202edef\u202c ghi", ("charts", None)),
    ("HTML and script", HTML_TEXT, ("charts", None)),
    ("mask glued to a word", "cat[MASK] sat", ("charts", None)),
]


@pytest.fixture(scope="module")
def session():
    """One visitor's session shared by a module's cases, as one visitor would try them in turn.

    Created on first use, inside a test, so the navigation-mode patch of conftest is active.
    """
    holder: dict[str, AppTest] = {}

    def get() -> AppTest:
        if "at" not in holder:
            holder["at"] = start()
        return holder["at"]

    return get


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in TEXT_CASES], ids=[c[0] for c in TEXT_CASES]
)
def test_hostile_text(session, text, expected):
    at = session()
    at.text_area(key="w_text").set_value(text).run()
    assert_clean(at)
    kind, fragment = expected
    if kind == "charts":
        assert not at.error, messages(at, "error")
        assert explorer_drawn(at)
    else:
        assert fragment in messages(at, kind), messages(at, kind)
    # What the visitor typed is still there to fix.
    assert at.text_area(key="w_text").value == text
    assert_no_raw_html(at)
    assert_recovers(at)


def test_markup_reaches_the_charts_as_plain_strings():
    at = start()
    at.text_area(key="w_text").set_value(HTML_TEXT).run()
    assert_clean(at)
    labels = token_labels(at)
    for token in ["<", "script", ">", "alert", "b", "$", "{", '"']:
        assert token in labels, token
    assert not any("&lt;" in label or "&gt;" in label for label in labels)  # not pre-escaped
    for spec in chart_specs(at):
        text = json.dumps(spec)
        # Labels are looked up by position in Vega expressions, never spliced into them.
        for expression in _values_of(spec, "labelExpr"):
            assert "script" not in expression and "alert" not in expression
        assert "alert('x')" not in text.replace("\\u0027", "'")
    # The numbers travel as bytes only (8-bit codes, float16); labels are drawn as text on
    # canvases.
    payload = explorer_payload(at)
    assert all(isinstance(payload[k], bytes | None) for k in ("codes", "scales", "exact"))
    assert_no_raw_html(at)


def _values_of(node: Any, key: str):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from _values_of(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from _values_of(item, key)


def test_selecting_a_markup_token_keeps_it_text():
    at = start(text="<b>bold</b>", token=1)
    assert_clean(at)
    assert at.selectbox(key="w_token").value == 1
    assert "<" in token_labels(at)
    assert_no_raw_html(at)


# ---------------------------------------------------------------- masks
@pytest.fixture
def masked(tiny_model_path):
    def open_masked(text: str) -> AppTest:
        at = start(model=tiny_model_path("roberta"), text=text)
        at.switch_page("pages/masked.py").run()
        assert_clean(at)
        return at

    return open_masked


@pytest.mark.parametrize(
    ("text", "masks"),
    [
        ("the cat sat on the mat", 0),
        ("the cat sat on the [MASK]", 1),
        (" ".join(["[MASK]"] * 12), 12),
        ("the cat[MASK] sat", 1),
        ("the [MASK] sat on the <mask>", 2),
    ],
    ids=["no mask", "one mask", "twelve masks", "glued mask", "both spellings"],
)
def test_masks(masked, text, masks):
    at = masked(text)
    assert not at.error, messages(at, "error")
    headings = [h.value for h in at.subheader if h.value.startswith("Mask ")]
    assert len(headings) == masks
    if masks == 0:
        assert "has no [MASK]" in messages(at, "info")
    at.text_area(key="w_text").set_value("the dog sat on the [MASK]").run()
    assert_clean(at)
    assert len([h for h in at.subheader if h.value.startswith("Mask ")]) == 1
    assert not at.error


# ---------------------------------------------------------------- replacements
def on_compare() -> AppTest:
    at = start(text="The cat sat on the mat.")
    at.switch_page("pages/compare.py").run()
    assert_clean(at)
    return at


@pytest.mark.parametrize("replacement", ["", "   "])
def test_empty_replacement_keeps_asking(replacement):
    at = on_compare()
    at.text_input(key="w_replacement").set_value(replacement).run()
    assert_clean(at)
    assert "Type a replacement" in messages(at, "info")
    assert compare_panels(at) == 0


def test_many_words_as_the_replacement():
    at = on_compare()
    at.text_input(key="w_replacement").set_value("big fluffy <b>dog</b> 🍕").run()
    assert_clean(at)
    assert not at.error
    assert compare_panels(at) == 3
    assert at.text_input(key="w_replacement").value == "big fluffy <b>dog</b> 🍕"


def test_the_same_word_as_the_replacement_changes_nothing():
    at = on_compare()
    next(s for s in at.selectbox if s.label == "Word to replace").set_value(1).run()
    at.text_input(key="w_replacement").set_value("cat").run()
    assert_clean(at)
    [explorer] = compare_explorers(at)
    _, after, difference = explorer["panels"]
    assert after["title"] == "After: cat → cat"
    values = decode_codes(difference)
    assert values.size and (abs(values) < 1e-6).all()


@pytest.mark.parametrize("replacement", ["\x00", "\u200b"], ids=["NUL", "zero-width space"])
def test_a_replacement_with_nothing_readable(replacement):
    at = on_compare()
    at.text_input(key="w_replacement").set_value(replacement).run()
    assert_clean(at)
    error = messages(at, "error").replace("\\", "")  # shown Markdown-escaped
    assert "no characters the model's tokenizer can read" in error, error
    assert compare_panels(at) == 0
    assert at.text_input(key="w_replacement").value == replacement
    at.text_input(key="w_replacement").set_value("dog").run()
    assert_clean(at)
    assert not at.error, messages(at, "error")
    assert compare_panels(at) == 3


MARKDOWN_ERROR = "[Log in](https://evil.example/a) ![x](https://evil.example/pixel.png)"


def assert_shown_literally(at: AppTest) -> None:
    error = messages(at, "error")
    assert "\\[Log in\\]\\(https\\://evil.example/a\\)" in error, error
    assert "![x](" not in error, error


def test_compare_page_errors_are_shown_literally(monkeypatch):
    # Messages may quote what a visitor typed, so the page escapes them like the others do.
    def refuse(*args, **kwargs):
        raise AtlasError(MARKDOWN_ERROR)

    monkeypatch.setattr("core.compare_replacement", refuse)
    at = on_compare()
    # A replacement no other test uses, so no cached comparison answers instead.
    at.text_input(key="w_replacement").set_value("escaped-error-check").run()
    assert_clean(at)
    assert_shown_literally(at)


def test_masked_page_errors_are_shown_literally(monkeypatch, tiny_model_path):
    def refuse(*args, **kwargs):
        raise AtlasError(MARKDOWN_ERROR)

    monkeypatch.setattr("core.predict_masked", refuse)
    # A text no other test uses, so no cached prediction answers instead.
    at = start(model=tiny_model_path("roberta"), text="the escaped error check")
    at.switch_page("pages/masked.py").run()
    at.selectbox(key="w_mask").set_value(2).run()
    assert_clean(at)
    assert_shown_literally(at)


# ---------------------------------------------------------------- the URL
@pytest.mark.parametrize(
    "query",
    [
        {"layer": -1},
        {"layer": 10**30},
        {"layer": "1e9999"},
        {"head": -1},
        {"head": "mean; DROP TABLE"},
        {"token": -3},
        {"token": "1.5"},
        {"method": "<script>"},
        {"layer": "", "head": "", "token": ""},
        {"unknown": "x", "layer": "٣"},  # an Arabic-Indic digit: int() reads it as 3
    ],
    ids=lambda q: ",".join(f"{k}={str(v)[:12]}" for k, v in q.items()),
)
def test_malformed_query_parameters(query):
    at = start(**query)
    assert_clean(at)
    assert not at.error, messages(at, "error")
    assert explorer_drawn(at)
    assert_recovers(at)


def test_a_repeated_query_parameter():
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["layer"] = ["2", "zzz"]
    at.run()
    assert_clean(at)
    # The heatmap and the token bars (the line view is the browser head view component).
    assert explorer_drawn(at)


def test_text_in_the_url_with_nothing_to_read():
    at = start(text="\x00\x00")
    assert_clean(at)
    assert "no words" in messages(at, "error")
    assert_recovers(at)


# ---------------------------------------------------------------- models
@pytest.fixture(scope="module")
def model_box():
    """Factory: type a name in the sidebar's model box of one shared session (made on first use)."""
    holder: dict[str, AppTest] = {}

    def type_model(name: str) -> AppTest:
        if "at" not in holder:
            holder["at"] = start()
            holder["at"].selectbox(key="w_model_choice").set_value(CUSTOM_CHOICE).run()
        at = holder["at"]
        at.text_input(key="w_custom_model").set_value(name).run()
        assert_clean(at)
        assert at.text_input(key="w_custom_model").value == name
        return at

    return type_model


def assert_model_recovers(at: AppTest) -> None:
    """Typing a good model after a bad one works again."""
    at.text_input(key="w_custom_model").set_value(EMBEDDED_MODEL).run()
    assert_recovers(at)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("../../etc", "config.json"),
        ("/etc/passwd", "not a directory holding a model"),
        ("a" * 300, "not a valid Hub model id"),
        ("bert-base-uncased; rm -rf /", "not a valid Hub model id"),
        ("no-such-user/no-such-model-xyz", "not reachable"),
    ],
    ids=["path traversal", "a file", "300 characters", "shell syntax", "offline Hub id"],
)
def test_hostile_model_names(model_box, name, fragment):
    at = model_box(name)
    assert fragment in messages(at, "error"), messages(at, "error")
    assert_no_raw_html(at)
    assert_model_recovers(at)


def test_a_model_name_with_markdown_is_shown_literally():
    at = start(model="[Log in](https://evil.example/a/b)")
    assert_clean(at)
    error = messages(at, "error")
    # Escaped, so Markdown shows the brackets instead of drawing a link.
    assert "\\[Log in\\]\\(https\\://evil.example/a/b\\)" in error, error


def test_a_directory_that_is_not_a_model(model_box, tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    at = model_box(str(tmp_path))
    assert "config.json" in messages(at, "error")
    assert_model_recovers(at)


def test_a_vision_model_is_not_a_text_transformer(model_box, tmp_path):
    ResNetConfig(architectures=["ResNetModel"]).save_pretrained(tmp_path)
    at = model_box(str(tmp_path))
    assert "not a transformer that reads text" in messages(at, "error")
    assert_model_recovers(at)


def test_network_unavailable(model_box, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on port 9
    at = model_box("acme/some-model")
    assert "not reachable" in messages(at, "error")
    assert_model_recovers(at)


@pytest.fixture
def hub(monkeypatch, tmp_path):
    repos = {
        "acme/resnet": {"config.json": ResNetConfig().to_json_string().encode()},
        "acme/bert-large": {
            "config.json": BertConfig(
                hidden_size=1024, num_hidden_layers=24, num_attention_heads=16
            )
            .to_json_string()
            .encode()
        },
    }
    with serve_fake_hub(repos) as server:
        server.activate(monkeypatch, tmp_path)
        yield server


def test_a_hub_id_that_does_not_exist(model_box, hub):
    at = model_box("nobody/nothing-here")
    assert "There is no model 'nobody/nothing-here'" in messages(at, "error").replace("\\", "")
    assert_model_recovers(at)


def test_a_hub_model_that_is_not_a_text_transformer(model_box, hub):
    at = model_box("acme/resnet")
    assert "resnet model" in messages(at, "error")
    assert hub.requested_weights() == []
    assert_model_recovers(at)


@pytest.mark.parametrize("key", ["head", "layer", "method", "token"])
def test_url_values_echoed_in_warnings_are_not_markdown(key):
    # Unescaped, `![](…)` makes every visitor's browser fetch an image from another site.
    at = start(**{key: "![x](https://evil.example/pixel.png)"})
    assert_clean(at)
    shown = messages(at, "warning") + messages(at, "error")
    assert "![x](" not in shown, shown


@pytest.mark.parametrize("page", ["pages/overview.py", "pages/masked.py", "pages/compare.py"])
def test_bad_model_shows_an_error_not_a_traceback(page):
    at = start(page, model="no-such-user/no-such-model")
    assert at.error
    assert at.text_area(key="w_text").value
