"""Helpers for driving the real app with Streamlit's AppTest."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")


def start(**query) -> AppTest:
    """The app from its entrypoint, with optional URL query parameters, after its first run."""
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = str(value)
    return at.run()


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


@pytest.fixture(autouse=True)
def _navigation_mode(monkeypatch):
    """Run reruns the way the real server does once `st.navigation` has been called.

    A `pages/` folder makes Streamlit start in its legacy multipage mode; the real server leaves
    it for good on the first `st.navigation` call, but AppTest re-detects the folder before
    every run and would then execute the page file alone, skipping the entrypoint's sidebar.
    """
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)
