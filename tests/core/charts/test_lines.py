"""The line view's complete head legend and its fit to a column."""

from __future__ import annotations

from core.charts import head_view_lines
from tests.core.charts.conftest import random_attention


def test_line_view_legend_lists_every_head_and_wraps(valid_spec):
    weights = random_attention(6, heads=12)
    spec = valid_spec(head_view_lines(weights, list("abcdef"), list(range(12)), column_width=420))
    legend = spec["layer"][0]["encoding"]["color"]["legend"]
    assert legend["values"] == list(range(12))
    assert legend["symbolLimit"] > 12
    assert 1 <= legend["columns"] <= 12
    assert 60 + legend["columns"] * 48 <= 420
    assert spec["width"] + 2 * 110 + 20 <= 420


def test_line_view_width_is_kept_without_a_column(valid_spec):
    spec = valid_spec(head_view_lines(random_attention(4, heads=2), list("abcd"), [3, 7]))
    assert spec["width"] == 240
    assert spec["layer"][0]["encoding"]["color"]["legend"]["values"] == [3, 7]
