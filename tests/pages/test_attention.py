import numpy as np
import pytest

from core import EMBEDDED_MODEL, TruncationWarning, compute_method, load_model, run_attention
from tests.pages.conftest import (
    EIGHT_BIT,
    FLOAT16,
    assert_clean,
    chart_specs,
    explorer_payload,
    explorer_shown,
    explorer_values,
    head_view_payload,
    start,
    table_with,
)

TEXT = "The cat sat on the mat because it was tired."


@pytest.fixture(scope="module")
def expected():
    return run_attention(load_model(EMBEDDED_MODEL), TEXT)


shown = explorer_shown


def heatmap(at):
    """The long-input path's Vega heatmap data."""
    return table_with(at, 0, {"q", "k", "v"})


def test_default_run_draws_three_views(expected):
    at = start()
    assert_clean(at)
    assert not at.error
    # Matrix and bars in the explorer, the line view in the head view: no Vega chart.
    assert not at.get("vega_lite_chart")
    n = len(expected.tokens)
    payload = head_view_payload(at)
    assert len(payload["left"]) == n and len(payload["edges"]) == expected.num_heads
    payload = explorer_payload(at)
    # Every head of layer 0 and their mean (shown first), on the model's shared scale.
    assert payload["shape"] == [expected.num_heads + 1, n, n]
    assert payload["names"][payload["head"]] == "mean" and payload["scale"] == "shared"
    assert payload["shared"] == pytest.approx(float(expected.attentions.max()), rel=1e-6)
    values = explorer_values(at)
    np.testing.assert_allclose(values[:-1], expected.attentions[0], **EIGHT_BIT)
    np.testing.assert_allclose(shown(at), expected.attentions[0].mean(0), **FLOAT16)
    assert payload["rows"][0] == "[CLS]" and payload["sel"] == 0
    # The line view opens on the selected token's lines, its opacity on the same scale.
    lines = head_view_payload(at)
    assert lines["sel"] == 0 and lines["max"] == pytest.approx(payload["shared"], abs=1e-4)
    assert "shared across the model's heads and layers" in lines["note"]


def test_changing_layer_head_and_method_changes_the_data(expected):
    at = start()
    first = shown(at)
    at.selectbox(key="w_layer").set_value(3).run()
    assert_clean(at)
    layer3 = shown(at)
    assert not np.allclose(first, layer3)
    at.selectbox(key="w_head").set_value(5).run()
    np.testing.assert_allclose(shown(at), expected.attentions[3, 5], **FLOAT16)
    assert explorer_payload(at)["layer"] == 3
    assert at.query_params["layer"] == "3" and at.query_params["head"] == "5"


def test_query_parameters_restore_the_view(expected):
    at = start(layer=4, head=7, token=2)
    assert_clean(at)
    assert at.selectbox(key="w_layer").value == 4
    assert at.selectbox(key="w_head").value == 7
    assert at.selectbox(key="w_token").value == 2
    np.testing.assert_allclose(shown(at), expected.attentions[4, 7], **FLOAT16)
    assert explorer_payload(at)["sel"] == 2
    assert head_view_payload(at)["sel"] == 2  # the line view is focused from a link too


def test_a_change_in_the_explorer_moves_the_controls_and_the_link(expected):
    at = start()
    at.session_state["explorer"] = {"view": {"head": 3, "token": 4}}
    at.run()
    assert_clean(at)
    assert at.selectbox(key="w_head").value == 3 and at.selectbox(key="w_token").value == 4
    assert at.query_params["head"] == "3" and at.query_params["token"] == "4"
    assert explorer_payload(at)["head"] == 3 and explorer_payload(at)["sel"] == 4
    assert head_view_payload(at)["sel"] == 4
    # Page Down in the browser: the next layer, keeping head and token.
    at.session_state["explorer"] = {"view": {"head": 3, "token": 4, "layer": 2}}
    at.run()
    assert_clean(at)
    assert at.selectbox(key="w_layer").value == 2 and at.query_params["layer"] == "2"
    np.testing.assert_allclose(shown(at), expected.attentions[2, 3], **FLOAT16)


def test_the_explorers_mean_keeps_the_line_views_all_heads():
    at = start(head="all")
    at.session_state["explorer"] = {"view": {"head": "mean", "token": 1}}
    at.run()
    assert_clean(at)
    assert at.selectbox(key="w_head").value == "all" and at.query_params["token"] == "1"


@pytest.mark.parametrize(
    "query",
    [{"layer": 99}, {"layer": "abc"}, {"head": 40}, {"token": 500}, {"method": "magic"}],
)
def test_bad_query_parameters_warn_and_fall_back(query):
    at = start(**query)
    assert_clean(at)
    assert at.warning, "a bad link parameter must be reported"
    assert explorer_payload(at)["shape"][1] > 0


def test_empty_text_shows_an_error_and_keeps_the_text():
    at = start()
    at.text_area(key="w_text").set_value("   ").run()
    assert_clean(at)
    assert any("empty" in e.value for e in at.error)
    assert at.text_area(key="w_text").value == "   "
    at.text_area(key="w_text").set_value("A new sentence works again.").run()
    assert not at.error and explorer_payload(at)["rows"][1] == "a"


def test_hide_special_tokens_renormalises_rows(expected):
    at = start()
    at.toggle(key="w_hide_special").set_value(True).run()
    assert_clean(at)
    n = len(expected.tokens) - 2
    assert explorer_payload(at)["shape"][1:] == [n, n]
    np.testing.assert_allclose(shown(at).sum(1), 1.0, atol=1e-3)
    assert any("renormalised" in c.value for c in at.caption)


def test_merge_word_pieces():
    at = start(text="Unbelievably good")
    at.toggle(key="w_merge_words").set_value(True).run()
    assert_clean(at)
    # [CLS] unbelievably good [SEP]: the five pieces of "unbelievably" become one row.
    assert explorer_payload(at)["shape"][1:] == [4, 4]
    assert any("merged" in c.value for c in at.caption)


def test_the_token_box_lists_merged_words_and_keeps_the_links_position():
    # [CLS] un ##bel ##ie ##va ##bly good [SEP]: a link's token 3 names a piece of the word.
    at = start(text="Unbelievably good", token=3)
    at.toggle(key="w_merge_words").set_value(True).run()
    assert_clean(at)
    box = at.selectbox(key="w_token")
    assert box.options == ["0: [CLS]", "1: unbelievably", "6: good", "7: [SEP]"]
    # The box shows the word holding the piece; the link still names the piece.
    assert box.value == 1 and at.query_params["token"] == "3"
    box.set_value(6).run()
    assert_clean(at)
    assert at.query_params["token"] == "6" and explorer_payload(at)["sel"] == 2
    at.toggle(key="w_merge_words").set_value(False).run()
    assert at.selectbox(key="w_token").options[3] == "3: ie"


def test_the_head_box_of_a_method_without_heads_says_so():
    at = start(method="rollout")
    box = at.selectbox(key="w_head")
    assert box.disabled and box.options[box.index] == "— (rollout has no heads)"
    assert not any("all heads" in option for option in box.options)


def test_rollout_and_flow(expected):
    at = start(method="rollout", layer=5)
    assert_clean(at)
    from core import attention_rollout

    n = len(expected.tokens)
    assert explorer_payload(at)["names"] == ["0"]  # no heads: one matrix
    # The line view names the one matrix instead of a head chip "0" and "all 1 heads".
    lines = head_view_payload(at)
    assert lines["heads"] == 1 and lines["single"].startswith("rollout, one matrix")
    np.testing.assert_allclose(shown(at), attention_rollout(expected.attentions)[5], **FLOAT16)

    at = start(method="flow", layer=1)
    assert_clean(at)
    assert explorer_payload(at)["shape"] == [1, n, n]


def test_tiny_masked_lm_by_path(tiny_model_path):
    at = start(model=tiny_model_path("roberta"), text="the cat sat on the mat")
    assert_clean(at)
    assert not at.error
    assert len(explorer_payload(at)["rows"]) > 2


def test_a_full_length_input_is_one_explorer_of_512_tokens():
    text = " ".join(["The quick brown fox jumps over the lazy dog."] * 60)
    at = start(text=text, token=200)
    assert_clean(at)
    assert any("were dropped" in w.value for w in at.warning)
    assert not at.get("vega_lite_chart")
    payload = explorer_payload(at)
    assert payload["shape"] == [13, 512, 512] and payload["sel"] == 200
    with pytest.warns(TruncationWarning):
        result = run_attention(load_model(EMBEDDED_MODEL), text)
    np.testing.assert_allclose(shown(at), result.attentions[0].mean(0), **FLOAT16)
    # The head view draws every token, scrolling, with the strongest 3 lines per token.
    payload = head_view_payload(at)
    assert len(payload["left"]) == 512 and payload["maxHeight"] == 640


LONG_TEXT = "A long letter, read in pieces: every block of it is pooled or exact. " * 12


@pytest.fixture
def pieces_only(monkeypatch, tiny_model_path):
    """A tiny Llama whose result refuses the whole array (a 0-byte budget) and an explorer
    limit of 100 tokens: the Attention page's long path. Returns `(path, pieces result)`."""
    import ui.cache
    import ui.explorer
    from core.exact import CapturedStack

    def refused(self, budget=None):
        raise AssertionError("the long path built the whole attention array")

    ui.cache.result_store().clear()  # no whole-array result of this text from another test
    monkeypatch.setattr(ui.explorer, "MAX_TOKENS", 100)
    monkeypatch.setattr(ui.cache, "WHOLE_ATTENTION_BYTES", 0)
    path = str(tiny_model_path("llama"))
    result = run_attention(load_model(path), LONG_TEXT, budget=0)
    monkeypatch.setattr(CapturedStack, "dense", refused)
    yield path, result
    ui.cache.result_store().clear()


def ask_tiles(at, *origins) -> dict:
    """What the browser does as it zooms: ask for exact tiles; the run's explorer payload."""
    at.session_state["long_explorer"] = {"tiles": {"tiles": [list(o) for o in origins]}}
    at.run()
    assert_clean(at)
    return explorer_payload(at)


def tiles_of(payload: dict) -> dict:
    """The exact tiles a long payload carries, by origin."""
    from ui.explorer import decode_values

    out, at = {}, 0
    for row, col, h, w in payload["tiles"]:
        out[row, col] = decode_values(payload["tileData"][at : at + 2 * h * w], [h, w])
        at += 2 * h * w
    return out


def test_a_long_input_gets_the_explorer_with_its_overview_exact_tiles_and_top_weights(
    pieces_only,
):
    from core.long_views import pooled_overview
    from ui.explorer import decode_values

    path, result = pieces_only
    n = len(result.tokens)
    assert n > 100
    at = start(model=path, text=LONG_TEXT, token=150, layer=1, head=2)
    assert_clean(at)
    assert not at.error
    assert not chart_specs(at)  # no Vega overview or detail any more
    payload = explorer_payload(at)
    assert payload["long"]["reduce"] == "mean" and payload["long"]["tile"] == 64
    assert payload["shape"] == [result.num_heads + 1, n, n] and payload["names"][2] == "2"
    assert payload["head"] == 2 and payload["sel"] == 150 and payload["layer"] == 1
    assert payload["rows"] == [t.text for t in result.tokens]
    # The overview: every block of the head, the causal future left out (NaN, not 0).
    overview = pooled_overview(result, 1, 2)
    grid = decode_values(payload["overview"], overview.grid.shape)
    np.testing.assert_allclose(grid, overview.grid, **FLOAT16)
    assert np.isnan(grid).any()
    assert payload["long"]["rowEdges"] == overview.row_edges.tolist()
    # The selected token's exact row (its bars).
    row = result.row(1, 2, 150)
    np.testing.assert_allclose(decode_values(payload["row"], [n]), row, **FLOAT16)
    # Zoomed in, the browser asks for tiles: exact 64 × 64 weights, nonsense left out.
    tiles = tiles_of(ask_tiles(at, (128, 64), (64, 64), (5, 0)))
    assert sorted(tiles) == [(64, 64), (128, 64)]
    exact = result.tile(1, 2, range(128, 192), range(64, 128))
    np.testing.assert_allclose(tiles[128, 64], exact, **FLOAT16)
    # The selected token's row: its largest weights, labelled, largest first.
    table = at.dataframe[0].value
    assert table["position"].iloc[0] == int(np.nanargmax(row))
    assert table["weight"].iloc[0] == pytest.approx(float(np.nanmax(row)))
    assert table["token"].iloc[0] == result.tokens[int(np.nanargmax(row))].text
    assert any("later tokens" in c.value for c in at.caption)


def test_a_long_input_pools_by_max_averages_heads_and_says_what_other_methods_need(
    pieces_only,
):
    from core.long_views import pooled_overview
    from ui.explorer import decode_values

    path, result = pieces_only
    n = len(result.tokens)
    at = start(model=path, text=LONG_TEXT, token=10)
    tiles = tiles_of(ask_tiles(at, (64, 0)))
    mean = np.mean([result.tile(0, h, range(64, 128), range(0, 64)) for h in range(4)], 0)
    np.testing.assert_allclose(tiles[64, 0], mean, **FLOAT16)
    at.segmented_control(key="long_pooling").set_value("max").run()
    assert_clean(at)
    payload = explorer_payload(at)
    assert payload["long"]["reduce"] == "max"
    grid = pooled_overview(result, 0, None, reduce="max").grid
    np.testing.assert_allclose(decode_values(payload["overview"], grid.shape), grid, **FLOAT16)
    # Flow needs the whole array (none within this result's 0-byte budget): the page says the
    # length it accepts and what to do, as the registry's check words it.
    at.segmented_control(key="w_method").set_value("flow").run()
    assert_clean(at)
    assert not at.error
    notes = [i.value for i in at.info if f"Flow of {n:,} tokens" in i.value]
    assert notes and "reads at most 0 tokens" in notes[0]
    assert "Choose a shorter part of the text" in notes[0]


def test_a_short_input_beyond_the_budget_is_read_in_pieces_too(pieces_only):
    path, _ = pieces_only
    at = start(model=path, text=TEXT, token=3)
    assert_clean(at)
    assert not at.error
    n = len(explorer_payload(at)["rows"])
    tiles = tiles_of(ask_tiles(at, (0, 0)))
    assert tiles[0, 0].shape == (n, n)  # the tile: every token here
    assert len(head_view_payload(at)["left"]) == n  # the line view of the window: every token


def test_a_long_input_draws_the_line_view_of_its_detail_window(pieces_only):
    from core.long_views import window_start

    path, result = pieces_only
    n = len(result.tokens)
    at = start(model=path, text=LONG_TEXT, token=150, layer=1, head=2)
    assert_clean(at)
    first = window_start(150, n)
    window = range(first, first + 64)
    payload = head_view_payload(at)
    labels = [f"{i} {result.tokens[i].text}" for i in window]
    assert payload["left"] == labels and payload["right"] == labels
    assert payload["sel"] == 150 - first and payload["shown"] == [2]
    assert len(payload["edges"]) == result.num_heads
    # Every line is an exact weight of the window (thousandths); none to a later token.
    tile = result.tile(1, 2, window, window)
    lines = np.asarray(payload["edges"][2]).reshape(-1, 3)
    assert len(lines) > 64
    assert (lines[:, 1] <= lines[:, 0]).all()
    np.testing.assert_array_equal(lines[:, 2], np.rint(tile[lines[:, 0], lines[:, 1]] * 1000))


def test_rollout_of_a_long_input_gives_the_chosen_rows_without_the_whole_array(pieces_only):
    import core

    path, result = pieces_only
    at = start(model=path, text=LONG_TEXT, token=150, layer=1, method="rollout")
    assert_clean(at)
    assert not at.error
    expected = core.rollout_rows(result, [150], 1)[0]
    table = at.dataframe[0].value
    assert table["position"].iloc[0] == int(np.argmax(expected))
    assert table["weight"].iloc[0] == pytest.approx(float(expected.max()), rel=1e-6)
    assert table["token"].iloc[0] == result.tokens[int(np.argmax(expected))].text
    at.multiselect(key="long_chosen_rows").set_value([20]).run()
    assert_clean(at)
    assert len(at.dataframe) == 2  # token 20's row, then the selected 150's
    twenty = core.rollout_rows(result, [20], 1)[0]
    assert at.dataframe[0].value["weight"].iloc[0] == pytest.approx(float(twenty.max()), 1e-6)


def test_a_method_that_reads_the_model_again_works_beyond_the_whole_array_budget(pieces_only):
    import core
    from core.methods import MethodRequest

    path, result = pieces_only
    at = start(model=path, text=LONG_TEXT, token=150, layer=1, method="attention_norm")
    assert_clean(at)
    assert not at.error
    request = MethodRequest(result=result, model=load_model(path))
    norms = core.run_method("attention_norm", request).per_layer[1]
    # The matrix of a text longer than the explorer is block-averaged: every drawn value lies
    # within the norms' range, and none is the refusal of a method beyond its length.
    drawn = heatmap(at)["v"].to_numpy()
    assert drawn.size > 0 and norms.min() - 1e-6 <= drawn.min() <= drawn.max() <= norms.max()
    assert not [i.value for i in at.info if "reads at most" in i.value]


def test_flow_stop_keeps_the_tokens_computed(expected):
    from ui.cache import Inputs, method_result, result_store
    from ui.costly import CHUNK_ROWS

    result_store().clear()  # no flow rows from other tests: the first run shows Stop
    at = start(method="flow", layer=1)
    assert_clean(at)
    n = len(expected.tokens)
    assert n > CHUNK_ROWS  # two chunks: one done, one left when Stop is clicked
    # As if the run was interrupted after the first chunk: only its rows are stored.
    result_store().clear()
    first = tuple(range(CHUNK_ROWS))
    done = method_result(Inputs(EMBEDDED_MODEL, TEXT), "flow", "self", 1, first)
    at.button(key="method_stop").click().run()
    assert_clean(at)
    assert any(f"Stopped: {CHUNK_ROWS} of {n} tokens done" in i.value for i in at.info)
    matrix = shown(at)
    # Rows not computed are empty (NaN), never zeros.
    assert np.isnan(matrix[CHUNK_ROWS:]).all() and np.isfinite(matrix[:CHUNK_ROWS]).all()
    np.testing.assert_allclose(matrix[:CHUNK_ROWS], done.per_layer[1, :CHUNK_ROWS], **FLOAT16)
    # Continue computes the rest, keeping the stored chunk.
    at.button(key="method_continue").click().run()
    assert_clean(at)
    assert np.isfinite(shown(at)).all()


def test_value_zeroing_shows_progress_and_stop_keeps_nothing_half_made(
    tiny_model_path, progress_texts
):
    from ui.cache import result_store

    path = str(tiny_model_path("bert"))
    model = load_model(path)
    result_store().clear()  # value zeroing of this text is not stored: the run computes it
    at = start(model=path, text=TEXT, method="value_zeroing", layer=1)
    assert_clean(at)
    n = len(run_attention(model, TEXT).tokens)
    assert progress_texts[0] == "Computing value zeroing…"
    assert any(t.startswith(f"value zeroing: {n} of {n} tokens done") for t in progress_texts)
    expected = compute_method(model, TEXT, "value_zeroing", layers=(1,))
    np.testing.assert_allclose(shown(at), expected.per_layer[1], rtol=2**-11, atol=1e-7)
    # As if Stop interrupted the layer: it is computed in one piece, so nothing is stored.
    result_store().clear()
    at.button(key="method_stop").click().run()
    assert_clean(at)
    assert any(f"Stopped: 0 of {n} tokens done" in i.value for i in at.info)
    assert not [c for c in at.get("bidi_component") if "explorer" in c.proto.component_name]
    progress_texts.clear()
    at.button(key="method_continue").click().run()
    assert_clean(at)
    assert progress_texts  # computed again, with its progress
    assert explorer_payload(at)["shape"] == [1, n, n]


def test_an_example_fills_the_text_says_what_to_look_for_and_travels_as_text():
    from ui.sidebar import EXAMPLES

    at = start()
    at.selectbox(key="w_example").set_value("Sentence pair").run()
    assert_clean(at)
    text, pair, note = EXAMPLES["Sentence pair"]
    assert at.text_area(key="w_text").value == text
    assert at.query_params["text"] == text and at.query_params["pair"] == pair
    assert "example" not in at.query_params
    assert any(note == c.value for c in at.sidebar.caption)
    # A pair: the explorer draws the A/B bands from sentence B's first row.
    payload = explorer_payload(at)
    assert payload["segB"] is not None and payload["rows"][payload["segB"] - 1] == "[SEP]"


def test_a_click_in_the_head_view_selects_the_token_everywhere():
    at = start()
    at.session_state["head_view"] = {"select": {"token": 3}}
    at.run()
    assert_clean(at)
    assert at.selectbox(key="w_token").value == 3
    assert at.query_params["token"] == "3"
    assert head_view_payload(at)["sel"] == 3


def test_a_long_inputs_neuron_view_draws_the_keys_its_query_weighs_most(pieces_only):
    from core import neuron_view
    from core.neuron import strongest_keys
    from ui.long_view import NEURON_KEYS

    path, result = pieces_only
    at = start(model=path, text=LONG_TEXT, token=150, layer=1, head=2, neuron=1)
    assert_clean(at)
    assert not at.error
    charts = at.get("vega_lite_chart")
    (index,) = [i for i, c in enumerate(charts) if "query vector" in c.proto.spec]
    expected = neuron_view(load_model(path), LONG_TEXT, 1, 2, 150)
    keys = strongest_keys(expected, NEURON_KEYS)
    assert len(keys) in (NEURON_KEYS, NEURON_KEYS + 1) and 150 in keys  # and the query
    bars = table_with(at, index, {"k", "score", "weight"})
    np.testing.assert_allclose(bars["weight"].to_numpy(), expected.weights[keys], rtol=1e-4)
    # They are the largest weights of the row, which the exact row of the result confirms.
    row = np.nan_to_num(result.row(1, 2, 150), nan=-1.0)
    assert np.sort(row[keys])[-NEURON_KEYS:].min() >= np.sort(row)[-NEURON_KEYS] - 1e-6


def test_log_scale_and_without_the_first_token_reach_the_explorer_and_the_link():
    at = start()
    payload = explorer_payload(at)
    assert payload["log"] is False and payload["dropFirst"] is False
    at.toggle(key="w_log_scale").set_value(True).run()
    at.toggle(key="w_without_first").set_value(True).run()
    assert_clean(at)
    payload = explorer_payload(at)
    assert payload["log"] is True and payload["dropFirst"] is True
    link = {key: at.query_params[key] for key in at.query_params}
    assert link["log_scale"] == "1" and link["without_first"] == "1"
    again = start(**link)
    assert_clean(again)
    assert explorer_payload(again)["log"] is True and explorer_payload(again)["dropFirst"] is True


def test_the_sidebar_log_scale_reaches_a_long_inputs_explorer(pieces_only):
    path, _ = pieces_only
    at = start(model=path, text=LONG_TEXT, token=10)
    assert explorer_payload(at)["log"] is False
    at.toggle(key="w_log_scale").set_value(True).run()
    assert_clean(at)
    payload = explorer_payload(at)
    assert "long" in payload and payload["log"] is True


def test_line_settings_and_downloads_are_in_popovers_that_name_the_settings():
    # In popovers, drawn by the browser when opened: the first view does not load their code.
    at = start(edges=4, threshold=0.05)
    assert_clean(at)
    labels = [p.proto.popover.label for p in at.get("popover")]
    assert "Lines: the strongest 4 per token, minimum weight 0.05" in labels
    assert "CSV and JSON downloads" in labels
    lines = head_view_payload(at)
    assert lines["topK"] == 4 and lines["thr"] == pytest.approx(0.05)
    at.slider(key="w_edges").set_value(6).run()
    assert head_view_payload(at)["topK"] == 6 and at.query_params["edges"] == "6"
    assert "Lines: the strongest 6 per token, minimum weight 0.05" in [
        p.proto.popover.label for p in at.get("popover")
    ]
    downloads = [b.proto.label for b in at.get("download_button")]
    assert downloads == [
        "Layer 0 as CSV",
        "Layer 0 as JSON",
        "All layers and heads as CSV",
        "All layers and heads as JSON",
    ]
