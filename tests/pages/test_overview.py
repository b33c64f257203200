"""The Model overview page in the real app (AppTest)."""

import json

from core import EMBEDDED_MODEL, load_model, run_attention
from tests.pages.conftest import assert_clean, chart_specs, on_page


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
    at.selectbox(key="w_layer").set_value(2)
    at.selectbox(key="w_head").set_value(7)
    at.button[0].click().run()
    assert_clean(at)
    assert at.selectbox(key="w_layer").value == 2
    assert at.selectbox(key="w_head").value == 7


def test_overview_grid_fits_the_page_and_toggles_each_heads_own_maximum():
    at = on_page("pages/overview.py", text="The cat sat on the mat.")
    grid = chart_specs(at)[0]
    assert "own maximum" not in json.dumps(grid)
    at.toggle(key="w_own_max").set_value(True).run()
    assert_clean(at)
    assert at.query_params["own_max"] == "1"
    assert json.dumps(chart_specs(at)[0]) != json.dumps(grid)


def test_overview_honours_hide_special():
    at = on_page("pages/overview.py", text="The cat sat on the mat.")
    shown = chart_specs(at)[0]
    at.toggle(key="w_hide_special").set_value(True).run()
    assert_clean(at)
    assert json.dumps(chart_specs(at)[0]) != json.dumps(shown)


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
