"""The Explain page: logit lens, agreement with leave-one-out, contribution graph."""

from __future__ import annotations

import core
from tests.pages.conftest import assert_clean, chart_specs, on_page, start
from ui.explain import AGREEMENT_CONTROL, GRAPH_CONTROL
from ui.stoppable import STOPPED_KEY

PAGE = "pages/explain.py"


def test_an_encoder_without_predictions_says_so():
    at = on_page(PAGE)
    assert "predicts no token" in " ".join(i.value for i in at.info)
    assert not chart_specs(at)


def test_masked_lm_explains_its_mask(tiny_model_path):
    at = on_page(PAGE, model=tiny_model_path("bert"), text="The cat sat on the [MASK].")
    position = at.selectbox(key="w_token").value
    assert at.selectbox(key="w_token").options[position].endswith("[MASK]")
    specs = chart_specs(at)
    assert len(specs) == 2  # the logit lens and the contribution graph
    assert not at.error
    at.toggle(key="explain_agreement").set_value(True).run()
    assert_clean(at)
    table = at.dataframe[0].value
    labels = {core.get_method(name).label for name in ("raw", "rollout", "alti")}
    assert labels <= set(table["Method"])
    rho = table["Rank agreement ρ ↑"]
    assert rho.dropna().between(-1, 1).all()
    # Best first, and the page says which way is better.
    assert rho.dropna().is_monotonic_decreasing
    captions = " ".join(c.value for c in at.caption)
    assert "Higher is better" in captions
    # k and the tokens compared are the same for every method: said once, not as columns
    # (at 1024 px they pushed "Tokens compared" out of the table's width).
    assert not {"k", "Tokens compared"} & set(table.columns)
    assert "k = 3 tokens" in captions and "tokens left out in turn" in captions
    assert not [b for b in at.button if b.key == "agreement_stop"]  # nothing left to stop


def test_causal_lm_explains_the_next_token_and_the_link_keeps_the_graph(tiny_model_path):
    at = on_page(
        PAGE, model=tiny_model_path("gpt2"), text="The cat sat on the mat", graph_threshold=0.1
    )
    tokens = at.selectbox(key="w_token").options
    assert at.selectbox(key="w_token").value == len(tokens) - 1
    assert at.slider(key="w_graph_threshold").value == 0.1
    assert len(chart_specs(at)) == 2


def test_a_bad_graph_threshold_in_a_link_is_clamped_with_a_message(tiny_model_path):
    at = start(PAGE, model=tiny_model_path("bert"), text="A [MASK].", graph_threshold=7)
    assert_clean(at)
    assert "graph_threshold" in " ".join(w.value for w in at.warning).replace("\\", "")
    assert at.slider(key="w_graph_threshold").value == 0.04


def test_the_agreement_shows_progress_and_stop_keeps_the_steps_done(
    tiny_model_path, progress_texts
):
    from ui.cache import LEAVE_ONE_OUT, Inputs, agreement_part, agreement_parts, result_store

    path = str(tiny_model_path("bert"))
    text = "The cat sat on the [MASK]."
    at = on_page(PAGE, model=path, text=text)
    position = at.selectbox(key="w_token").value
    result_store().clear()
    at.toggle(key="explain_agreement").set_value(True).run()
    assert_clean(at)
    inputs = Inputs(path, text)
    parts = agreement_parts(inputs)
    steps = len(parts)
    assert progress_texts[0] == "Computing the agreement table…"
    assert f"Leave-one-out (step 1 of {steps})" in progress_texts[1]
    assert any(
        t.startswith(f"value zeroing (step {parts.index('value_zeroing') + 1} of")
        for t in progress_texts
    )
    assert len(at.dataframe[0].value) == steps - 1
    # The run is over: its Stop button is gone with it.
    assert not [b for b in at.button if b.key == "agreement_stop"]
    # As if Stop interrupted the run after leave-one-out and raw attention: both stay.
    result_store().clear()
    agreement_part(inputs, position, LEAVE_ONE_OUT)
    agreement_part(inputs, position, "raw")
    at.session_state[f"{STOPPED_KEY}_{AGREEMENT_CONTROL}"] = (inputs, position)
    at.run()
    assert_clean(at)
    assert any(f"Stopped: 2 of {steps} steps done" in i.value for i in at.info)
    assert at.dataframe[0].value["Method"].tolist() == [core.get_method("raw").label]
    downloads = [b.label for b in at.get("download_button")]
    assert not [label for label in downloads if "Agreement" in label]  # exported once complete
    progress_texts.clear()
    at.button(key="agreement_continue").click().run()
    assert_clean(at)
    assert "Leave-one-out" not in " ".join(progress_texts)  # the kept steps are not redone
    assert "raw (step" not in " ".join(progress_texts)
    assert len(at.dataframe[0].value) == steps - 1
    assert "Agreement table as CSV" in [b.label for b in at.get("download_button")]


def test_the_graph_is_ferrando_and_voitas_routes_with_feed_forward_nodes(tiny_model_path):
    path = str(tiny_model_path("bert"))
    text = "The cat sat on the [MASK]."
    at = on_page(PAGE, model=path, text=text, graph_threshold=0.1)
    assert_clean(at)
    position = at.selectbox(key="w_token").value
    model = core.load_model(path)
    expected = core.information_flow_graph(core.route_contributions(model, text), position, 0.1)
    captions = " ".join(c.value for c in at.caption)
    assert f"{expected.number_of_edges()} edges" in captions
    assert "Ferrando & Voita" in captions
    graph_spec = chart_specs(at)[-1]
    nodes = graph_spec["layer"][-1]
    assert nodes["encoding"]["shape"]["title"] == "node"
    assert graph_spec["layer"][0]["encoding"]["color"]["scale"]["domain"] == [0.1, 1.0]


def test_an_encoder_decoder_says_why_it_is_not_explained_here(tiny_model_path):
    at = on_page(PAGE, model=tiny_model_path("bart"), text="The cat sat.", target="A cat.")
    info = " ".join(i.value for i in at.info)
    assert "encoder-decoder model: it predicts the target's tokens in its decoder" in info
    assert "gradient × attention explains" in info
    assert not chart_specs(at)


def test_the_graph_shows_progress_by_layer_and_stop_keeps_nothing_half_made(
    tiny_model_path, progress_texts
):
    import core
    from ui.cache import Inputs, is_route_contributions_stored, result_store

    path = str(tiny_model_path("bert"))
    text = "The cat sat on the [MASK]."
    at = on_page(PAGE, model=path, text=text)
    inputs = Inputs(path, text)
    layers = core.load_model(path).num_layers
    result_store().clear()
    progress_texts.clear()
    at.run()
    assert_clean(at)
    assert progress_texts[0] == "Computing the routes…"
    assert f"the routes: {layers} of {layers} layers done" in progress_texts[-1]
    assert is_route_contributions_stored(inputs)
    # The run is over: its Stop button is gone with it.
    assert not [b for b in at.button if b.key == "graph_stop"]
    # As if Stop interrupted the run: the routes are one piece, so nothing is kept.
    result_store().clear()
    at.session_state[f"{STOPPED_KEY}_{GRAPH_CONTROL}"] = inputs
    at.run()
    assert_clean(at)
    assert any("Stopped: the routes" in i.value for i in at.info)
    assert len(chart_specs(at)) == 1  # the logit lens; no graph
    assert not is_route_contributions_stored(inputs)
    at.button(key="graph_continue").click().run()
    assert_clean(at)
    assert len(chart_specs(at)) == 2 and is_route_contributions_stored(inputs)


def test_word_pieces_are_marked_as_on_every_other_page(tiny_model_path):
    # The graph and the position picker showed "em bed ding s" where the other views show
    # "em ##bed ##ding ##s".
    at = on_page(PAGE, model=tiny_model_path("bert"), text="The embeddings were [MASK] quickly.")
    graph = chart_specs(at)[-1]
    labels = next(p["value"] for p in graph["params"] if p["name"].startswith("tok_"))
    assert "##bed" in labels
    assert any(option.endswith(": ##bed") for option in at.selectbox(key="w_token").options)
