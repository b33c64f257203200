"""Model families in the dashboard: encoder-decoder stacks, causal masks, next-token predictions,
generation and the neuron view, driven from the entrypoint with tiny random checkpoints."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core import (
    generate_with_attention,
    get_method,
    list_methods,
    load_model,
    neuron_view,
    predict_next,
    run_attention,
)
from core.methods import method_names
from tests.pages.conftest import (
    FLOAT16,
    assert_clean,
    explorer_drawn,
    explorer_payload,
    explorer_shown,
    explorer_table,
    head_grid_drawn,
    start,
    table_with,
)
from ui.session import VIEW_KEY

TEXT = "The cat sat on the mat."
TARGET = "A dog ran in the park."


def heatmap(at, index: int | None = None):
    """Chart `index`'s cells, or (no index) the Attention page's explorer's."""
    if index is None and explorer_drawn(at):
        return explorer_table(at)
    return table_with(at, index or 0, {"q", "k", "v"})


def as_matrix(table, shape: tuple[int, int]) -> np.ndarray:
    """The heatmap's cells as a `[q, k]` matrix, NaN where no cell was drawn."""
    matrix = np.full(shape, np.nan)
    matrix[table["q"].to_numpy(), table["k"].to_numpy()] = table["v"].to_numpy()
    return matrix


def stack_controls(at):
    return [s for s in at.segmented_control if s.key == "w_stack"]


@pytest.fixture(scope="module")
def loaded(tiny_model_path):
    """`loaded(family) -> LoadedModel`, the same checkpoint the app loads by path."""
    cache = {}

    def get(family: str):
        if family not in cache:
            cache[family] = load_model(str(tiny_model_path(family)))
        return cache[family]

    return get


# ------------------------------------------------------------------ encoder-decoder stacks
@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_no_stack_selector_or_target_box_for_single_stack_models(tiny_model_path, family):
    at = start(model=tiny_model_path(family), text=TEXT)
    assert_clean(at)
    assert not stack_controls(at)
    assert "Target text (decoder)" not in [t.label for t in at.sidebar.text_input]


@pytest.mark.parametrize("family", ["bart", "t5"])
def test_switching_stacks_changes_the_heatmap(tiny_model_path, loaded, family):
    expected = run_attention(loaded(family), TEXT, target_text=TARGET)
    source, target = len(expected.tokens), len(expected.decoder_tokens)
    at = start(model=tiny_model_path(family), text=TEXT, target=TARGET)
    assert_clean(at)
    (control,) = stack_controls(at)
    assert control.options == ["Encoder", "Decoder", "Cross"]
    assert heatmap(at).num_rows == source * source

    control.set_value("decoder_self").run()
    assert_clean(at)
    table = heatmap(at)
    # The decoder only looks back: its lower triangle, diagonal included.
    assert table.num_rows == target * (target + 1) // 2
    assert (table["k"].to_numpy() <= table["q"].to_numpy()).all()
    assert at.query_params["stack"] == "decoder_self"

    stack_controls(at)[0].set_value("cross").run()
    assert_clean(at)
    table = heatmap(at)
    # Rows are the target (decoder) tokens, columns the source tokens.
    assert table.num_rows == target * source
    assert table["q"].to_numpy().max() == target - 1
    assert table["k"].to_numpy().max() == source - 1
    np.testing.assert_allclose(
        as_matrix(table, (target, source)), expected.cross_attentions[0].mean(0), **FLOAT16
    )
    assert at.query_params["stack"] == "cross"


def test_stack_and_target_come_back_from_the_link(tiny_model_path, loaded):
    expected = run_attention(loaded("bart"), TEXT, target_text=TARGET)
    at = start(model=tiny_model_path("bart"), text=TEXT, target=TARGET, stack="cross", head=1)
    assert_clean(at)
    assert stack_controls(at)[0].value == "cross"
    assert at.text_input(key="w_target").value == TARGET
    shape = (len(expected.decoder_tokens), len(expected.tokens))
    np.testing.assert_allclose(
        as_matrix(heatmap(at), shape), expected.cross_attentions[0, 1], **FLOAT16
    )


def test_typing_a_target_puts_it_in_the_link(tiny_model_path):
    at = start(model=tiny_model_path("bart"), text=TEXT)
    assert_clean(at)
    assert any("Target generated greedily" in i.value for i in at.info)
    at.text_input(key="w_target").set_value(TARGET).run()
    assert_clean(at)
    assert at.query_params["target"] == TARGET
    assert not any("generated greedily" in i.value for i in at.info)


def test_cross_attention_offers_no_rollout_or_flow(tiny_model_path, loaded):
    at = start(model=tiny_model_path("bart"), text=TEXT, target=TARGET, method="rollout")
    assert_clean(at)
    method = at.segmented_control(key="w_method")
    # The encoder's self-attention offers every method the registry can read for BART.
    offered = [get_method(name).label for name in list_methods(loaded("bart"))]
    assert method.options == offered and offered[:3] == ["raw", "rollout", "flow"]
    stack_controls(at)[0].set_value("cross").run()
    assert_clean(at)
    # Rollout was selected: it falls back to the raw weights, and the page says why.
    assert any("rollout is not offered" in w.value for w in at.warning)
    assert any("not offered for cross attention" in c.value for c in at.caption)
    assert at.segmented_control(key="w_method").options == ["raw", "gradient × attention"]
    expected = run_attention(loaded("bart"), TEXT, target_text=TARGET)
    shape = (len(expected.decoder_tokens), len(expected.tokens))
    np.testing.assert_allclose(
        as_matrix(heatmap(at), shape), expected.cross_attentions[0].mean(0), **FLOAT16
    )
    # Later runs keep explaining the missing methods, without the fallback box.
    at.selectbox(key="w_layer").set_value(1).run()
    assert_clean(at)
    assert any("not offered for cross attention" in c.value for c in at.caption)


def test_cross_attention_hides_special_tokens_on_each_side(tiny_model_path, loaded):
    expected = run_attention(loaded("bart"), TEXT, target_text=TARGET)
    at = start(model=tiny_model_path("bart"), text=TEXT, target=TARGET, stack="cross")
    at.toggle(key="w_hide_special").set_value(True).run()
    assert_clean(at)
    table = heatmap(at)
    shown_target = sum(not t.is_special for t in expected.decoder_tokens)
    shown_source = sum(not t.is_special for t in expected.tokens)
    assert table.num_rows == shown_target * shown_source
    matrix = as_matrix(table, (shown_target, shown_source))
    np.testing.assert_allclose(matrix.sum(-1), 1.0, rtol=1e-3)  # rows renormalised


@pytest.mark.parametrize(
    ("stack", "why"),
    [
        ("decoder_self", "not yet for the decoder attention"),
        ("cross", "cross attention maps target tokens to source tokens"),
    ],
)
def test_every_method_a_stack_does_not_offer_is_named_with_its_reason(
    tiny_model_path, loaded, stack, why
):
    at = start(model=tiny_model_path("bart"), text=TEXT, target=TARGET, stack=stack)
    assert_clean(at)
    offered = at.segmented_control(key="w_method").options
    missing = [get_method(m).label for m in method_names() if get_method(m).label not in offered]
    assert missing  # each stack of an encoder-decoder lacks some method
    [note] = [c.value for c in at.caption if "not offered for" in c.value]  # one line
    label = loaded("bart").family.stack_spec(stack).label.lower()
    names = missing[0] if len(missing) == 1 else f"{', '.join(missing[:-1])} and {missing[-1]}"
    assert note.startswith(
        f"{names} {'is' if len(missing) == 1 else 'are'} not offered for {label}"
    )
    assert why in note
    assert "Raw weights are shown" not in note  # only the fallback warning says what is shown


def test_the_encoder_offers_every_method_and_gradient_attention_reads_every_stack(
    tiny_model_path,
):
    at = start(model=tiny_model_path("bart"), text=TEXT, target=TARGET)
    assert_clean(at)
    labels = [get_method(m).label for m in method_names()]
    assert at.segmented_control(key="w_method").options == labels
    assert not [c.value for c in at.caption if "not offered for" in c.value]
    for stack in ("decoder_self", "cross"):
        at = start(
            model=tiny_model_path("bart"),
            text=TEXT,
            target=TARGET,
            stack=stack,
            method="grad_attention",
        )
        assert_clean(at)
        assert at.segmented_control(key="w_method").value == "grad_attention"
        assert heatmap(at).num_rows > 0 and not at.warning


def test_decoder_rollout_is_offered(tiny_model_path):
    at = start(model=tiny_model_path("bart"), text=TEXT, target=TARGET, stack="decoder")
    at.segmented_control(key="w_method").set_value("rollout").run()
    assert_clean(at)
    table = heatmap(at)
    assert (table["k"].to_numpy() <= table["q"].to_numpy()).all()


def test_overview_shows_each_stack(tiny_model_path):
    at = start(model=tiny_model_path("t5"), text=TEXT, target=TARGET)
    at.switch_page("pages/overview.py").run()
    assert_clean(at)
    assert len(at.dataframe[0].value) == 2 * 4
    stack_controls(at)[0].set_value("cross").run()
    assert_clean(at)
    assert any("cross attention relates two different texts" in i.value for i in at.info)
    assert not at.dataframe  # head statistics are for self-attention
    assert head_grid_drawn(at)  # the grid is still drawn
    stack_controls(at)[0].set_value("decoder_self").run()
    assert_clean(at)
    assert len(at.dataframe[0].value) == 2 * 4


def test_empty_target_is_generated(tiny_model_path, loaded):
    at = start(model=tiny_model_path("bart"), text=TEXT, target="   ")
    assert_clean(at)
    expected = run_attention(loaded("bart"), TEXT)
    assert expected.target_generated
    assert any(i.value.startswith("Target generated greedily") for i in at.info)
    stack_controls(at)[0].set_value("cross").run()
    assert_clean(at)
    table = heatmap(at)
    assert table["q"].to_numpy().max() == len(expected.decoder_tokens) - 1


def test_target_longer_than_the_model_reads_is_truncated_with_a_warning(tiny_model_path):
    at = start(model=tiny_model_path("bart"), text=TEXT, target="word " * 700)
    assert_clean(at)
    assert any("target text is longer" in w.value for w in at.warning)
    stack_controls(at)[0].set_value("cross").run()
    assert_clean(at)
    assert heatmap(at).num_rows > 0


# ------------------------------------------------------------------ causal masks
def test_causal_heatmap_leaves_the_upper_triangle_empty(tiny_model_path, loaded):
    expected = run_attention(loaded("gpt2"), TEXT)
    n = len(expected.tokens)
    at = start(model=tiny_model_path("gpt2"), text=TEXT, head=2)
    assert_clean(at)
    table = heatmap(at)
    assert table.num_rows == n * (n + 1) // 2
    assert (table["k"].to_numpy() <= table["q"].to_numpy()).all()
    matrix = as_matrix(table, (n, n))
    lower = np.tril(np.ones((n, n), dtype=bool))
    np.testing.assert_allclose(matrix[lower], expected.attentions[0, 2][lower], **FLOAT16)
    # Merged words and rollout keep the triangle empty too.
    at.toggle(key="w_merge_words").set_value(True).run()
    at.segmented_control(key="w_method").set_value("rollout").run()
    assert_clean(at)
    table = heatmap(at)
    assert (table["k"].to_numpy() <= table["q"].to_numpy()).all()


def test_causal_heatmap_of_a_long_input_stays_causal(tiny_model_path, monkeypatch):
    text = " ".join(["the cat sat on the mat"] * 20)  # 120 tokens
    at = start(model=tiny_model_path("gpt2"), text=text)
    assert_clean(at)
    table = heatmap(at)
    n = table["q"].to_numpy().max() + 1
    assert n > 100 and table.num_rows == n * (n + 1) // 2
    assert (table["k"].to_numpy() <= table["q"].to_numpy()).all()
    # Beyond the explorer's whole length: its pooled overview and exact tiles stay causal.
    import ui.explorer

    monkeypatch.setattr(ui.explorer, "MAX_TOKENS", 80)
    at = start(model=tiny_model_path("gpt2"), text=text)
    assert_clean(at)
    payload = explorer_payload(at)
    edges = np.array(payload["long"]["rowEdges"])
    grid = ui.explorer.decode_values(payload["overview"], [len(edges) - 1] * 2)
    future = edges[None, :-1] > edges[1:, None] - 1  # a block wholly after its rows
    assert np.isnan(grid[future]).all() and np.isfinite(grid[~future]).all()
    at.session_state["long_explorer"] = {"tiles": {"tiles": [[64, 0], [64, 64]]}}
    at.run()
    assert_clean(at)
    payload, at_byte = explorer_payload(at), 0
    for row, col, h, w in payload["tiles"]:
        tile = ui.explorer.decode_values(payload["tileData"][at_byte : at_byte + 2 * h * w], [h, w])
        at_byte += 2 * h * w
        q, k = np.indices((h, w))
        assert (np.isnan(tile) == (col + k > row + q)).all()


# ------------------------------------------------------------------ next token and generation
def test_masked_page_shows_next_token_predictions_for_gpt2(tiny_model_path, loaded):
    at = start(model=tiny_model_path("gpt2"), text=TEXT)
    at.switch_page("pages/masked.py").run()
    assert_clean(at)
    assert not any("no masked-word head" in w.value for w in at.warning)
    assert any("Next token" in s.value for s in at.subheader)
    expected = predict_next(loaded("gpt2"), TEXT, 5)
    bars = table_with(at, 0, {"rank", "p", "token"})
    assert bars["token"].to_pylist() == [p.token for p in expected]
    np.testing.assert_allclose(bars["p"].to_numpy(), [p.score for p in expected], rtol=1e-4)
    # Beside the bars: the last position's attention in every layer and head.
    profile = table_with(at, 1, {"layer", "head", "k", "v"})
    n = len(run_attention(loaded("gpt2"), TEXT).tokens)
    assert profile.num_rows == 2 * 4 * n
    at.slider[0].set_value(3).run()
    assert table_with(at, 0, {"rank", "p"}).num_rows == 3


def test_generated_tokens_attention_to_the_prompt(tiny_model_path, loaded):
    at = start(model=tiny_model_path("gpt2"), text=TEXT)
    at.switch_page("pages/masked.py").run()
    at.slider(key="w_generate").set_value(4).run()
    at.selectbox(key="w_head").set_value(1).run()
    assert_clean(at)
    expected = generate_with_attention(loaded("gpt2"), TEXT, 4)
    start_at = expected.generated_from
    charts = at.get("vega_lite_chart")
    (index,) = [i for i, c in enumerate(charts) if "Generated tokens" in c.proto.spec]
    table = heatmap(at, index)
    generated = len(expected.tokens) - start_at
    assert table["q"].to_numpy().max() == generated - 1
    assert table["k"].to_numpy().max() == start_at - 1
    np.testing.assert_allclose(
        as_matrix(table, (generated, start_at)),
        expected.attentions[0, 1, start_at:, :start_at],
        rtol=1e-4,
        atol=1e-9,
    )
    assert any("Continuation" in m.value for m in at.markdown)


# ------------------------------------------------------------------ neuron view
def open_neuron_view(at):
    """Open the neuron view as a click on its expander does (AppTest cannot click one)."""
    view = at.session_state[VIEW_KEY]
    at.session_state[VIEW_KEY] = dataclasses.replace(view, neuron=True)
    return at.run()


def test_neuron_view_draws_the_vectors_for_bert(tiny_model_path, loaded):
    at = start(model=tiny_model_path("bert"), text=TEXT, layer=1, head=2, token=3)
    assert_clean(at)
    assert not any("query vector" in c.proto.spec for c in at.get("vega_lite_chart"))
    open_neuron_view(at)
    assert_clean(at)
    charts = at.get("vega_lite_chart")
    (index,) = [i for i, c in enumerate(charts) if "query vector" in c.proto.spec]
    expected = neuron_view(loaded("bert"), TEXT, 1, 2, 3)
    keys = table_with(at, index, {"k", "d", "key"})
    n, d = expected.key_vectors.shape
    assert keys.num_rows == n * d
    bars = table_with(at, index, {"k", "score", "weight"})
    np.testing.assert_allclose(bars["weight"].to_numpy(), expected.weights, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(bars["score"].to_numpy(), expected.scores, rtol=1e-4, atol=1e-9)
    products = table_with(at, index, {"k", "d", "product"})
    assert products.num_rows == n * d


def test_neuron_view_asks_for_one_head(tiny_model_path):
    at = open_neuron_view(start(model=tiny_model_path("bert"), text=TEXT))
    assert_clean(at)
    assert any("Choose one head" in i.value for i in at.info)


def test_neuron_view_of_gpt2_leaves_masked_keys_out(tiny_model_path):
    at = open_neuron_view(start(model=tiny_model_path("gpt2"), text=TEXT, head=0, token=2))
    assert_clean(at)
    charts = at.get("vega_lite_chart")
    (index,) = [i for i, c in enumerate(charts) if "query vector" in c.proto.spec]
    bars = table_with(at, index, {"k", "score", "weight"})
    assert bars["k"].to_pylist() == [0, 1, 2]


def test_neuron_view_draws_a_rotary_grouped_query_model(tiny_model_path):
    # Llama's queries and keys are read after rotation, each query head with its group's key.
    at = open_neuron_view(start(model=tiny_model_path("llama"), text=TEXT, head=1, token=3))
    assert_clean(at)
    assert not at.error
    assert not any("does not support" in i.value for i in at.info)
    assert any("query vector" in c.proto.spec for c in at.get("vega_lite_chart"))
    # The rest of the page is unaffected.
    assert heatmap(at).num_rows > 0


def test_neuron_view_for_the_decoder_stack_points_to_the_encoder(tiny_model_path):
    at = start(model=tiny_model_path("bart"), text=TEXT, target=TARGET, stack="cross", head=0)
    open_neuron_view(at)
    assert_clean(at)
    assert any("Encoder stack" in i.value for i in at.info)


def test_a_sliding_window_leaves_the_keys_it_never_reads_empty(tiny_model_path):
    from tests.tiny_models import SLIDING_WINDOW

    text = "the cat sat on the mat and the dog sat on the rug by the door today"
    at = start(model=tiny_model_path("mistral"), text=text, head=0)
    assert_clean(at)
    matrix = explorer_shown(at)
    n = matrix.shape[0]
    assert n > SLIDING_WINDOW + 2
    i, j = np.indices((n, n))
    seen = (i - j >= 0) & (i - j < SLIDING_WINDOW)
    # Later keys and keys beyond the window are empty (NaN), never zeros; the rest is drawn.
    assert np.isnan(matrix[~seen]).all() and np.isfinite(matrix[seen]).all()
