"""Hostile inputs straight into `core`: each one gives a result or a typed, readable error.

"Readable" means an `AtlasError` (the UI shows `str(error)` as is); anything else would reach a
visitor as a traceback. The same inputs go through the real app in
tests/pages/test_hostile_inputs.py.
"""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
from transformers import CLIPConfig, CLIPModel, ResNetConfig

from core import (
    AtlasError,
    EmptyReplacementError,
    EmptyTextError,
    InvalidModelNameError,
    ModelNotFoundError,
    NoMaskError,
    NotAModelError,
    OfflineError,
    PositionOutOfRangeError,
    TruncationWarning,
    UnsupportedModelError,
    compare_replacement,
    load_model,
    predict_masked,
    run_attention,
)
from tests.fake_hub import serve_fake_hub

TEXTS = {
    "single character": "a",
    "only punctuation": "?!.,;:…—()[]{}''\"\"",
    "emoji": "I love 🍕🔥 and 👩‍👩‍👧 so much",
    "CJK": "猫がマットの上に座った。我爱北京天安门",
    "Arabic (right-to-left)": "جلست القطة على السجادة لأنها كانت متعبة",
    "mixed directions": "The word قطة means cat",
    "combining characters": "e\u0301\u0301\u0301 Z̷̢a̶l̸g̵o̴ text",
    "control characters and NUL": "hello\x00world\x07\x1b[31m red",
    "bidi override": "abc \u202edef\u202c ghi",
    "lone surrogate": "bad \ud800 char",
    "HTML": "<b>bold</b> <img src=x onerror=alert(1)>",
    "script tag": "<script>alert('x')</script>",
    "template and quotes": "${alert(1)} {{x}} 'single' \"double\" `tick`",
    "one 5000-letter word": "x" * 5000,
    "mask glued to a word": "cat[MASK]",
    "both mask spellings": "The [MASK] sat on the <mask>.",
    "special tokens of another family": "<s> </s> <pad>",
}
EMPTY_TEXTS = {
    "empty": "",
    "spaces only": "   ",
    "other spaces": "\u00a0\u2003\u3000",
    "line breaks and tabs": "\n\n\t\r\n",
}
# Inputs the BERT tokenizer reads as nothing at all (stripped or special).
UNREADABLE_FOR_BERT = {
    "typed special tokens": "[CLS] [SEP] [PAD]",
    "only control characters": "\x00\x01\x02\x7f",
    "only zero-width characters": "\u200b\u200b\ufeff",
}


@pytest.fixture(scope="module", params=["embedded", "bert", "roberta", "albert"])
def model(request, embedded, loaded_tiny):
    return embedded if request.param == "embedded" else loaded_tiny(request.param)


def assert_valid(result, text):
    n = len(result.tokens)
    assert result.attentions.shape[2:] == (n, n)
    assert np.isfinite(result.attentions).all()
    np.testing.assert_allclose(result.attentions.sum(-1), 1.0, atol=1e-4)
    assert all(isinstance(label, str) and label for label in result.labels)


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_odd_texts_are_analysed(model, text):
    assert_valid(run_attention(model, text), text)


@pytest.mark.parametrize("text", EMPTY_TEXTS.values(), ids=EMPTY_TEXTS.keys())
def test_empty_texts_say_so(model, text):
    with pytest.raises(EmptyTextError, match="empty"):
        run_attention(model, text)


@pytest.mark.parametrize("text", UNREADABLE_FOR_BERT.values(), ids=UNREADABLE_FOR_BERT.keys())
def test_texts_with_nothing_to_read_say_so(embedded, text):
    with pytest.raises(EmptyTextError, match="no words the model can read"):
        run_attention(embedded, text)


def test_markup_stays_text(loaded_tiny):
    # Token texts are the characters typed, never HTML-escaped or stripped.
    result = run_attention(loaded_tiny("bert"), "<script>alert('x')</script>")
    assert result.labels[1:4] == ["<", "script", ">"]
    assert result.labels.count("'") == 2


def test_a_lone_surrogate_becomes_a_replacement_character(embedded):
    result = run_attention(embedded, "bad \ud800 char", "and \udfff")
    assert result.text == "bad \ufffd char"
    assert result.text_pair == "and \ufffd"


@pytest.mark.parametrize(
    ("text", "kept"),
    [("word " * 2000, 512), (" ".join(["cat"] * 600), 512)],
    ids=["10,000 characters", "600 tokens of one word"],
)
def test_long_input_is_truncated_and_reported(embedded, text, kept):
    with pytest.warns(TruncationWarning, match="tokens were dropped"):
        result = run_attention(embedded, text)
    assert len(result.tokens) == kept
    assert result.dropped_tokens == len(text.split()) + 2 - kept


# ---------------------------------------------------------------- masks
@pytest.fixture(scope="module")
def mlm(loaded_tiny):
    return loaded_tiny("roberta")


@pytest.mark.parametrize(
    ("text", "masks"),
    [
        ("The cat sat on the [MASK].", 1),
        (" ".join(["[MASK]"] * 40), 40),
        ("cat[MASK]", 1),
        ("The [MASK] sat on the <mask>.", 2),
        ("the [mask] sat", 1),
        ("[MASK]", 1),
    ],
    ids=["one", "forty", "glued", "both spellings", "lower case", "only a mask"],
)
def test_masks_in_any_form_are_predicted(mlm, text, masks):
    predictions = predict_masked(mlm, text, top_k=3)
    assert len(predictions) == masks
    assert all(len(p) == 3 and 0 <= p[0].score <= 1 for p in predictions)


def test_no_mask_says_how_to_write_one(mlm):
    with pytest.raises(NoMaskError, match=r"\[MASK\]"):
        predict_masked(mlm, "no mask here")


@pytest.mark.parametrize("position", [-1, 0, 99])
def test_mask_position_out_of_range_or_special(mlm, position):
    with pytest.raises(PositionOutOfRangeError):
        predict_masked(mlm, "the cat sat", position=position)


# ---------------------------------------------------------------- replacements
TEXT = "The cat sat on the mat."


@pytest.mark.parametrize("replacement", ["", "   ", "\t\n"])
def test_empty_replacement(model, replacement):
    with pytest.raises(EmptyReplacementError):
        compare_replacement(model, TEXT, 1, replacement)


@pytest.mark.parametrize(
    "replacement",
    ["a big fluffy dog with a hat", "<script>alert(1)</script>", "🍕", "[MASK]", "x" * 3000],
)
def test_odd_replacements_are_compared(model, replacement):
    comparison = compare_replacement(model, TEXT, 1, replacement)
    units = len(comparison.alignment.labels)
    assert comparison.difference.shape[2:] == (units, units)
    assert np.isfinite(comparison.difference).all()


def test_the_same_word_changes_nothing(model):
    comparison = compare_replacement(model, TEXT, 1, "cat")
    np.testing.assert_allclose(comparison.difference, 0.0, atol=1e-6)


@pytest.mark.parametrize("replacement", ["\x00", "\u200b", "\u200b\x00 \u200b"])
def test_a_replacement_with_nothing_readable_is_refused(embedded, replacement):
    # Refused by compare_replacement itself, not later when the difference is first read.
    with pytest.raises(EmptyReplacementError, match="no characters the model's tokenizer can"):
        compare_replacement(embedded, TEXT, 1, replacement)


@pytest.mark.parametrize("word", [-1, 7, 10_000])  # words 0-6: The cat sat on the mat .
def test_word_index_out_of_range(embedded, word):
    with pytest.raises(PositionOutOfRangeError):
        compare_replacement(embedded, TEXT, word, "dog")


# ---------------------------------------------------------------- model names
@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("", InvalidModelNameError),
        ("../../etc", NotAModelError),
        ("..", NotAModelError),
        ("/etc/passwd", NotAModelError),
        ("acme/\x00model", InvalidModelNameError),
        ("a" * 300, InvalidModelNameError),
        ("bert-base-uncased; rm -rf /", InvalidModelNameError),
        ("https://evil.example/model", NotAModelError),
        ("[Log in](https://evil.example)", NotAModelError),
    ],
)
def test_hostile_model_names(name, error):
    with pytest.raises(error):
        load_model(name)


def test_a_directory_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(NotAModelError, match=r"config\.json"):
        load_model(str(tmp_path))


def test_a_local_vision_model_is_not_a_text_transformer(tmp_path):
    ResNetConfig(architectures=["ResNetModel"]).save_pretrained(tmp_path)
    with pytest.raises(UnsupportedModelError, match="not a transformer that reads text"):
        load_model(str(tmp_path))


def test_a_model_that_wants_other_inputs_fails_with_a_message(tiny_model_path, tmp_path):
    # CLIP has a text tower (so its config passes) but its forward pass also wants pixels.
    config = CLIPConfig(
        text_config={
            "vocab_size": 30522,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 77,
            "bos_token_id": 101,
            "eos_token_id": 102,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(tmp_path)
    for file in tiny_model_path("bert").glob("tokenizer*"):
        shutil.copy(file, tmp_path)
    model = load_model(str(tmp_path))
    with pytest.raises(UnsupportedModelError, match="could not run on this text"):
        run_attention(model, "a photo of a cat")


def test_network_unavailable(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on port 9
    with pytest.raises(OfflineError, match="not reachable"):
        load_model("acme/some-model")


def test_hub_offline_mode():
    with pytest.raises(OfflineError, match="embedded model"):
        load_model("no-such-user/no-such-model-xyz")


@pytest.fixture
def hub(monkeypatch, tmp_path):
    vision = ResNetConfig(architectures=["ResNetForImageClassification"]).to_json_string()
    with serve_fake_hub({"acme/resnet": {"config.json": vision.encode()}}) as server:
        server.activate(monkeypatch, tmp_path)
        yield server


def test_a_hub_id_that_does_not_exist(hub):
    with pytest.raises(ModelNotFoundError, match="no model 'nobody/nothing'"):
        load_model("nobody/nothing")


def test_a_hub_model_that_is_not_a_text_transformer(hub):
    with pytest.raises(UnsupportedModelError, match="resnet model"):
        load_model("acme/resnet")
    # Refused from its config alone: no tokenizer, no weights fetched.
    assert all(path.endswith("config.json") or "/api/" in path for path in hub.requests)


def test_every_failure_above_is_an_atlas_error():
    # The UI catches AtlasError; a subclass check here keeps the sweep honest if errors move.
    for error in (
        EmptyTextError,
        EmptyReplacementError,
        NoMaskError,
        PositionOutOfRangeError,
        InvalidModelNameError,
        NotAModelError,
        ModelNotFoundError,
        OfflineError,
        UnsupportedModelError,
    ):
        assert issubclass(error, AtlasError)


@pytest.fixture(autouse=True)
def _no_warning_noise():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        yield
