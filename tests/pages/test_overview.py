"""The Model overview page in the real app (AppTest)."""

from pathlib import Path

import numpy as np
import pytest

from core import EMBEDDED_MODEL, load_model, run_attention, sink_profile
from tests.core.long_context_reference import eager_pass
from tests.pages.conftest import assert_clean, component_payload, on_page, start
from ui.head_grid import COMPONENT_NAME


def grid_payload(at) -> dict:
    return component_payload(at, COMPONENT_NAME)


def test_overview_grid_and_statistics_table():
    at = on_page("pages/overview.py", text="The cat sat on the mat.")
    assert not at.error
    table = at.dataframe[0].value
    assert len(table) == 6 * 12
    assert {"entropy", "to_previous", "to_special"} <= set(table.columns)
    n = len(run_attention(load_model(EMBEDDED_MODEL), "The cat sat on the mat.").tokens)
    grid = grid_payload(at)
    # One canvas of every head: the atlas holds each head whole at this length.
    assert (grid["layers"], grid["heads"], grid["rows"], grid["cols"]) == (6, 12, n, n)
    assert grid["image"].startswith("data:image/png;base64,")
    assert grid["measure"] is None


def test_overview_button_opens_the_head_on_the_attention_page():
    at = on_page("pages/overview.py")
    at.selectbox(key="w_layer").set_value(2)
    at.selectbox(key="w_head").set_value(7)
    at.button[0].click().run()
    assert_clean(at)
    assert at.selectbox(key="w_layer").value == 2
    assert at.selectbox(key="w_head").value == 7


def test_overview_grid_fits_the_page_and_toggles_each_heads_own_maximum():
    at = on_page("pages/overview.py", text="The cat sat on the mat.")
    grid = grid_payload(at)
    assert not grid["legend"]["perHead"]
    at.toggle(key="w_own_max").set_value(True).run()
    assert_clean(at)
    assert at.query_params["own_max"] == "1"
    assert grid_payload(at)["legend"]["perHead"]
    assert grid_payload(at)["image"] != grid["image"]


def test_overview_honours_hide_special():
    at = on_page("pages/overview.py", text="The cat sat on the mat.")
    shown = grid_payload(at)
    at.toggle(key="w_hide_special").set_value(True).run()
    assert_clean(at)
    assert grid_payload(at)["rows"] == shown["rows"] - 2  # [CLS] and [SEP] left out


def test_clicking_a_statistics_row_opens_its_head():
    at = on_page("pages/overview.py", text="The cat sat on the mat.")
    table = at.dataframe[0].value
    row = 2 * 12 + 5
    assert (int(table.iloc[row]["layer"]), int(table.iloc[row]["head"])) == (2, 5)
    at.session_state["head_table"] = {"selection": {"rows": [row], "columns": []}}
    at.run()
    assert_clean(at)
    assert at.selectbox(key="w_layer").value == 2
    assert at.selectbox(key="w_head").value == 5
    assert at.title[0].value == "Attention"


def test_a_click_on_a_thumbnail_opens_its_head_on_the_attention_page():
    at = on_page("pages/overview.py", text="The cat sat on the mat.")
    at.session_state["head_grid"] = {"open": {"layer": 3, "head": 9}}
    at.run()
    assert_clean(at)
    assert at.title[0].value == "Attention"
    assert at.selectbox(key="w_layer").value == 3
    assert at.selectbox(key="w_head").value == 9
    assert at.query_params["layer"] == "3" and at.query_params["head"] == "9"


def test_the_grid_colours_heads_by_their_first_token_share():
    text = "The cat sat on the mat."
    at = on_page("pages/overview.py", text=text)
    at.selectbox(key="w_head_measure").set_value("first_token_share").run()
    assert_clean(at)
    assert at.query_params["head_measure"] == "first_token_share"
    measure = grid_payload(at)["measure"]
    expected = sink_profile(run_attention(load_model(EMBEDDED_MODEL), text))
    np.testing.assert_allclose(
        measure["values"], expected["first_token_share"].to_numpy(), rtol=5e-3, atol=1e-6
    )
    assert measure["threshold"] == 0.3 and (measure["low"], measure["high"]) == (0.0, 1.0)
    assert "first-token share" in measure["name"]
    # Each bar's colour follows its value: the largest share gets the last stop's colour side.
    assert len(set(measure["colours"])) > 1


LONG_LETTER = "Every head of a long letter is measured block by block, never whole. " * 20


@pytest.fixture
def beyond_the_budget(monkeypatch, tiny_model_path):
    """A tiny Llama read with a whole-array budget of 0 bytes, so any text is beyond it, and a
    stack that fails the test if anything builds the whole array. Returns the model's path."""
    import ui.cache
    from core.exact import CapturedStack

    def whole_array_refused(self, budget=None):
        raise AssertionError("the overview built the whole attention array")

    ui.cache.result_store().clear()
    monkeypatch.setattr(ui.cache, "WHOLE_ATTENTION_BYTES", 0)
    monkeypatch.setattr(CapturedStack, "dense", whole_array_refused)
    yield str(tiny_model_path("llama"))
    ui.cache.result_store().clear()


def test_overview_beyond_the_dense_budget_measures_every_head_in_pieces(beyond_the_budget):
    import ui.cache
    from core.head_stats import head_statistics

    at = start("pages/overview.py", model=beyond_the_budget, text=LONG_LETTER)
    assert_clean(at)
    assert not at.error
    model = load_model(beyond_the_budget)
    result = run_attention(model, LONG_LETTER, budget=0)
    n = len(result.tokens)
    assert n > 300
    # The statistics of every head, equal to those of the whole array (a separate run whose
    # whole array is built on purpose, through the dense path).
    table = at.dataframe[0].value
    assert len(table) == result.num_layers * result.num_heads == 8
    ids = [token.token_id for token in result.tokens]
    eager, _ = eager_pass(Path(beyond_the_budget), "llama", ids)
    expected = head_statistics(eager, result.tokens)
    for column in ("entropy", "to_previous", "to_special", "to_self", "to_punctuation"):
        np.testing.assert_allclose(table[column], expected[column], atol=1e-5, err_msg=column)
    np.testing.assert_allclose(table["mean_distance"], expected["mean_distance"], rtol=1e-5)
    # The grid: one thumbnail per head, each the exact pooled overview of its head.
    grid = grid_payload(at)
    assert (grid["layers"], grid["heads"]) == (2, 4)
    captions = " ".join(c.value for c in at.caption)
    assert f"{n:,} tokens, read in pieces" in captions
    assert "Exports of every layer and head need the whole attention array" in captions
    thumbnails = ui.cache.thumbnails(ui.cache.Inputs(beyond_the_budget, LONG_LETTER), "self", 16)
    assert thumbnails.shape == (2, 4, 16, 16)
    for layer in range(2):
        for head in range(4):
            one = result.pooled(layer, head, 16)[0]
            np.testing.assert_allclose(thumbnails[layer, head], one, rtol=1e-5, atol=1e-7)


def test_a_short_statistics_table_leaves_no_empty_rows(tiny_model_path, monkeypatch):
    # The table had a fixed 520 px: a model of 8 heads showed 8 rows over 6 empty ones.
    import streamlit as st

    from ui.layout import TABLE_ROW_PX

    drawn = []
    dataframe = st.dataframe

    def recording(data, *args, **kwargs):
        drawn.append((len(data), kwargs.get("height")))
        return dataframe(data, *args, **kwargs)

    monkeypatch.setattr(st, "dataframe", recording)
    on_page("pages/overview.py", model=str(tiny_model_path("llama")), text="The cat sat.")
    rows, height = drawn[-1]
    assert rows == 2 * 4
    assert TABLE_ROW_PX * (rows + 1) <= height < TABLE_ROW_PX * (rows + 2)
