"""Every chart the pages send is a valid Vega-Lite spec.

The server skips Altair's own schema validation for speed (`ui.widgets.show_chart`); this
module validates what the pages actually send instead, for each kind of view.
"""

from __future__ import annotations

import copy

import jsonschema
import pytest
from altair.utils.schemapi import validate_jsonschema
from altair.vegalite.v6.schema import load_schema

from tests.e2e.harness import long_text
from tests.pages.conftest import assert_clean, chart_specs, start

TEXT = "The cat sat on the [MASK] because it was tired."
SCHEMA = load_schema()


def validate(spec: dict) -> None:
    validate_jsonschema(spec, SCHEMA)


def page_specs(page: str | None, **query) -> list[dict]:
    at = start(**query)
    if page:
        at.switch_page(page).run()
    assert_clean(at)
    if page == "pages/compare.py":
        at.text_input(key="w_replacement").set_value("dog").run()
        assert_clean(at)
    specs = chart_specs(at)
    assert specs, "the view drew no chart"
    return specs


VIEWS = {
    # The Attention page's matrix and bars are the explorer (a component, `tests/ui/explorer`);
    # its Vega charts are the neuron view and, beyond the explorer's length, the long-input path.
    # The overview's grid is a component too (`ui.head_grid`, `tests/ui/head_grid`), and so
    # are Compare's matrices (the explorer's compare mode): its Vega charts are the predictions.
    "attention, neuron view": (None, {"neuron": "1", "head": "0"}),
    "masked": ("pages/masked.py", {}),
}


@pytest.mark.parametrize("view", list(VIEWS))
def test_embedded_model_views_send_valid_specs(view):
    page, query = VIEWS[view]
    for spec in page_specs(page, **{"text": TEXT, **query}):
        validate(spec)


def test_the_long_input_path_sends_valid_specs(monkeypatch):
    import ui.explorer

    monkeypatch.setattr(ui.explorer, "MAX_TOKENS", 100)  # 120 tokens: overview and detail
    # Raw weights of a long input are the explorer's (`tests/ui/explorer`); another method's
    # whole matrix beyond its length is the Vega overview and detail.
    for spec in page_specs(None, text=long_text(120), method="rollout"):
        validate(spec)


@pytest.mark.parametrize(
    ("family", "page", "query"),
    [
        ("bert", "pages/masked.py", {}),
        ("roberta", "pages/compare.py", {}),  # the predictions before and after
        ("gpt2", None, {"neuron": "1", "head": "0"}),
        ("gpt2", "pages/masked.py", {}),
        ("gpt2", "pages/explain.py", {}),
    ],
)
def test_model_family_views_send_valid_specs(tiny_model_path, family, page, query):
    for spec in page_specs(page, model=tiny_model_path(family), text=TEXT, **query):
        validate(spec)


def test_the_check_rejects_an_invalid_spec():
    spec = copy.deepcopy(page_specs("pages/masked.py", text=TEXT)[0])
    spec["width"] = "as wide as you like"  # a number, "container" or a step
    with pytest.raises(jsonschema.ValidationError):
        validate(spec)
