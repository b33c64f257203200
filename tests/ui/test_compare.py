"""The Compare page's explorer payloads (`ui.compare`): before, after and difference linked
through the word units, the difference on its own symmetric scale (max-|Δ| pooled at length),
causal cells empty everywhere, and the difference export equal to what is shown."""

import io
import json

import numpy as np
import pandas as pd
import pytest

import ui.compare
from core import EMBEDDED_MODEL, compare_replacement, load_model, run_attention
from ui import exports
from ui.cache import Inputs
from ui.explorer.payload import decode_codes, decode_values, pack_compare, unpack_compare
from ui.state import ViewState

TEXT = "The cat sat on the mat."


@pytest.fixture(scope="module")
def embedded():
    return load_model(EMBEDDED_MODEL)


@pytest.fixture(scope="module")
def gpt2(tiny_model_path):
    return load_model(str(tiny_model_path("gpt2")))


@pytest.fixture(scope="module")
def comparison(embedded):
    return compare_replacement(embedded, TEXT, 1, "hippopotamus")


def view(**options) -> ViewState:
    return ViewState(page="compare", **options)


def shown(panel: dict) -> np.ndarray:
    """The matrix the browser draws first: its float16 (NaN: empty)."""
    return decode_values(panel["exact"], panel["shape"][1:])


def layers_of(data: dict) -> np.ndarray:
    """`[layers, heads, q, k]` of an exported JSON (`core.attention_json`)."""
    layers = data["attention_data"]["layers"]
    return np.array([[h["attention"] for h in layer["heads"]] for layer in layers], dtype=float)


def test_before_after_and_difference_are_linked_through_the_word_units(comparison):
    payload = ui.compare.replacement_payload(comparison, view(), 2, 3)
    before, after, difference = payload["panels"]
    assert payload["compare"]["link"] == "words"
    assert [p["shape"][1] for p in payload["panels"]] == [9, 12, 9]
    assert [p["names"] for p in payload["panels"]] == [[*map(str, range(12)), "mean"]] * 3
    assert {p["head"] for p in payload["panels"]} == {3}
    # The pieces of "hippopotamus" all map to the replaced unit, which maps back to the first.
    replaced = comparison.alignment.replaced
    pieces = comparison.alignment.after[replaced]
    assert {after["rowUnit"][p] for p in pieces} == {replaced}
    assert after["unitRow"][replaced] == pieces[0]
    # "mat" is row 6 before, 9 after (3 more pieces), unit 6 of the difference.
    assert before["rows"][6] == "mat" and after["rows"][9] == "mat"
    assert after["unitRow"][before["rowUnit"][6]] == 9
    assert difference["unitRow"][before["rowUnit"][6]] == 6
    # Word pieces marked as on the Attention page; the difference's units are whole words.
    assert after["rows"][3].startswith("##") and "cat→hippopotamus" in difference["rows"]
    # The whole layer travels: every head's difference is `difference_for` of that head.
    decoded = decode_codes(difference)
    for head in (0, 7):
        expected = comparison.difference_for(2, head)
        np.testing.assert_allclose(decoded[head], expected, atol=np.abs(expected).max() / 120)
    np.testing.assert_allclose(shown(difference), comparison.difference_for(2, 3), atol=2e-3)
    # One message, as the component sends it.
    assert unpack_compare(pack_compare(payload))["panels"][2]["title"].startswith("Difference")


def test_the_difference_has_its_own_symmetric_scale(comparison):
    payload = ui.compare.replacement_payload(comparison, view(), 2, "mean")
    before, after, difference = payload["panels"]
    assert difference["signed"] and not before["signed"]
    # Before and after share one top; the difference's is the largest |change| of the layer.
    assert (
        before["shared"]
        == after["shared"]
        == pytest.approx(
            max(np.nanmax(decode_codes(before)), np.nanmax(decode_codes(after))), rel=1e-6
        )
    )
    layer = comparison.layer_difference(2)
    assert difference["shared"] == pytest.approx(
        max(np.abs(layer).max(), np.abs(comparison.difference_for(2, None)).max()), rel=1e-6
    )
    assert difference["shared"] < before["shared"]
    assert difference["scaleNames"]["shared"].startswith("±")  # the legend: −top…0…top
    assert difference["scaleNames"]["fixed"] == "fixed ±1"
    assert any("colour-blind safe" in note for note in difference["notes"])


def test_a_long_difference_is_max_abs_pooled_and_keeps_a_single_change(comparison, monkeypatch):
    monkeypatch.setattr(ui.compare, "MAX_TOKENS", 4)
    # One change in one cell of one head: a mean over its block would wash it out.
    layer = np.zeros((12, 9, 9))
    layer[5, 7, 2] = -0.03
    monkeypatch.setattr(type(comparison), "layer_difference", lambda self, *a, **k: layer)
    monkeypatch.setattr(
        type(comparison), "difference_for", lambda self, *a, **k: layer.mean(axis=0)
    )
    payload = ui.compare.replacement_payload(comparison, view(), 2, 5)
    before, _, difference = payload["panels"]
    assert difference["shape"] == [13, 4, 4]
    values = shown(difference)
    assert np.count_nonzero(values) == 1 and values.min() == pytest.approx(-0.03, rel=1e-3)
    assert any("max-|Δ| pooled" in note for note in difference["notes"])
    assert difference["shared"] == pytest.approx(0.03)
    # Before and after are mean pooled, and say so; rows of blocks still link.
    assert before["shape"][1:] == [4, 4] and any("mean pooled" in n for n in before["notes"])
    assert len(before["rowUnit"]) == 4 and before["rows"][0].startswith("[CLS]…")


def test_causal_cells_are_empty_in_every_panel(gpt2):
    causal = compare_replacement(gpt2, "the cat sat on the mat", 1, "dog")
    payload = ui.compare.replacement_payload(causal, view(), 0, "mean")
    for panel in payload["panels"]:
        values = decode_codes(panel)
        n = values.shape[-1]
        later = np.triu(np.ones((n, n), dtype=bool), 1)
        assert np.isnan(values[:, later]).all(), panel["title"]
        assert np.isfinite(values[:, ~later]).all(), panel["title"]


def test_two_models_are_linked_by_characters_and_keep_causal_cells_empty(embedded, gpt2):
    text = "the cat sat on the mat"
    named = [("bert", run_attention(embedded, text)), ("gpt2", run_attention(gpt2, text))]
    payload = ui.compare.models_payload(named, view(), 0, "mean")
    bert, gpt2 = payload["panels"]
    assert payload["compare"]["link"] == "characters"
    heads = min(result.num_heads for _, result in named)
    assert bert["names"] == gpt2["names"] == [*map(str, range(heads)), "mean"]
    # Each "mean" is of all its model's heads, and the panel says how many (the title's count).
    assert [panel["meanOf"] for panel in (bert, gpt2)] == [r.num_heads for _, r in named]
    for panel, (_, result) in zip((bert, gpt2), named, strict=True):
        mean = decode_codes(panel)[-1]
        expected = result.attentions[0].mean(axis=0)
        shown = np.isfinite(mean)
        np.testing.assert_allclose(mean[shown], expected[shown], atol=2 / 255)
    values = decode_codes(gpt2)
    n = values.shape[-1]
    assert np.isnan(values[:, np.triu(np.ones((n, n), dtype=bool), 1)]).all()
    assert np.isfinite(decode_codes(bert)).all()
    # "sat" in BERT finds "sat" (or the piece starting it) in GPT-2.
    sat = bert["rows"].index("sat")
    assert gpt2["rows"][gpt2["unitRow"][bert["rowUnit"][sat]]].lstrip("#Ġ ").startswith("s")


def test_without_the_first_token_the_export_is_the_shown_difference(comparison, monkeypatch):
    monkeypatch.setattr("ui.cache.comparison", lambda *args: comparison)
    payload = ui.compare.replacement_payload(comparison, view(without_first=True), 2, 4)
    difference = payload["panels"][2]
    assert any("without the first token" in note for note in difference["notes"])
    prov = exports.provenance(view(), Inputs("m", TEXT), method="difference")
    data = json.loads(
        exports.difference_data(Inputs("m", TEXT), 1, "hippopotamus", prov, True, "json")
    )
    exported = layers_of(data)
    assert exported.shape == (6, 12, 9, 9)
    np.testing.assert_allclose(exported[2, 4], shown(difference), atol=2e-3, equal_nan=True)
    assert np.isnan(exported[2, 4][:, 0]).all()  # the first token's column: left out
    # The CSV holds the same numbers; without the option, the untransformed difference.
    csv = exports.difference_data(Inputs("m", TEXT), 1, "hippopotamus", prov, True, "csv")
    table = pd.read_csv(io.StringIO(csv), comment="#")
    cells = table[(table["layer"] == 2) & (table["head"] == 4)]
    np.testing.assert_allclose(cells["weight"].to_numpy(), exported[2, 4].reshape(-1), atol=1e-6)
    plain = json.loads(
        exports.difference_data(Inputs("m", TEXT), 1, "hippopotamus", prov, False, "json")
    )
    np.testing.assert_allclose(layers_of(plain), comparison.difference, atol=1e-6)


def test_hidden_special_tokens_and_a_pairs_sentence_b_in_every_panel(embedded):
    pair = compare_replacement(embedded, "The cat sat.", 1, "hippopotamus")
    payload = ui.compare.replacement_payload(pair, view(hide_special=True), 1, "mean")
    before, after, difference = payload["panels"]
    for panel in payload["panels"]:
        assert "[CLS]" not in panel["rows"] and "[SEP]" not in panel["rows"]
    assert before["rows"] == ["the", "cat", "sat", "."]
    assert difference["rows"] == ["the", "cat→hippopotamus", "sat", "."]
    # Rows still link: "sat" is row 2 before, 5 after (4 pieces), unit row 2 of the difference.
    assert after["rows"][5] == "sat" and after["unitRow"][before["rowUnit"][2]] == 5
    assert difference["unitRow"][before["rowUnit"][2]] == 2
    # Before and after renormalise over the tokens shown; the difference says it does not.
    np.testing.assert_allclose(np.nansum(decode_codes(before)[-1], axis=-1), 1.0, atol=1e-2)
    assert any("special tokens hidden" in note for note in difference["notes"])


def test_a_pairs_sentence_b_is_marked_in_both_models(embedded):
    result = run_attention(embedded, "The cat sat.", "It was warm.")
    payload = ui.compare.models_payload([("a", result), ("b", result)], view(), 0, 1)
    first_b = next(i for i, t in enumerate(result.tokens) if t.segment == 1)
    assert [p["segB"] for p in payload["panels"]] == [first_b, first_b]
    # The same tokenizer: every row links to itself.
    assert payload["panels"][1]["unitRow"][payload["panels"][0]["rowUnit"][first_b]] == first_b


def test_keys_outside_a_sliding_window_are_empty_before_and_after(tiny_model_path):
    mistral = load_model(str(tiny_model_path("mistral")))
    text = "the cat sat on the mat and the dog sat on the rug by the door"
    # (The tiny tokenizer reads the text as one word: word 0 is all of it.)
    comparison = compare_replacement(mistral, text, 0, "a hippopotamus sat on the mat all day")
    window = comparison.before.window(0)
    assert window is not None and window < len(comparison.before.tokens)
    before, after, _ = ui.compare.replacement_payload(comparison, view(), 0, "mean")["panels"]
    for panel in (before, after):
        values = decode_codes(panel)
        n = values.shape[-1]
        q, k = np.indices((n, n))
        outside = (k > q) | (q - k >= window)
        assert outside.any() and np.isnan(values[:, outside]).all()
        assert np.isfinite(values[:, ~outside]).all()
