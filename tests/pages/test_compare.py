"""The Compare page in the real app (AppTest)."""

from tests.pages.conftest import assert_clean, chart_specs, on_page, table_with


def test_compare_replacement_draws_before_after_and_difference():
    at = on_page("pages/compare.py", text="The cat sat on the mat.")
    assert any("replacement" in i.value for i in at.info)
    at.text_input(key="w_replacement").set_value("hippopotamus").run()
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
    at.text_input(key="w_replacement").set_value("   ").run()
    assert_clean(at)
    assert not at.error and at.info


def test_compare_two_models_side_by_side(tiny_model_path):
    at = on_page("pages/compare.py", text="the cat sat on the mat")
    at.selectbox(key="w_second_choice").set_value(
        at.selectbox(key="w_second_choice").options[-1]
    ).run()
    at.text_input(key="w_second_custom").set_value(str(tiny_model_path("bert"))).run()
    assert_clean(at)
    assert not at.error
    specs = chart_specs(at)
    assert len(specs) == 2
    assert any("Shapes differ" in c.value for c in at.caption)
