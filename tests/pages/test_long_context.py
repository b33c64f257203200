"""The Long context page: head map, needle explorer with progress and Stop, ablation, exports,
the link, and bad input said in the page."""

from __future__ import annotations

import json

import numpy as np
import pytest

import core
from core.export import read_csv_with_provenance
from core.version import VERSION
from tests.pages.conftest import assert_clean, chart_specs, on_page, start, table_with

PAGE = "pages/long_context.py"
TEXT = "The cat sat on the mat because it was tired. It slept all day and all night long."
SHORT_HAYSTACK = {"haystack_tokens": 120}


def link_of(at) -> dict[str, str]:
    return {key: at.query_params[key] for key in at.query_params}


def titles(at) -> list[str]:
    return [spec.get("title") for spec in chart_specs(at)]


def texts(elements) -> str:
    return " ".join(element.value for element in elements).replace("\\", "")


def test_the_head_map_shows_every_heads_measure_of_the_sidebars_text(tiny_model_path):
    path = str(tiny_model_path("bert"))
    at = on_page(PAGE, model=path, text=TEXT)
    assert titles(at) == ["First-token share"]
    drawn = table_with(at, 0, {"layer", "head", "first_token_share"}).to_pandas()
    model = core.load_model(path)
    expected = core.sink_profile(core.run_attention(model, TEXT))
    assert len(drawn) == model.num_layers * model.num_heads
    np.testing.assert_allclose(
        drawn.sort_values(["layer", "head"])["first_token_share"],
        expected["first_token_share"],
        rtol=1e-5,
    )
    captions = texts(at.caption)
    assert f"{int(expected['is_sink'].sum())} of {len(expected)} heads are sink heads" in captions
    # An encoder has no needle search or ablation: the page says why.
    assert "needs a causal language model" in texts(at.info)


def test_epsilon_window_and_measure_change_the_map(tiny_model_path):
    path = str(tiny_model_path("gpt2"))
    at = on_page(PAGE, model=path, text=TEXT)
    at.number_input(key="w_sink_epsilon").set_value(0.05).run()
    at.number_input(key="w_sink_window").set_value(4).run()
    at.selectbox(key="w_sink_measure").set_value("is_sink").run()
    assert_clean(at)
    expected = core.sink_profile(core.run_attention(core.load_model(path), TEXT), 0.05, 4)
    drawn = table_with(at, 0, {"layer", "head", "sink", "local_share"}).to_pandas()
    drawn = drawn.sort_values(["layer", "head"])
    assert (drawn["sink"] == "sink").tolist() == expected["is_sink"].tolist()
    np.testing.assert_allclose(drawn["local_share"], expected["local_share"], rtol=1e-5)
    assert titles(at)[0] == "Sink head (first-token share > ε)"
    assert "ε = 0.05" in texts(at.caption) and "last 4 keys" in texts(at.caption)
    # The retrieval score is offered only once there is a needle run.
    assert "retrieval" not in at.selectbox(key="w_sink_measure").options


def click_head_map(at, selection: object):
    """The next run as after a click on the head map: the browser sends the chart's selection
    (`ui.long_context.OPEN_HEAD`) as the chart widget's JSON value, as Vega-Lite reports it."""
    from ui.long_context import OPEN_HEAD

    chart = at.get("vega_lite_chart")[0]
    states = at._tree.get_widget_states()
    widget = states.widgets.add()
    widget.id = chart.proto.id
    widget.string_value = json.dumps({"selection": {OPEN_HEAD: selection}})
    return at._run(states)


def test_a_click_on_the_head_map_opens_that_head_on_the_attention_page(tiny_model_path):
    path = str(tiny_model_path("gpt2"))
    at = on_page(PAGE, model=path, text=TEXT)
    click_head_map(at, [{"layer": 1, "head": 2}])
    assert_clean(at)
    assert at.title[0].value == "Attention"
    assert at.selectbox(key="w_layer").value == 1 and at.selectbox(key="w_head").value == 2
    link = link_of(at)
    assert link["layer"] == "1" and link["head"] == "2"
    assert link["text"] == TEXT and link["model"] == path  # the same text and model


@pytest.mark.parametrize(
    "selection",
    [[], {}, [{"layer": 99, "head": 0}], [{"layer": "1", "head": 0}], [{"layer": 0}], "x"],
)
def test_a_click_on_no_head_or_nonsense_from_the_browser_opens_nothing(tiny_model_path, selection):
    at = on_page(PAGE, model=str(tiny_model_path("gpt2")), text=TEXT)
    click_head_map(at, selection)
    assert_clean(at)
    assert at.title[0].value == "Long context"
    assert titles(at)[0] == "First-token share"


def test_a_needle_search_shows_heads_depths_positions_and_probabilities(
    tiny_model_path, progress_texts
):
    from ui.cache import result_store

    path = str(tiny_model_path("llama"))
    result_store().clear()
    at = on_page(PAGE, model=path, text=TEXT, **SHORT_HAYSTACK)
    assert "Where the needle is in each input" not in titles(at)  # not run until asked
    at.toggle(key="w_needle_run").set_value(True).run()
    assert_clean(at)
    assert titles(at) == [
        "First-token share",
        "Retrieval score: best heads × depths",
        "Where the needle is in each input",
        "Answer probability per depth",
    ]
    assert progress_texts[0] == "Computing the needle search…"
    assert any("(depth 0.5, 2 of 3)" in (t or "") for t in progress_texts)
    # The page's figures are core's, on the same haystack.
    from ui.long_context import haystack_text

    model = core.load_model(path)
    haystack = haystack_text(model, "austen", TEXT, 120)
    view = at.session_state["atlas_view"]
    expected = core.retrieval_scores(model, haystack, view.needle, view.question)
    inputs = at.dataframe[0].value
    assert inputs["depth"].tolist() == [0.1, 0.5, 0.9]
    np.testing.assert_allclose(
        inputs["answer probability"],
        [e["answer_probability"] for e in expected.attrs["inputs"]],
        rtol=1e-6,
    )
    spans = table_with(at, 2, {"depth", "part", "start", "end"}).to_pandas()
    for entry in expected.attrs["inputs"]:
        needle = spans[(spans["depth"] == entry["depth"]) & (spans["part"] == "needle")]
        assert (needle["start"].item(), needle["end"].item()) == entry["needle"]
    # The head map now offers the mean retrieval score.
    at.selectbox(key="w_sink_measure").set_value("retrieval").run()
    drawn = table_with(at, 0, {"layer", "head", "retrieval"}).to_pandas()
    mean = expected.groupby(["layer", "head"])["score"].mean().to_numpy()
    np.testing.assert_allclose(drawn.sort_values(["layer", "head"])["retrieval"], mean)
    labels = [b.proto.label for b in at.get("download_button")]
    assert {"Retrieval scores as CSV", "Retrieval scores as JSON"} <= set(labels)


def test_stop_keeps_the_depths_done_and_continue_computes_the_rest(tiny_model_path, progress_texts):
    from ui.cache import result_store
    from ui.long_context import Needle, needle_depth
    from ui.stoppable import STOPPED_KEY

    path = str(tiny_model_path("gpt2"))
    at = on_page(PAGE, model=path, text=TEXT, needle_run=1, **SHORT_HAYSTACK)
    assert_clean(at)
    assert "needle_stop" not in [button.key for button in at.button]  # gone once done
    view = at.session_state["atlas_view"]
    from ui.long_context import haystack_text

    haystack = haystack_text(core.load_model(path), "austen", TEXT, 120)
    needle = Needle(path, haystack, view.needle, view.question, view.depths)
    # As if Stop interrupted the run after the first depth: it stays.
    result_store().clear()
    needle_depth(needle, 0.1)
    # Stop's click (`ui.stoppable`): the button is gone once a run is done, so its callback's
    # effect is set as the click sets it.
    at.session_state[f"{STOPPED_KEY}_needle"] = needle
    at.run()
    assert_clean(at)
    assert "Stopped: 1 of 3 depths done" in texts(at.info)
    assert at.dataframe[0].value["depth"].tolist() == [0.1]
    assert "Retrieval score: best heads × depths" in titles(at)
    assert "retrieval" not in at.selectbox(key="w_sink_measure").options  # not every depth
    progress_texts.clear()
    at.button(key="needle_continue").click().run()
    assert_clean(at)
    assert not any("depth 0.1" in (t or "") for t in progress_texts)  # kept, not redone
    assert any("depth 0.9" in (t or "") for t in progress_texts)
    assert at.dataframe[0].value["depth"].tolist() == [0.1, 0.5, 0.9]


def test_ablation_shows_the_three_effects_side_by_side(tiny_model_path):
    path = str(tiny_model_path("gpt2"))
    at = on_page(PAGE, model=path, text=TEXT, needle_run=1, ablate_k=2, **SHORT_HAYSTACK)
    assert_clean(at)
    assert "Effect of zeroing each head set" not in titles(at)
    at.number_input(key="w_sink_epsilon").set_value(0.1).run()  # some sink heads
    at.toggle(key="w_ablate").set_value(True).run()
    assert_clean(at)
    assert titles(at)[-1] == "Effect of zeroing each head set"
    effects = at.dataframe[1].value
    sets = ["top retrieval heads", "random heads (same layers)", "sink heads"]
    assert list(dict.fromkeys(effects["set"])) == sets
    assert effects["input"].tolist() == ["depth 0.1", "depth 0.5", "depth 0.9", "your text"] * 3
    drawn = table_with(at, len(titles(at)) - 1, {"set", "input", "change", "heads"}).to_pandas()
    assert set(drawn["set"]) == set(sets)
    # The numbers are core's: the same heads zeroed on the same inputs.
    from ui.long_context import Needle, haystack_text

    model = core.load_model(path)
    view = at.session_state["atlas_view"]
    needle = Needle(
        path, haystack_text(model, "austen", TEXT, 120), view.needle, view.question, view.depths
    )
    retrieval = core.retrieval_scores(model, needle.haystack, needle.needle, needle.question)
    profile = core.sink_profile(core.run_attention(model, TEXT), 0.1)
    controls = core.ablation_controls(retrieval, profile, k=2)
    assert drawn["heads"].tolist() == [len(controls[s]) for s in controls for _ in range(4)]
    expected = core.ablate_answer(model, retrieval.attrs["inputs"], controls["retrieval"])
    np.testing.assert_allclose(
        effects["probability ablated"][:3], expected["answer_probability_ablated"], rtol=1e-6
    )
    own = core.ablate_heads(model, TEXT, controls["random"])
    assert effects["probability ablated"][7] == pytest.approx(own["probability_ablated"][0])


def test_exports_carry_the_settings_and_provenance(tiny_model_path):
    from ui.cache import Inputs
    from ui.long_context import (
        _ablation_export,
        _needle_export,
        _profile_export,
        needle_done,
        profile,
    )

    path = str(tiny_model_path("gpt2"))
    at = on_page(PAGE, model=path, text=TEXT, needle_run=1, ablate=1, **SHORT_HAYSTACK)
    assert_clean(at)
    labels = {b.proto.label for b in at.get("download_button")}
    for name in ("Head measures", "Retrieval scores", "Ablation effects"):
        assert {f"{name} as CSV", f"{name} as JSON"} <= labels
    from ui.long_context import Needle, haystack_text

    view = at.session_state["atlas_view"]
    haystack = haystack_text(core.load_model(path), "austen", TEXT, 120)
    needle = Needle(path, haystack, view.needle, view.question, view.depths)
    fields, csv = read_csv_with_provenance(
        _profile_export(Inputs(path, TEXT), {"epsilon": 0.3, "window": 64}, needle, "csv")
    )
    assert fields["model"] == path and fields["text"] == TEXT
    assert "epsilon=0.3" in fields["method"] and "window=64" in fields["method"]
    assert csv.splitlines()[0].startswith("layer,head,first_token_share,is_sink")
    assert "retrieval" in csv.splitlines()[0]
    document = json.loads(_needle_export(needle, "json"))
    assert document["provenance"]["app_version"] == VERSION
    assert document["data"]["settings"]["depths"] == [0.1, 0.5, 0.9]
    assert len(document["data"]["inputs"]) == 3 and "input_ids" not in document["data"]["inputs"][0]
    # The head sets the page zeroed, as it chose them.
    controls = core.ablation_controls(needle_done(needle), profile(Inputs(path, TEXT), 0.3, 64))
    sets = {name: tuple(map(tuple, heads)) for name, heads in controls.items()}
    effects = json.loads(_ablation_export(needle, Inputs(path, TEXT), sets, "json"))
    assert effects["data"]["settings"]["retrieval_heads"] == [list(h) for h in sets["retrieval"]]
    assert len(effects["data"]["rows"]) == 3 * 4


def test_the_link_restores_every_setting(tiny_model_path):
    path = str(tiny_model_path("gpt2"))
    at = on_page(PAGE, model=path, text=TEXT)
    at.selectbox(key="w_sink_measure").set_value("local_share").run()
    at.number_input(key="w_sink_epsilon").set_value(0.45).run()
    at.number_input(key="w_sink_window").set_value(8).run()
    at.radio(key="w_haystack").set_value("text").run()
    at.text_input(key="w_needle").set_value("The key is under the blue stone.").run()
    at.text_input(key="w_question").set_value("Where is the key?").run()
    at.multiselect(key="w_depths").set_value([0.2, 0.8]).run()
    assert_clean(at)
    link = link_of(at)
    again = start(PAGE, **link)
    assert_clean(again)
    assert again.selectbox(key="w_sink_measure").value == "local_share"
    assert again.number_input(key="w_sink_epsilon").value == 0.45
    assert again.number_input(key="w_sink_window").value == 8
    assert again.radio(key="w_haystack").value == "text"
    assert again.text_input(key="w_needle").value == "The key is under the blue stone."
    assert again.text_input(key="w_question").value == "Where is the key?"
    assert again.multiselect(key="w_depths").value == [0.2, 0.8]
    # The runs' switches and k travel too.
    more = start(
        PAGE,
        **{**link, "needle_run": 1, "haystack": "austen", "haystack_tokens": 100, "ablate_k": 3},
    )
    assert_clean(more)
    assert more.toggle(key="w_needle_run").value is True
    assert more.number_input(key="w_haystack_tokens").value == 100
    assert more.number_input(key="w_ablate_k").value == 3


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"needle": "  "}, "The needle is empty."),
        ({"question": " "}, "The question is empty."),
        ({"haystack_tokens": 2000}, "use a shorter haystack"),
        ({"haystack": "text", "text": "word " * 600}, "use a shorter haystack"),
    ],
)
def test_bad_needle_input_is_said_in_the_page(tiny_model_path, query, message):
    path = str(tiny_model_path("gpt2"))
    at = start(PAGE, **{"model": path, "text": TEXT, "needle_run": 1, **query})
    assert_clean(at)
    assert message in texts(at.error)
    assert "Where the needle is in each input" not in titles(at)


def test_no_depth_and_bad_link_values_are_explained(tiny_model_path):
    path = str(tiny_model_path("gpt2"))
    at = start(PAGE, model=path, text=TEXT, depths="0.5,7", sink_measure="sinkiness")
    assert_clean(at)
    warnings = texts(at.warning)
    assert "depths=0.5,7" in warnings and "sink_measure=sinkiness" in warnings
    assert at.multiselect(key="w_depths").value == [0.1, 0.5, 0.9]
    at.multiselect(key="w_depths").set_value([]).run()
    assert_clean(at)
    assert "Choose at least one depth." in texts(at.info)


def test_the_needle_already_in_the_haystack_is_flagged(tiny_model_path):
    path = str(tiny_model_path("gpt2"))
    needle = "The cat sat on the mat because it was tired."
    at = start(PAGE, model=path, text=TEXT, haystack="text", needle=needle)
    assert_clean(at)
    assert "already occurs in the haystack" in texts(at.warning)


def test_a_kept_session_pins_no_result(tiny_model_path):
    """As tests/pages/test_memory.py checks for the other pages: the page's callbacks and
    downloads hold small keys only, so its results go once the shared store lets go."""
    import gc
    import weakref

    from ui.cache import result_store

    store = result_store()
    store.clear()
    path = str(tiny_model_path("gpt2"))
    at = on_page(PAGE, model=path, text=TEXT, needle_run=1, ablate=1, **SHORT_HAYSTACK)
    assert_clean(at)
    held = [weakref.ref(value) for value in store.values() if hasattr(value, "columns")]
    assert len(held) >= 5, "a profile, three depths and the ablations are stored"
    store.clear()
    gc.collect()
    assert not [ref for ref in held if ref() is not None]
    assert at.session_state


def test_the_needle_run_and_ablations_are_weighed_by_their_declared_costs(
    tiny_model_path, monkeypatch
):
    """Admission weighs each depth by `core.costs.NEEDLE_DEPTH` × one pass over that depth's
    input (so on a real model it waits in the heavy line), each ablation by `ABLATION`."""
    from core.costs import ABLATION, NEEDLE_DEPTH, forward_multiply_adds
    from server import admission
    from ui.cache import result_store

    weights: list[float] = []
    real = admission.is_heavy
    monkeypatch.setattr(admission, "is_heavy", lambda work: weights.append(work) or real(work))
    result_store().clear()
    path = str(tiny_model_path("gpt2"))
    at = on_page(PAGE, model=path, text=TEXT, needle_run=1, **SHORT_HAYSTACK)
    assert_clean(at)
    model = core.load_model(path)
    config = model.model.config
    lengths = at.dataframe[0].value["input tokens"].tolist()
    for n in lengths:
        assert (
            NEEDLE_DEPTH.passes(n, model.num_layers) * forward_multiply_adds(config, n) in weights
        )
    weights.clear()
    at.toggle(key="w_ablate").set_value(True).run()
    assert_clean(at)
    per_depths = ABLATION.passes(max(lengths), model.num_layers) * len(lengths)
    assert per_depths * forward_multiply_adds(config, max(lengths)) in weights
