"""The Corpus page in the real app (AppTest): a run on a tiny model, Stop and resume, uploads,
and in public mode a visitor's own corpus kept private and deleted on request."""

from __future__ import annotations

import pytest
import streamlit as st

from core import load_model
from core.corpus import CorpusStore, bundled_corpus, run_corpus
from tests.pages.conftest import assert_clean, start

CORPUS = "pages/corpus.py"
SENTENCES = 6
TOKENS = 16


@pytest.fixture
def store(tmp_path, monkeypatch):
    path = tmp_path / "corpus.duckdb"
    monkeypatch.setenv("ATLAS_CORPUS_STORE", str(path))
    return path


def open_corpus_page(model_path) -> object:
    at = start(CORPUS, model=str(model_path), corpus_sentences=SENTENCES, corpus_tokens=TOKENS)
    assert_clean(at)
    return at


def test_a_run_fills_the_head_table_and_an_example_opens_on_attention(store, tiny_model_path):
    path = tiny_model_path("bert")
    at = open_corpus_page(path)
    assert at.button(key="corpus_start").label == "Run"
    at.button(key="corpus_start").click().run()
    assert_clean(at)
    assert not at.error
    table = at.dataframe(key="corpus_heads").value
    model = load_model(str(path))
    assert len(table) == model.num_layers * model.num_heads
    assert (table["sentences"] == SENTENCES).all()
    assert {"to_previous", "to_previous ±", "labels"} <= set(table.columns)
    assert any("measured" in c.value.lower() for c in at.caption)
    # The link carries the corpus settings.
    assert at.query_params["corpus_sentences"] == str(SENTENCES)
    assert at.query_params["corpus_tokens"] == str(TOKENS)

    at.selectbox(key="w_layer").set_value(1).run()
    at.selectbox(key="w_head").set_value(1).run()
    assert at.query_params["layer"] == "1"
    at.button(key="corpus_example_0").click().run()
    assert_clean(at)
    assert at.title[0].value == "Attention"
    assert at.selectbox(key="w_layer").value == 1
    assert at.text_area(key="w_text").value in bundled_corpus("austen")[:SENTENCES]


def test_a_stopped_run_resumes(store, tiny_model_path):
    path = tiny_model_path("bert")
    model = load_model(str(path))
    sentences = bundled_corpus("austen")[:SENTENCES]
    stopped = run_corpus(
        model, sentences, max_tokens=TOKENS, store=store, batch_size=2, progress=lambda *a: False
    )
    assert 0 < stopped.done < SENTENCES

    at = open_corpus_page(path)
    assert any(f"{stopped.done} of {SENTENCES}" in i.value for i in at.info)
    assert at.dataframe(key="corpus_heads").value["sentences"].max() == stopped.done
    resume = at.button(key="corpus_start")
    assert resume.label == "Resume"
    resume.click().run()
    assert_clean(at)
    assert (at.dataframe(key="corpus_heads").value["sentences"] == SENTENCES).all()
    # The head opens with its most typical sentence.
    at.button(key="corpus_open").click().run()
    assert_clean(at)
    assert at.title[0].value == "Attention"
    assert at.text_area(key="w_text").value in sentences


def test_a_bad_upload_gets_a_clear_message(store, tiny_model_path):
    at = open_corpus_page(tiny_model_path("bert"))
    at.segmented_control(key="w_corpus").set_value("upload").run()
    upload = at.get("file_uploader")[0]
    upload.set_value(("corpus.jsonl", b'{"sentence": "no text field"}\n', "application/json"))
    at.run()
    assert_clean(at)
    assert any('no "text" field' in e.value for e in at.error)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[" * 100_000, "nested too deeply"),
        (b'{"text": "a", "n": ' + b"9" * 5000 + b"}", "digits"),
    ],
    ids=["deep", "huge-number"],
)
def test_a_deep_or_huge_json_upload_gets_one_line(store, tiny_model_path, content, message):
    """Issue 24: these raised RecursionError / ValueError into an exception box."""
    at = open_corpus_page(tiny_model_path("bert"))
    at.segmented_control(key="w_corpus").set_value("upload").run()
    at.get("file_uploader")[0].set_value(("deep.jsonl", content, "application/json"))
    at.run()
    assert_clean(at)
    [error] = [e.value for e in at.error if "deep.jsonl" in e.value]
    assert message in error and "\n" not in error and "Line 1 of deep.jsonl" in error


def test_public_mode_caps_the_sentences_and_says_so(store, tiny_model_path, monkeypatch):
    path = str(tiny_model_path("bert"))
    monkeypatch.setenv("ATLAS_PUBLIC", "1")
    monkeypatch.setenv("ATLAS_ALLOWED_MODELS", path)
    monkeypatch.setenv("ATLAS_MAX_CORPUS_SENTENCES", "4")
    st.cache_resource.clear()  # models are cached under the policy they were loaded with
    try:
        at = open_corpus_page(path)
        count = at.number_input(key="w_corpus_sentences")
        assert (count.value, count.max) == (4, 4)
        assert any("public deployment measures at most 4 sentences" in c.value for c in at.caption)
    finally:
        st.cache_resource.clear()


def _public(monkeypatch, path: str) -> None:
    monkeypatch.setenv("ATLAS_PUBLIC", "1")
    monkeypatch.setenv("ATLAS_ALLOWED_MODELS", path)
    st.cache_resource.clear()  # models are cached under the policy they were loaded with


def _paste(at, text: str):
    at.segmented_control(key="w_corpus").set_value("paste").run()
    at.text_area(key="corpus_paste").set_value(text).run()
    assert_clean(at)
    return at


def _stored_caption(at) -> bool:
    return any("stored, so it reopens" in c.value for c in at.caption)


def test_a_pasted_corpus_is_the_visitors_alone_and_deleted_when_asked(
    store, tiny_model_path, monkeypatch
):
    path = str(tiny_model_path("bert"))
    _public(monkeypatch, path)
    # Random letters: DuckDB stores them verbatim, so the file shows whether they are gone.
    secret = ["Qx7vLp2m Zr9tKw4b Hy3nJd8s Fc6gMq1x", "Wb5kTz0r Ns2yVh7p Lm4dXq9c Gj8fRt3w"]
    try:
        alice = _paste(open_corpus_page(path), "\n".join(secret))
        alice.button(key="corpus_start").click().run()
        assert_clean(alice)
        assert _stored_caption(alice)

        # Another visitor pasting the exact text is not told it was run before.
        bob = _paste(open_corpus_page(path), "\n".join(secret))
        assert not _stored_caption(bob)
        assert bob.button(key="corpus_start").label == "Run"
        CorpusStore(store).release()
        assert secret[0].encode() in store.read_bytes()

        # A bundled corpus's run is shared.
        alice.segmented_control(key="w_corpus").set_value("austen").run()
        alice.button(key="corpus_start").click().run()
        assert_clean(alice)
        bob.segmented_control(key="w_corpus").set_value("austen").run()
        assert _stored_caption(bob)

        alice.button(key="corpus_delete").click().run()
        assert_clean(alice)
        assert any("Deleted 1 corpus run" in s.value for s in alice.success)
        CorpusStore(store).release()
        assert secret[0].encode() not in store.read_bytes()
        _paste(alice, "\n".join(secret))
        assert not _stored_caption(alice)
        bob.run()
        assert _stored_caption(bob)  # the shared run stayed
    finally:
        st.cache_resource.clear()


def test_a_private_install_has_no_delete_control(store, tiny_model_path):
    at = open_corpus_page(tiny_model_path("bert"))
    assert not [b for b in at.button if b.key == "corpus_delete"]
