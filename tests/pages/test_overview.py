"""The Model overview page in the real app (AppTest)."""

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
