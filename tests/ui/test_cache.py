"""The cache layer's one key builder and what it derives from the view and the registry."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

import core
from core import EMBEDDED_MODEL, ModelKind
from core.display_matrix import prepare_display
from core.families import SELF
from core.pooling import pool_matrix
from ui.cache import (
    Inputs,
    attention,
    cached_model,
    inputs_of,
    method_settings,
    neuron_view,
    result_store,
    store_key,
    thumbnails,
)
from ui.state import DEFAULT


def model(kind: ModelKind, name: str = "m"):
    return SimpleNamespace(kind=kind, name=name)


def test_inputs_keep_a_target_for_encoder_decoders_only():
    view = dataclasses.replace(DEFAULT, model="x", pair="B", target="T")
    assert inputs_of(view, model(ModelKind.ENCODER_DECODER, "x")) == Inputs(
        "x", DEFAULT.text, "B", "T"
    )
    assert inputs_of(view, model(ModelKind.MASKED_LM, "x")).target == ""
    # A blank target means "generate", the same entry as no target.
    blank = dataclasses.replace(view, target="  ")
    assert inputs_of(blank, model(ModelKind.ENCODER_DECODER, "x")).target == ""


def test_one_key_per_kind_inputs_and_settings():
    inputs = Inputs("m", "text")
    assert store_key("attention", inputs) == ("attention", inputs)
    assert store_key("method", inputs, "flow", "self", (2,), None) != store_key(
        "method", inputs, "flow", "self", (3,), None
    )
    assert hash(store_key("thumbnails", inputs, "self", 24))  # usable as a dict key


def test_method_settings_follow_the_registry():
    for name in core.method_names():
        declared = {p.name for p in core.get_method(name).parameters}
        layers, rows = method_settings(name, 4, (1, 2))
        assert layers == ((4,) if "layers" in declared else None)
        assert rows == ((1, 2) if "rows" in declared else None)
    # Raw weights are computed once for every layer; flow per layer and rows.
    assert method_settings("raw", 4, (1,)) == (None, None)
    assert method_settings("flow", 4, (1,)) == ((4,), (1,))


def test_thumbnails_with_display_options_are_stored_like_the_rest():
    """The overview's thumbnails under hide-special are computed once and kept in the store."""
    inputs = Inputs(EMBEDDED_MODEL, "The cat sat.")
    key = store_key("thumbnails", inputs, SELF, 3, True, False)
    result_store().clear()
    shown = thumbnails(inputs, SELF, 3, hide_special=True)
    assert key in result_store()
    assert thumbnails(inputs, SELF, 3, hide_special=True) is shown  # the stored array
    attentions, tokens, _ = attention(inputs).stack(SELF)
    expected = pool_matrix(prepare_display(attentions, tokens, hide_special=True).matrix, 3)
    np.testing.assert_allclose(shown, expected)
    # [CLS] the cat sat . [SEP]: without the option the blocks include the special tokens.
    assert not np.allclose(thumbnails(inputs, SELF, 3), shown)


@pytest.mark.parametrize("options", [{}, {"hide_special": True}, {"merge_words": True}])
def test_causal_thumbnails_leave_unseen_cells_empty_under_every_option(tiny_model_path, options):
    inputs = Inputs(str(tiny_model_path("gpt2")), "the cat sat on the mat")
    grid = thumbnails(inputs, SELF, 48, **options)
    m = grid.shape[-1]
    upper = np.triu(np.ones((m, m), dtype=bool), 1)
    assert np.isnan(grid[..., upper]).all() and not np.isnan(grid[..., ~upper]).any()


def test_the_page_says_where_a_visitor_waits():
    from server.admission import Place
    from ui.cache import waiting_message

    assert "2 requests ahead of yours" in waiting_message(Place(2, heavy=False))
    heavy = waiting_message(Place(1, heavy=True))
    assert "heavy work" in heavy and "1 from another visitor ahead of yours" in heavy
    assert "3 from others" in waiting_message(Place(3, heavy=True))
    own = waiting_message(Place(1, heavy=True, own_in_flight=True))
    assert own.startswith("Your other heavy computation") and "not held up" in own


def test_token_estimate_before_tokenizing():
    from ui.cache import estimated_tokens

    assert estimated_tokens(Inputs("m", "The cat sat on the mat."), 512) == 13
    assert estimated_tokens(Inputs("m", " ".join(["word"] * 600)), 512) == 512
    assert estimated_tokens(Inputs("m", "One.", "Two."), 512) == 9


def same_view(a: core.NeuronView, b: core.NeuronView) -> None:
    np.testing.assert_allclose(a.query_vector, b.query_vector, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.key_vectors, b.key_vectors, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.weights, b.weights, rtol=1e-5, atol=1e-6)


def test_the_neuron_view_reads_the_stored_attention_without_a_forward_pass(
    tiny_model_path, monkeypatch
):
    inputs = Inputs(str(tiny_model_path("llama")), "the cat sat on the mat")
    result_store().clear()
    expected = core.neuron_view(cached_model(inputs.model), inputs.text, 1, 0, 3)
    attention(inputs)

    def no_pass(*args, **kwargs):
        raise AssertionError("a second forward pass")

    monkeypatch.setattr(cached_model(inputs.model).model, "forward", no_pass)
    view = neuron_view(inputs, 1, 0, 3)
    same_view(view, expected)
    assert store_key("neuron", inputs, 1, 0, 3) in result_store()


def test_a_result_held_as_weights_takes_its_own_pass_for_the_neuron_view(
    tiny_model_path, monkeypatch
):
    inputs = Inputs(str(tiny_model_path("llama")), "the cat sat on the mat")
    result_store().clear()
    expected = core.neuron_view(cached_model(inputs.model), inputs.text, 0, 1, 2)

    def held_as_weights(*args, **kwargs):
        raise core.NeuronViewUnsupportedError("weights only")

    monkeypatch.setattr(core, "neuron_view_of", held_as_weights)
    same_view(neuron_view(inputs, 0, 1, 2), expected)
