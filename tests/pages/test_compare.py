"""The Compare page in the real app (AppTest)."""

import json
import re

import numpy as np
import pytest

from core.charts._common import DIVERGING_SCHEME
from core.tokens import PIECE_MARKER
from tests.pages.conftest import (
    assert_clean,
    chart_specs,
    colour_domains,
    find_all,
    on_page,
    table_with,
)


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


def test_compare_before_and_after_share_one_colour_scale_and_mark_word_pieces():
    at = on_page("pages/compare.py", text="The cat sat on the mat.")
    at.text_input(key="w_replacement").set_value("hippopotamus").run()
    assert_clean(at)
    before, after, difference = chart_specs(at)[:3]
    # Shared is the Compare page's default: one domain for both, named in the legend.
    assert colour_domains(before) == colour_domains(after)
    assert "shared" in json.dumps(before) and "shared" in json.dumps(after)
    # The difference is signed: its domain is symmetric around 0.
    [low, high] = colour_domains(difference)[0][:1] + colour_domains(difference)[0][-1:]
    assert low == -high
    # "hippopotamus" is several word pieces: the continuations carry the marker.
    assert PIECE_MARKER not in json.dumps(before) and PIECE_MARKER in json.dumps(after)


def test_compare_predictions_before_and_after_share_the_probability_axis(tiny_model_path):
    at = on_page(
        "pages/compare.py", model=tiny_model_path("roberta"), text="the cat sat on the <mask>."
    )
    at.text_input(key="w_replacement").set_value("dog").run()
    assert_clean(at)
    bars = [s for s in chart_specs(at) if "Mask 1" in json.dumps(s.get("title", ""))]
    assert len(bars) == 2
    # Both charts run to the best score of the two: one x domain, said in the axis title.
    domains = [find_all(spec, "domain") for spec in bars]
    assert domains[0] == domains[1] and domains[0]
    assert all("shared" in json.dumps(spec) for spec in bars)


def choose_second_model(at, path) -> None:
    at.selectbox(key="w_second_choice").set_value(
        at.selectbox(key="w_second_choice").options[-1]
    ).run()
    at.text_input(key="w_second_custom").set_value(str(path)).run()


def test_a_replacement_and_a_second_model_together(tiny_model_path):
    """Both tabs draw their layer and head pickers in one run (issue 24: it raised
    StreamlitWidgetAlreadyInstantiatedError on w_layer)."""
    at = on_page("pages/compare.py", text="the cat sat on the mat")
    at.text_input(key="w_replacement").set_value("dog").run()
    choose_second_model(at, tiny_model_path("bert"))
    assert_clean(at)
    assert len(chart_specs(at)) == 3 + 2  # before, after, difference; the two models
    # Either tab's layer picker moves both: one view, one layer.
    layer_pickers = [s for s in at.selectbox if s.label == "Layer"]
    assert len(layer_pickers) == 2
    layer_pickers[1].set_value(1).run()
    assert_clean(at)
    assert [s.value for s in at.selectbox if s.label == "Layer"] == [1, 1]


def test_replacing_the_only_mask_says_so(tiny_model_path):
    """The replacement removes the text's one mask: no ValueError from a strict zip."""
    at = on_page(
        "pages/compare.py", model=tiny_model_path("roberta"), text="the cat sat on the <mask>."
    )
    words = at.selectbox(key="w_word")
    words.select(next(label for label in words.options if "mask" in label)).run()
    at.text_input(key="w_replacement").set_value("mat").run()
    assert_clean(at)
    bars = [s for s in chart_specs(at) if "Mask 1" in json.dumps(s.get("title", ""))]
    assert len(bars) == 1  # before only
    assert any("removed by the replacement" in c.value for c in at.caption)


def test_compare_draws_at_most_the_deployments_masks(monkeypatch, tiny_model_path):
    monkeypatch.setenv("ATLAS_MAX_MASKS", "2")
    text = "the <mask> sat <mask> the <mask> and <mask>."
    at = on_page("pages/compare.py", model=tiny_model_path("roberta"), text=text)
    at.text_input(key="w_replacement").set_value("dog").run()
    assert_clean(at)
    bars = [s for s in chart_specs(at) if "Mask" in json.dumps(s.get("title", ""))]
    assert len(bars) == 2 * 2  # two masks, before and after
    assert any("has 4 masks; the first 2 are drawn" in c.value for c in at.caption)


def test_compare_builds_prediction_charts_inside_the_admission_limit(monkeypatch, tiny_model_path):
    import core.charts
    import ui.cache

    depth, inside = [0], []
    real_admitted, real_bars = ui.cache.admitted, core.charts.prediction_bars

    def admitted(compute):
        depth[0] += 1
        try:
            return real_admitted(compute)
        finally:
            depth[0] -= 1

    def prediction_bars(*args, **kwargs):
        inside.append(depth[0] > 0)
        return real_bars(*args, **kwargs)

    monkeypatch.setattr(ui.cache, "admitted", admitted)
    monkeypatch.setattr(core.charts, "prediction_bars", prediction_bars)
    at = on_page(
        "pages/compare.py", model=tiny_model_path("roberta"), text="the cat sat on the <mask>."
    )
    at.text_input(key="w_replacement").set_value("dog").run()
    assert_clean(at)
    assert inside == [True, True]


def test_a_causal_second_model_leaves_its_later_keys_empty(tiny_model_path):
    at = on_page("pages/compare.py", text="the cat sat on the mat")
    choose_second_model(at, tiny_model_path("gpt2"))
    assert_clean(at)
    gpt2 = table_with(at, len(chart_specs(at)) - 1, {"q", "k", "v"})
    q, k, v = (gpt2[c].to_numpy(zero_copy_only=False) for c in ("q", "k", "v"))
    later = k > q
    # Every later key is empty (no value drawn), never a zero that reads as "no attention".
    assert not np.isfinite(v[later].astype(float)).any()
    assert np.isfinite(v[~later].astype(float)).all() and (~later).any()


def test_the_help_names_the_difference_scales_colours():
    at = on_page("pages/compare.py", text="The cat sat on the mat.")
    at.text_input(key="w_replacement").set_value("dog").run()
    assert_clean(at)
    about = " ".join(e.value for e in at.expander[0].markdown)
    difference = chart_specs(at)[2]
    assert f'"scheme": "{DIVERGING_SCHEME}"' in json.dumps(difference)
    assert DIVERGING_SCHEME == "blueorange"  # the help below names its two ends
    assert "orange cells gained" in about and "blue cells lost" in about
    assert not re.search(r"\bred\b", about)


def test_log_scale_and_without_the_first_token_change_every_heatmap_and_travel_in_the_link():
    at = on_page("pages/compare.py", text="The cat sat on the mat.")
    at.text_input(key="w_replacement").set_value("hippopotamus").run()
    linear_before = table_with(at, 0, {"q", "k", "v"})
    at.toggle(key="w_log_scale").set_value(True).run()
    at.toggle(key="w_without_first").set_value(True).run()
    assert_clean(at)
    assert at.query_params["log_scale"] == "1" and at.query_params["without_first"] == "1"
    before, after, difference = chart_specs(at)[:3]
    for spec in (before, after):
        color = spec["layer"][0]["encoding"]["color"]
        assert color["scale"]["type"] == "log"
        low, high = color["scale"]["domain"]
        assert low == pytest.approx(high / 1000)
        legend = " ".join(color["title"])
        assert "log scale, 3 decades" in legend
        assert "without the first token, rows renormalised" in legend
    # Before: the first key ([CLS]) is left out and each row renormalised over the rest.
    cells = table_with(at, 0, {"q", "k", "v"}).to_pandas()
    assert 0 not in set(cells["k"]) and 0 in set(linear_before["k"].to_pylist())
    np.testing.assert_allclose(cells.groupby("q")["v"].sum(), 1.0, atol=1e-3)
    # The difference stays linear (signed), says so, and is of the transformed matrices.
    color = difference["layer"][0]["encoding"]["color"]
    assert "type" not in color["scale"]
    legend = " ".join(color["title"])
    assert "log does not apply" in legend and "without the first token" in legend
    assert 0 not in set(table_with(at, 2, {"q", "k", "v"})["k"].to_pylist())
    # The link opens the same view.
    again = on_page("pages/compare.py", **{key: at.query_params[key] for key in at.query_params})
    assert again.toggle(key="w_log_scale").value and again.toggle(key="w_without_first").value
    assert chart_specs(again)[0]["layer"][0]["encoding"]["color"]["scale"]["type"] == "log"
