"""The Compare page in the real app (AppTest)."""

import json
import re

import numpy as np

from core.tokens import PIECE_MARKER
from tests.pages.conftest import assert_clean, chart_specs, compare_explorers, find_all, on_page
from ui.explorer import decode_codes, decode_values


def compare_payloads(at) -> dict[str, dict]:
    """Each compare explorer of the last run by its tab: "replace" (its first panel is Before)
    or "models"."""
    return {
        "replace" if payload["panels"][0]["title"] == "Before" else "models": payload
        for payload in compare_explorers(at)
    }


def panel_values(panel: dict) -> np.ndarray:
    """Every matrix of a panel as the browser decodes it, the shown one in float16."""
    values = decode_codes(panel)
    values[panel["exactOf"]] = decode_values(panel["exact"], panel["shape"][1:])
    return values


def test_compare_replacement_draws_before_after_and_difference():
    at = on_page("pages/compare.py", text="The cat sat on the mat.")
    assert any("replacement" in i.value for i in at.info)
    at.text_input(key="w_replacement").set_value("hippopotamus").run()
    assert_clean(at)
    # One explorer in compare mode, no Vega heatmap.
    assert not at.get("vega_lite_chart")
    before, after, difference = compare_payloads(at)["replace"]["panels"]
    # 9 tokens before; "hippopotamus" adds 3 pieces after; 9 word units in the difference.
    assert [p["shape"][1:] for p in (before, after, difference)] == [[9, 9], [12, 12], [9, 9]]
    shown = panel_values(difference)[difference["head"]]
    assert (shown < 0).any() and (shown > 0).any()


def test_a_change_in_the_compare_explorer_moves_the_pickers_and_the_link():
    at = on_page("pages/compare.py", text="The cat sat on the mat.")
    at.text_input(key="w_replacement").set_value("dog").run()
    at.session_state["compare_replace"] = {"view": {"head": 3, "token": 2}}
    at.run()
    assert_clean(at)
    assert next(s.value for s in at.selectbox if s.label == "Head") == 3
    assert at.query_params["head"] == "3"
    assert {p["head"] for p in compare_payloads(at)["replace"]["panels"]} == {3}
    # Page Down in the browser: the next layer for every panel.
    at.session_state["compare_replace"] = {"view": {"head": 3, "layer": 2}}
    at.run()
    assert next(s.value for s in at.selectbox if s.label == "Layer") == 2
    assert {p["layer"] for p in compare_payloads(at)["replace"]["panels"]} == {2}


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
    models = compare_payloads(at)["models"]
    assert len(models["panels"]) == 2 and models["compare"]["link"] == "characters"
    assert any("Shapes differ" in c.value for c in at.caption)


def test_compare_before_and_after_share_one_colour_scale_and_mark_word_pieces():
    at = on_page("pages/compare.py", text="The cat sat on the mat.")
    at.text_input(key="w_replacement").set_value("hippopotamus").run()
    assert_clean(at)
    before, after, difference = compare_payloads(at)["replace"]["panels"]
    # Shared is the Compare page's default: one top for both, named in the legend.
    assert before["scale"] == after["scale"] == "shared"
    assert before["shared"] == after["shared"]
    assert "before and after" in before["scaleNames"]["shared"]
    # The difference is signed, on its own symmetric scale: ±its largest |change|.
    assert difference["signed"] and difference["shared"] < before["shared"]
    assert np.nanmax(np.abs(decode_codes(difference))) <= difference["shared"] * (1 + 1e-6)
    assert difference["scaleNames"]["shared"].startswith("±")  # the legend: −top…0…top
    # "hippopotamus" is several word pieces: the continuations carry the marker.
    assert PIECE_MARKER not in json.dumps(before["rows"])
    assert PIECE_MARKER in json.dumps(after["rows"])


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
    explorers = compare_payloads(at)
    assert [len(explorers[k]["panels"]) for k in ("replace", "models")] == [3, 2]
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
    gpt2 = compare_payloads(at)["models"]["panels"][1]
    values = panel_values(gpt2)
    n = values.shape[-1]
    later = np.triu(np.ones((n, n), dtype=bool), 1)
    # Every later key is empty (never computed), never a zero that reads as "no attention".
    assert np.isnan(values[:, later]).all()
    assert np.isfinite(values[:, ~later]).all()


def test_the_help_names_the_difference_scales_colours():
    at = on_page("pages/compare.py", text="The cat sat on the mat.")
    at.text_input(key="w_replacement").set_value("dog").run()
    assert_clean(at)
    about = " ".join(e.value for e in at.expander[0].markdown)
    difference = compare_payloads(at)["replace"]["panels"][2]
    # The explorer draws a signed matrix blue (below 0) to red (above): the help says so.
    assert "red cells gained" in about and "blue cells lost" in about
    assert any("blue: less attention after, red: more" in n for n in difference["notes"])
    assert not re.search(r"\borange\b", about)


def test_log_scale_and_without_the_first_token_change_every_panel_and_travel_in_the_link():
    at = on_page("pages/compare.py", text="The cat sat on the mat.")
    at.text_input(key="w_replacement").set_value("hippopotamus").run()
    linear = compare_payloads(at)["replace"]["panels"]
    assert not any(p["log"] for p in linear)
    at.toggle(key="w_log_scale").set_value(True).run()
    at.toggle(key="w_without_first").set_value(True).run()
    assert_clean(at)
    assert at.query_params["log_scale"] == "1" and at.query_params["without_first"] == "1"
    before, after, difference = compare_payloads(at)["replace"]["panels"]
    for panel in (before, after):
        assert panel["log"] and any("without the first token" in n for n in panel["notes"])
        values = panel_values(panel)
        # The first key ([CLS]) is left out and each row renormalised over the rest.
        assert np.isnan(values[:, :, 0]).all()
        np.testing.assert_allclose(np.nansum(values[-1], axis=-1), 1.0, atol=2e-2)
    # The difference stays linear (signed), says so, and is of the transformed matrices.
    notes = " ".join(difference["notes"])
    assert "linear" in notes and "without the first token" in notes
    assert np.isnan(panel_values(difference)[:, :, 0]).all()
    # The link opens the same view.
    again = on_page("pages/compare.py", **{key: at.query_params[key] for key in at.query_params})
    assert again.toggle(key="w_log_scale").value and again.toggle(key="w_without_first").value
    assert compare_payloads(again)["replace"]["panels"][0]["log"]


def test_an_attention_over_its_budget_is_a_message_not_a_traceback(monkeypatch):
    # As a long input's would: every captured stack's whole array is said to be too large.
    from core.exact import CapturedStack

    # A text of its own: a stored result whose whole array was built would not be asked again.
    at = on_page("pages/compare.py", text="A budget test sentence about a small red fox.")
    monkeypatch.setattr(CapturedStack, "dense_nbytes", property(lambda self: 2**40))
    at.text_input(key="w_replacement").set_value("dog").run()
    assert not at.exception
    assert any("over the" in error.value and "budget" in error.value for error in at.error)
    assert at.text_input(key="w_replacement").value == "dog"  # the typed text is kept
