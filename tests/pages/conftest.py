"""Helpers for driving the real app with Streamlit's AppTest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from tests.components import component_payload
from ui.runtime import patch_pages_manager, unpatch_pages_manager

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")


def start(page: str | None = None, **query) -> AppTest:
    """The app from its entrypoint, with optional URL query parameters, after its first run.

    `page` (e.g. "pages/overview.py") opens that page first, as a link to it does.
    """
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = str(value)
    if page is not None:
        at.switch_page(page)
    return at.run()


def on_page(page: str, **query) -> AppTest:
    """The app opened on `page` (e.g. "pages/overview.py") after a first run with `query`."""
    at = start(**query)
    at.switch_page(page).run()
    assert_clean(at)
    return at


def chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]


def chart_tables(at: AppTest, index: int) -> list[pa.Table]:
    """Every inline dataset of chart `index`, decoded from Arrow IPC."""
    chart = at.get("vega_lite_chart")[index]
    return [pa.ipc.open_stream(d.data.data).read_all() for d in chart.proto.datasets]


def table_with(at: AppTest, index: int, columns: set[str]) -> pa.Table:
    """The dataset of chart `index` that has all of `columns`."""
    for table in chart_tables(at, index):
        if columns <= set(table.column_names):
            return table
    raise AssertionError(f"chart {index} has no dataset with columns {columns}")


def assert_clean(at: AppTest) -> None:
    """No exception box on the page."""
    assert not at.exception, [e.value for e in at.exception]


@pytest.fixture(scope="session")
def _page_corpus_store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("corpus_store") / "corpus.duckdb"


@pytest.fixture(autouse=True)
def _corpus_store_outside_the_home_directory(_page_corpus_store, monkeypatch):
    """The Corpus page opens its store on every run: never the user's cache in a test."""
    monkeypatch.setenv("ATLAS_CORPUS_STORE", str(_page_corpus_store))


@pytest.fixture(autouse=True)
def _navigation_mode():
    """Run reruns the way the real server does once `st.navigation` has been called."""
    patch_pages_manager()
    yield
    unpatch_pages_manager()


def head_view_payload(at: AppTest) -> dict:
    """The data the page's browser head view (`ui.head_view`) was given in the last run."""
    from ui.head_view.component import COMPONENT_NAME

    return component_payload(at, COMPONENT_NAME)


def explorer_payload(at: AppTest) -> dict:
    """The data the page's explorer (`ui.explorer`) was given in the last run."""
    from ui.explorer.component import COMPONENT_NAME

    return component_payload(at, COMPONENT_NAME)


def compare_explorers(at: AppTest) -> list[dict]:
    """The Compare page's explorers in compare mode (`ui.explorer.compare_explorer`) of the last
    run, decoded, in page order: each ``{"compare": ..., "panels": [...]}``. A run that showed
    the same matrices before ships their keys only (the browser keeps them): then the test asks
    again, as the browser's ``need`` would, so every panel holds its matrices."""
    from ui.explorer.component import COMPONENT_NAME
    from ui.explorer.payload import unpack_compare

    def found() -> list[dict]:
        return [
            unpack_compare(el.proto.bytes)
            for el in at.get("bidi_component")
            if el.proto.component_name == COMPONENT_NAME and el.proto.bytes
        ]

    payloads = found()
    if any(p["codes"] is None or p["exact"] is None for c in payloads for p in c["panels"]):
        for name in [k for k in at.session_state if str(k).endswith("__sent_data")]:
            del at.session_state[name]
        at.run()
        payloads = found()
    return payloads


def compare_panels(at: AppTest) -> int:
    """How many matrices the Compare page's explorers draw."""
    return sum(len(payload["panels"]) for payload in compare_explorers(at))


def head_grid_drawn(at: AppTest) -> bool:
    """Whether the overview drew its head grid (`ui.head_grid`) with an atlas image."""
    from ui.head_grid import COMPONENT_NAME

    found = [c for c in at.get("bidi_component") if c.proto.component_name == COMPONENT_NAME]
    return len(found) == 1 and component_payload(at, COMPONENT_NAME)["image"].startswith("data:")


def explorer_drawn(at: AppTest) -> bool:
    """Whether the Attention page drew its explorer (matrix and the selected token's bars)
    with at least one row."""
    from ui.explorer.component import COMPONENT_NAME

    found = [c for c in at.get("bidi_component") if c.proto.component_name == COMPONENT_NAME]
    return len(found) == 1 and bool(explorer_payload(at)["rows"])


def explorer_values(at: AppTest) -> np.ndarray:
    """Every matrix the explorer holds, `[matrices, q, k]`, as the browser decodes them: 8-bit
    codes (`EIGHT_BIT`), the matrix shown first in float16 (`FLOAT16`).

    A run showing the matrices the session sent last ships their key only (the browser keeps
    them): then the test, having no browser copy, asks for them as the browser would.
    """
    from ui.explorer import decode_codes, decode_values

    payload = explorer_payload(at)
    if payload["exact"] is None or (payload["codes"] is None and not payload.get("later")):
        del at.session_state["explorer__sent_data"]  # what the `need` trigger's callback does
        at.run()
        payload = explorer_payload(at)
    if payload["codes"] is None:
        # A new layer's shown matrix went first; the hidden element carried the codes.
        from ui.explorer.component import HEADS_NAME

        heads = component_payload(at, HEADS_NAME)
        assert heads["headsOf"] == payload["key"]
        payload = {**payload, "codes": heads["codes"], "scales": heads["scales"]}
    values = decode_codes(payload)
    values[payload["exactOf"]] = decode_values(payload["exact"], payload["shape"][1:])
    return values


def explorer_shown(at: AppTest) -> np.ndarray:
    """The matrix the explorer shows first, `[q, k]` (float16)."""
    return explorer_values(at)[explorer_payload(at)["head"]]


def explorer_table(at: AppTest) -> pa.Table:
    """The matrix the explorer shows first as the old heatmap's table: a row `q, k, v` per
    drawn cell (cells never computed, NaN, are not drawn). Values are float16."""
    matrix = explorer_shown(at)
    q, k = np.nonzero(np.isfinite(matrix))
    return pa.table({"q": q, "k": k, "v": matrix[q, k].astype(np.float64)})


FLOAT16 = {"rtol": 2**-11, "atol": 6e-8}
"""Tolerance of the explorer's float16 values: 3 significant digits (tiny values to 6e-8)."""
EIGHT_BIT = {"rtol": 0, "atol": 1 / 508 + 1e-6}
"""Tolerance of the explorer's 8-bit values of weights ≤ 1: half a step of a row's largest."""


def find_all(spec: object, key: str) -> list:
    """Every value under `key` anywhere in a chart spec (nested dicts and lists)."""
    found = []
    if isinstance(spec, dict):
        for name, value in spec.items():
            if name == key:
                found.append(value)
            found.extend(find_all(value, key))
    elif isinstance(spec, list):
        for item in spec:
            found.extend(find_all(item, key))
    return found


def colour_domains(spec: dict) -> list[list[float]]:
    """The colour scale domains of a chart (one per colour encoding with a fixed domain)."""
    return [
        c["scale"]["domain"]
        for c in find_all(spec, "color")
        if isinstance(c, dict) and isinstance(c.get("scale"), dict) and "domain" in c["scale"]
    ]


@pytest.fixture
def progress_texts(monkeypatch) -> list[str]:
    """Every text the app's progress bars showed (they are emptied once the work is done)."""
    import streamlit

    texts: list[str] = []
    real = streamlit.progress

    class Recorded:
        def __init__(self, bar) -> None:
            self.bar = bar

        def progress(self, value, text=None):
            texts.append(text)
            return self.bar.progress(value, text=text)

        def empty(self):
            return self.bar.empty()

    def recording(value, text=None, **kwargs):
        texts.append(text)
        return Recorded(real(value, text=text, **kwargs))

    monkeypatch.setattr(streamlit, "progress", recording)
    return texts
