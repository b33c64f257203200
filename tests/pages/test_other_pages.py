import numpy as np
import pytest

from core import EMBEDDED_MODEL, load_model, run_attention
from tests.pages.conftest import assert_clean, chart_specs, start, table_with


def on_page(page: str, **query):
    at = start(**query)
    at.switch_page(page).run()
    assert_clean(at)
    return at


# ------------------------------------------------------------------ overview
def test_overview_grid_and_statistics_table():
    at = on_page("pages/overview.py", text="The cat sat on the mat.")
    assert not at.error
    table = at.dataframe[0].value
    assert len(table) == 6 * 12
    assert {"entropy", "to_previous", "to_special"} <= set(table.columns)
    n = len(run_attention(load_model(EMBEDDED_MODEL), "The cat sat on the mat.").tokens)
    grid = chart_specs(at)[0]
    assert any(p.get("name") == "head" for p in grid.get("params", [])) or "head" in str(grid)
    assert n > 0


def test_overview_button_opens_the_head_on_the_attention_page():
    at = on_page("pages/overview.py")
    at.selectbox(key="overview_layer").set_value(2)
    at.selectbox(key="overview_head").set_value(7)
    at.button[0].click().run()
    assert_clean(at)
    assert at.selectbox(key="w_layer").value == 2
    assert at.selectbox(key="w_head").value == 7


# ------------------------------------------------------------------ masked prediction
def test_masked_page_without_mlm_head_says_so_and_offers_presets():
    at = on_page("pages/masked.py", text="The [MASK] sat on the mat.")
    assert any("no masked-word head" in w.value for w in at.warning)
    assert any("bert-base-uncased" in b.label for b in at.button)
    # The mask's attention profile and the gallery are still drawn.
    assert len(at.get("vega_lite_chart")) == 2


def test_masked_page_predicts_each_mask(tiny_model_path):
    at = on_page(
        "pages/masked.py",
        model=tiny_model_path("bert"),
        text="the [MASK] sat on the [MASK] .",
    )
    assert not at.error
    charts = at.get("vega_lite_chart")
    # Two masks: a prediction chart and an attention profile each, then the gallery.
    assert len(charts) == 5
    predictions = table_with(at, 0, {"rank", "p"})
    assert predictions.num_rows == 5
    scores = predictions["p"].to_numpy()
    assert (np.diff(scores) <= 0).all() and 0 < scores[0] <= 1
    at.slider[0].set_value(3).run()
    assert table_with(at, 0, {"rank", "p"}).num_rows == 3


def test_masked_page_masks_a_picked_word(tiny_model_path):
    at = on_page("pages/masked.py", model=tiny_model_path("roberta"), text="the cat sat")
    assert any("no [MASK]" in i.value for i in at.info)
    at.pills(key="mask_word").set_value(2).run()
    assert_clean(at)
    assert table_with(at, 0, {"rank", "p"}).num_rows == 5


# ------------------------------------------------------------------ compare
def test_compare_replacement_draws_before_after_and_difference():
    at = on_page("pages/compare.py", text="The cat sat on the mat.")
    assert any("replacement" in i.value for i in at.info)
    at.text_input(key="replacement").set_value("hippopotamus").run()
    assert_clean(at)
    charts = at.get("vega_lite_chart")
    assert len(charts) >= 3
    before = table_with(at, 0, {"q", "k", "v"})
    after = table_with(at, 1, {"q", "k", "v"})
    difference = table_with(at, 2, {"q", "k", "v"})
    # 9 tokens before; "hippopotamus" adds 3 pieces after; 9 word units in the difference.
    assert before.num_rows == 9 * 9
    assert after.num_rows == 12 * 12
    assert difference.num_rows == 9 * 9
    assert (difference["v"].to_numpy() < 0).any() and (difference["v"].to_numpy() > 0).any()


def test_compare_empty_replacement_keeps_asking():
    at = on_page("pages/compare.py")
    at.text_input(key="replacement").set_value("   ").run()
    assert_clean(at)
    assert not at.error and at.info


def test_compare_two_models_side_by_side(tiny_model_path):
    at = on_page("pages/compare.py", text="the cat sat on the mat")
    at.selectbox(key="second_model").set_value(at.selectbox(key="second_model").options[-1]).run()
    at.text_input(key="second_custom").set_value(str(tiny_model_path("bert"))).run()
    assert_clean(at)
    assert not at.error
    specs = chart_specs(at)
    assert len(specs) == 2
    assert any("Shapes differ" in c.value for c in at.caption)


@pytest.mark.parametrize("page", ["pages/overview.py", "pages/masked.py", "pages/compare.py"])
def test_bad_model_shows_an_error_not_a_traceback(page):
    at = on_page(page, model="no-such-user/no-such-model")
    assert at.error
    assert at.text_area(key="w_text").value
