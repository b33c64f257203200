"""The cache layer's one key builder and what it derives from the view and the registry."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import core
from core import ModelKind
from ui.cache import Inputs, inputs_of, method_settings, store_key
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
