import numpy as np
import pytest

from core import EMBEDDED_MODEL, TruncationWarning, compute_method, load_model, run_attention
from tests.pages.conftest import assert_clean, head_view_payload, start, table_with

TEXT = "The cat sat on the mat because it was tired."


@pytest.fixture(scope="module")
def expected():
    return run_attention(load_model(EMBEDDED_MODEL), TEXT)


def heatmap(at):
    return table_with(at, 0, {"q", "k", "v"})


def test_default_run_draws_three_views(expected):
    at = start()
    assert_clean(at)
    assert not at.error
    # Heatmap and bars in Vega-Lite; the line view is the browser head view.
    assert len(at.get("vega_lite_chart")) == 2
    n = len(expected.tokens)
    payload = head_view_payload(at)
    assert len(payload["left"]) == n and len(payload["edges"]) == expected.num_heads
    table = heatmap(at)
    assert table.num_rows == n * n
    # Mean of heads of layer 0, cell by cell (values rounded to 5 significant digits).
    matrix = np.zeros((n, n))
    matrix[table["q"].to_numpy(), table["k"].to_numpy()] = table["v"].to_numpy()
    np.testing.assert_allclose(matrix, expected.attentions[0].mean(0), rtol=1e-4)


def test_changing_layer_head_and_method_changes_the_data(expected):
    at = start()
    first = heatmap(at)["v"].to_numpy()
    at.selectbox(key="w_layer").set_value(3).run()
    assert_clean(at)
    layer3 = heatmap(at)["v"].to_numpy()
    assert not np.allclose(first, layer3)
    at.selectbox(key="w_head").set_value(5).run()
    n = len(expected.tokens)
    table = heatmap(at)
    matrix = np.zeros((n, n))
    matrix[table["q"].to_numpy(), table["k"].to_numpy()] = table["v"].to_numpy()
    np.testing.assert_allclose(matrix, expected.attentions[3, 5], rtol=1e-4, atol=1e-9)
    assert at.query_params["layer"] == "3" and at.query_params["head"] == "5"


def test_query_parameters_restore_the_view(expected):
    at = start(layer=4, head=7, token=2)
    assert_clean(at)
    assert at.selectbox(key="w_layer").value == 4
    assert at.selectbox(key="w_head").value == 7
    assert at.selectbox(key="w_token").value == 2
    n = len(expected.tokens)
    table = heatmap(at)
    matrix = np.zeros((n, n))
    matrix[table["q"].to_numpy(), table["k"].to_numpy()] = table["v"].to_numpy()
    np.testing.assert_allclose(matrix, expected.attentions[4, 7], rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize(
    "query",
    [{"layer": 99}, {"layer": "abc"}, {"head": 40}, {"token": 500}, {"method": "magic"}],
)
def test_bad_query_parameters_warn_and_fall_back(query):
    at = start(**query)
    assert_clean(at)
    assert at.warning, "a bad link parameter must be reported"
    assert len(at.get("vega_lite_chart")) == 2


def test_empty_text_shows_an_error_and_keeps_the_text():
    at = start()
    at.text_area(key="w_text").set_value("   ").run()
    assert_clean(at)
    assert any("empty" in e.value for e in at.error)
    assert at.text_area(key="w_text").value == "   "
    at.text_area(key="w_text").set_value("A new sentence works again.").run()
    assert not at.error and len(at.get("vega_lite_chart")) == 2


def test_hide_special_tokens_renormalises_rows(expected):
    at = start()
    at.toggle(key="w_hide_special").set_value(True).run()
    assert_clean(at)
    table = heatmap(at)
    n = len(expected.tokens) - 2
    assert table.num_rows == n * n
    sums = np.bincount(table["q"].to_numpy(), weights=table["v"].to_numpy())
    np.testing.assert_allclose(sums, 1.0, atol=1e-3)
    assert any("renormalised" in c.value for c in at.caption)


def test_merge_word_pieces():
    at = start(text="Unbelievably good")
    at.toggle(key="w_merge_words").set_value(True).run()
    assert_clean(at)
    # [CLS] unbelievably good [SEP]: the five pieces of "unbelievably" become one row.
    assert heatmap(at).num_rows == 4 * 4
    assert any("merged" in c.value for c in at.caption)


def test_rollout_and_flow(expected):
    at = start(method="rollout", layer=5)
    assert_clean(at)
    from core import attention_rollout

    n = len(expected.tokens)
    table = heatmap(at)
    matrix = np.zeros((n, n))
    matrix[table["q"].to_numpy(), table["k"].to_numpy()] = table["v"].to_numpy()
    np.testing.assert_allclose(matrix, attention_rollout(expected.attentions)[5], rtol=1e-4)

    at = start(method="flow", layer=1)
    assert_clean(at)
    assert heatmap(at).num_rows == n * n


def test_tiny_masked_lm_by_path(tiny_model_path):
    at = start(model=tiny_model_path("roberta"), text="the cat sat on the mat")
    assert_clean(at)
    assert not at.error
    assert len(at.get("vega_lite_chart")) == 2


def test_full_length_input_gets_overview_and_detail_not_the_whole_matrix():
    text = " ".join(["The quick brown fox jumps over the lazy dog."] * 60)
    at = start(text=text, token=200)
    assert_clean(at)
    assert any("were dropped" in w.value for w in at.warning)
    overview = table_with(at, 0, {"q", "k", "v"})
    detail = table_with(at, 1, {"q", "k", "v"})
    assert overview.num_rows == 64 * 64
    assert detail.num_rows == 48 * 48
    # The detail window is centred on the selected token and holds exact (rounded) weights.
    with pytest.warns(TruncationWarning):
        result = run_attention(load_model(EMBEDDED_MODEL), text)
    start_row = 200 - 24
    expected = result.attentions[0].mean(0)[start_row : start_row + 48, start_row : start_row + 48]
    matrix = np.zeros((48, 48))
    matrix[detail["q"].to_numpy(), detail["k"].to_numpy()] = detail["v"].to_numpy()
    np.testing.assert_allclose(matrix, expected, rtol=1e-4, atol=1e-9)
    # The head view draws every token, scrolling, with the strongest 3 lines per token.
    payload = head_view_payload(at)
    assert len(payload["left"]) == 512 and payload["maxHeight"] == 640


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
    table = heatmap(at)
    rows = set(table["q"].to_numpy().tolist())
    assert rows == set(first)
    matrix = np.full((n, n), np.nan)
    matrix[table["q"].to_numpy(), table["k"].to_numpy()] = table["v"].to_numpy()
    np.testing.assert_allclose(matrix[:CHUNK_ROWS], done.per_layer[1, :CHUNK_ROWS], rtol=1e-4)
    # Continue computes the rest, keeping the stored chunk.
    at.button(key="method_continue").click().run()
    assert_clean(at)
    assert heatmap(at).num_rows == n * n


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
    table = heatmap(at)
    matrix = np.full((n, n), np.nan)
    matrix[table["q"].to_numpy(), table["k"].to_numpy()] = table["v"].to_numpy()
    np.testing.assert_allclose(matrix, expected.per_layer[1], rtol=1e-4, atol=1e-7)
    # As if Stop interrupted the layer: it is computed in one piece, so nothing is stored.
    result_store().clear()
    at.button(key="method_stop").click().run()
    assert_clean(at)
    assert any(f"Stopped: 0 of {n} tokens done" in i.value for i in at.info)
    assert not at.get("vega_lite_chart")  # nothing half-made is drawn
    progress_texts.clear()
    at.button(key="method_continue").click().run()
    assert_clean(at)
    assert progress_texts  # computed again, with its progress
    assert heatmap(at).num_rows == n * n


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
    # A pair: the heatmap carries the A/B bands.
    assert '"title": "sentence"' in at.get("vega_lite_chart")[0].proto.spec


def test_a_click_in_the_head_view_selects_the_token_everywhere():
    at = start()
    at.session_state["head_view"] = {"select": {"token": 3}}
    at.run()
    assert_clean(at)
    assert at.selectbox(key="w_token").value == 3
    assert at.query_params["token"] == "3"
    assert head_view_payload(at)["sel"] == 3
