"""Point selections: the spec of Altair's constructor, without its garbage."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from typing import Any

import altair as alt
import numpy as np
import pytest
from altair.utils.schemapi import debug_mode

import core
from core.charts import (
    _common,
    attention_bars,
    bars,
    contribution_graph_chart,
    graph,
    grid,
    head_grid,
    head_view_lines,
    heatmaps,
    layer_head_profile,
    lines,
    spec_dict,
)
from core.methods import MethodResult
from core.tokens import Token

LABELS = list("abcdef")
WEIGHTS = np.random.default_rng(0).dirichlet(np.ones(6), size=(3, 6))


def share_graph():
    per_layer = np.array([[[1.0, 0.0], [0.4, 0.6]], [[1.0, 0.0], [0.5, 0.5]]])
    tokens = [Token("a", 0, 0, False), Token("b", 1, 1, False)]
    return core.layer_share_graph(MethodResult("alti", "self", tokens, tokens, per_layer), 1, 0.3)


BUILDERS: dict[str, tuple[Any, Callable[[], alt.TopLevelMixin]]] = {
    "bars": (bars, lambda: attention_bars(WEIGHTS[0, 0], WEIGHTS[0, 1], LABELS, 0)),
    "profile": (heatmaps, lambda: layer_head_profile(WEIGHTS[:2, :3], LABELS)),
    "lines": (lines, lambda: head_view_lines(WEIGHTS, LABELS, [0, 1, 2], top_k=2)),
    "lines, one selected": (
        lines,
        lambda: head_view_lines(WEIGHTS, LABELS, [0, 1, 2], top_k=2, selected=1),
    ),
    "grid": (grid, lambda: head_grid(WEIGHTS[None, :2, :4, :4])),
    "graph": (graph, lambda: contribution_graph_chart(share_graph(), ["a", "b"])),
}


def constructor_selection(name, fields, *, on="click", clear="dblclick", value=None, empty=None):
    """The construction `point_selection` replaced: every option given to Altair's constructor."""
    options: dict[str, Any] = {"on": on, "clear": clear}
    if value is not None:
        options["value"] = value
    if empty is not None:
        options["empty"] = empty
    return alt.selection_point(name=name, fields=fields, **options)


@pytest.mark.parametrize("name", BUILDERS)
def test_each_chart_spec_equals_the_constructor_form(name, monkeypatch):
    module, build = BUILDERS[name]
    new = spec_dict(build())
    monkeypatch.setattr(module, "point_selection", constructor_selection)
    assert spec_dict(build()) == new
    assert any("select" in p for p in new["params"])


CASES = [
    {"name": "token", "fields": ["pos"]},
    {"name": "head", "fields": ["layer", "head"]},
    {"name": "hover", "fields": ["src"], "on": "pointerover", "clear": "pointerout", "empty": True},
    {"name": "token", "fields": ["src"], "value": [{"src": 3}]},
]


def garbage_of(make: Callable[[], object]) -> int:
    """Objects left in reference cycles by one `make()` (gc off meanwhile)."""
    make()  # warm caches (schema loading) first
    gc.collect()
    gc.disable()
    try:
        make()
        return gc.collect()
    finally:
        gc.enable()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"] + str(len(c)))
def test_point_selection_spec_and_no_garbage(case):
    made = _common.point_selection(**case)
    old = constructor_selection(**case)
    assert made.to_dict() == old.to_dict()
    assert made.param.to_dict() == old.param.to_dict()
    assert made.empty == old.empty
    # Validating as it builds (Altair's default; the app turns it off, `ui.runtime`), the
    # constructor form leaves some 150 objects (caught ValidationErrors and their frames) to
    # the cycle collector; the helper leaves a handful.
    with debug_mode(True):
        assert garbage_of(lambda: constructor_selection(**case)) > 100
        assert garbage_of(lambda: _common.point_selection(**case)) <= 10


class Sentinel:
    """Stands for the page's result: a local of the frame that builds the chart."""


def build_beside_a_sentinel(build: Callable[[], alt.TopLevelMixin]) -> weakref.ref:
    sentinel = Sentinel()
    build()
    return weakref.ref(sentinel)


@pytest.mark.parametrize("debug", [True, False], ids=["validating", "as in the app"])
@pytest.mark.parametrize("name", BUILDERS)
def test_building_a_chart_keeps_no_caller_frame_alive(name, debug):
    """Altair errors caught while a chart is built keep the frames they passed through, and
    those reach the caller's (f_back): the page's result would live until a full collection.
    The layer-head profile's dict encoding and the graph's alt.condition/alt.value did so."""
    _, build = BUILDERS[name]
    with debug_mode(debug):
        build()
        gc.collect()
        gc.disable()
        try:
            held = build_beside_a_sentinel(build)() is not None
        finally:
            gc.enable()
    assert not held
