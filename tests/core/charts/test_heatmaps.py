"""Heatmap and mask-profile layout: sizes per column width, label thinning with a note,
colour scale modes, A/B segment bands, every head labelled."""

from __future__ import annotations

import numpy as np
import pytest

from core.chart_layout import LABEL_PX
from core.charts import attention_heatmap, chart_notes, layer_head_profile
from core.charts._common import NOTE_COLOUR
from core.display_matrix import WITHOUT_FIRST_NOTE
from core.scales import shared_max
from tests.core.charts.conftest import random_attention


def heat_layer(spec):
    return spec["layer"][0]


def labels(n):
    return [f"t{i}" for i in range(n)]


def test_short_input_labels_every_token_without_a_note(valid_spec):
    chart = attention_heatmap(random_attention(12), labels(12), column_width=700)
    spec = valid_spec(chart)
    enc = heat_layer(spec)["encoding"]
    assert enc["x"]["axis"]["values"] == list(range(12))
    assert enc["y"]["axis"]["values"] == list(range(12))
    assert enc["x"]["axis"]["labelOverlap"] is False
    assert chart_notes(chart) == []
    assert "subtitle" not in spec.get("title", {}) if isinstance(spec.get("title"), dict) else True


@pytest.mark.parametrize("column", [360, 520, 760, 1200])
def test_long_input_fits_the_column_and_says_what_it_thinned(valid_spec, column):
    n = 80
    chart = attention_heatmap(random_attention(n), labels(n), column_width=column, title="L0 H0")
    spec = valid_spec(chart)
    # Plot, the longest token labels (110 px) and the legend beside it stay in the column.
    legend_beside = column >= 520
    assert spec["width"] + 110 + 30 + (90 if legend_beside else 0) <= max(column, 120 + 140)
    assert spec["height"] == spec["width"]  # square cells
    values = heat_layer(spec)["encoding"]["x"]["axis"]["values"]
    spacing = spec["width"] / n * (values[1] - values[0])
    assert spacing >= LABEL_PX, "labelled positions are at least a label apart"
    step = values[1] - values[0]
    assert step > 1 and values == list(range(0, n, step))
    (note,) = chart_notes(chart)
    assert f"{n} in {spec['width']} px" in note
    assert spec["title"]["text"] == "L0 H0"
    assert " ".join(spec["title"]["subtitle"]) == note
    assert all(len(line) <= 48 for line in spec["title"]["subtitle"])
    # Grey, not Vega's default black: read on the dark theme's background too.
    assert spec["title"]["subtitleColor"] == NOTE_COLOUR
    assert min(int(NOTE_COLOUR[i : i + 2], 16) for i in (1, 3, 5)) >= 0x70
    assert max(int(NOTE_COLOUR[i : i + 2], 16) for i in (1, 3, 5)) <= 0xA0
    legend = heat_layer(spec)["encoding"]["color"].get("legend") or {}
    assert (legend.get("orient") == "bottom") == (not legend_beside)


def test_wide_column_draws_every_label_of_a_medium_input(valid_spec):
    spec = valid_spec(attention_heatmap(random_attention(40), labels(40), column_width=1200))
    assert spec["width"] >= 40 * LABEL_PX
    assert heat_layer(spec)["encoding"]["x"]["axis"]["values"] == list(range(40))


def test_without_a_column_the_old_default_sizes_hold(valid_spec):
    spec = valid_spec(attention_heatmap(random_attention(5), labels(5)))
    assert (spec["width"], spec["height"]) == (220, 220)
    spec = valid_spec(attention_heatmap(random_attention(50), labels(50)))
    assert spec["width"] == 680  # 22 px a cell up to 680 px


@pytest.mark.parametrize(
    ("scale", "expected_domain", "title_line"),
    [
        ("fixed", [0.0, 1.0], "0–1 fixed"),
        ("shared", [0.0, 0.8], "0–0.8 shared"),
    ],
)
def test_colour_scale_modes(valid_spec, scale, expected_domain, title_line):
    m = np.array([[0.1, 0.4], [0.2, 0.3]])
    spec = valid_spec(
        attention_heatmap(m, ["a", "b"], scale=scale, shared_max=0.8 if scale == "shared" else None)
    )
    color = heat_layer(spec)["encoding"]["color"]
    assert color["scale"]["domain"] == expected_domain
    assert color["scale"]["clamp"] is True
    assert color["title"] == ["attention", title_line]


def test_chart_scale_is_the_charts_own_maximum(valid_spec):
    m = np.array([[0.1, 0.4], [0.2, 0.3]])
    color = heat_layer(valid_spec(attention_heatmap(m, ["a", "b"])))["encoding"]["color"]
    assert color["scale"]["domainMin"] == 0 and "domain" not in color["scale"]
    assert color["title"] == ["attention", "0–0.4 this chart"]


def test_shared_scale_makes_two_models_comparable(valid_spec):
    hot, cool = np.array([[0.5, 0.5], [0.1, 0.9]]), np.array([[0.04, 0.08], [0.05, 0.07]])
    top = shared_max([hot, cool])
    assert top == 0.9
    domains = [
        heat_layer(valid_spec(attention_heatmap(m, ["a", "b"], scale="shared", shared_max=top)))[
            "encoding"
        ]["color"]["scale"]["domain"]
        for m in (hot, cool)
    ]
    assert domains == [[0.0, 0.9], [0.0, 0.9]]


def test_diverging_shared_scale_is_symmetric(valid_spec):
    diff = np.array([[0.1, -0.3], [0.25, 0.0]])
    spec = valid_spec(
        attention_heatmap(diff, ["a", "b"], diverging=True, scale="shared", shared_max=0.5)
    )
    color = heat_layer(spec)["encoding"]["color"]
    assert color["scale"]["domain"] == [-0.5, 0.5]
    assert color["title"][1] == "±0.5 shared"


def test_bad_scale_arguments_are_refused():
    with pytest.raises(ValueError, match="scale must be one of"):
        attention_heatmap(np.eye(2), ["a", "b"], scale="log")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shared_max"):
        attention_heatmap(np.eye(2), ["a", "b"], scale="shared")


def test_sentence_pair_gets_a_and_b_bands_on_both_axes(valid_spec):
    n, b_start = 9, 5
    spec = valid_spec(attention_heatmap(random_attention(n), labels(n), segment_b_start=b_start))
    heat, left, bottom, row_rule, column_rule = spec["layer"]
    # The strips use "fill", a scale apart from the heat's "color": one "sentence" legend.
    assert "resolve" not in spec and "color" not in left["encoding"]
    datasets = spec["datasets"]
    rows = datasets[left["data"]["name"]]
    assert [r["sentence"] for r in rows] == ["A"] * b_start + ["B"] * (n - b_start)
    columns = datasets[bottom["data"]["name"]]
    assert [c["sentence"] for c in columns] == ["A"] * b_start + ["B"] * (n - b_start)
    assert left["encoding"]["fill"]["legend"]["title"] == "sentence"
    assert left["encoding"]["fill"]["scale"]["domain"] == ["A", "B"]
    # Every layer keeps the token axes (one layer with axis None would drop them).
    for layer in (left, row_rule):
        assert layer["encoding"]["y"]["axis"] == heat["encoding"]["y"]["axis"]
    for layer in (bottom, column_rule):
        assert layer["encoding"]["x"]["axis"] == heat["encoding"]["x"]["axis"]
    # The rules sit on the edge between the last A and the first B row / column.
    assert row_rule["encoding"]["y"]["bandPosition"] == 0
    assert datasets[row_rule["data"]["name"]] == [{"q": b_start, "k": b_start}]
    assert column_rule["encoding"]["x"]["bandPosition"] == 0
    # The token labels move out past the strips.
    assert heat["encoding"]["y"]["axis"]["offset"] > 0


def test_segment_start_must_split_the_input():
    with pytest.raises(ValueError, match="segment_b_start"):
        attention_heatmap(np.eye(3), ["a", "b", "c"], segment_b_start=0)


def test_profile_labels_every_head_of_a_12_by_12_model(valid_spec):
    weights = np.random.default_rng(0).random((12, 12, 20))
    spec = valid_spec(layer_head_profile(weights, labels(20), column_width=600))
    rect = spec["layer"][0]
    axis = rect["encoding"]["y"]["axis"]
    assert axis["labelOverlap"] is False
    # Each label at its row's centre: a flush first label sat on the second one.
    assert axis["labelFlush"] is False
    assert spec["height"] >= 144 * LABEL_PX  # a label's height for each of the 144 rows
    # A faint rule between consecutive layers, keeping the head labels' axis.
    assert spec["layer"][1]["encoding"]["y"]["axis"] == axis
    rule_rows = spec["datasets"][spec["layer"][1]["data"]["name"]]
    assert [r["row"] for r in rule_rows] == [12 * i for i in range(1, 12)]


def test_profile_keys_thin_with_a_note_and_honour_the_scale(valid_spec):
    weights = np.random.default_rng(0).random((2, 3, 64))
    chart = layer_head_profile(weights, labels(64), column_width=420, scale="fixed")
    spec = valid_spec(chart)
    rect = spec["layer"][0]
    assert spec["width"] <= 420
    values = rect["encoding"]["x"]["axis"]["values"]
    assert len(values) < 64 and spec["width"] / 64 * (values[1] - values[0]) >= LABEL_PX
    assert chart_notes(chart) and "key" in chart_notes(chart)[0]
    assert rect["encoding"]["color"]["scale"]["domain"] == [0.0, 1.0]


def test_profile_keeps_its_legend_beside_in_a_narrow_column(valid_spec):
    weights = np.random.default_rng(0).random((6, 12, 30))
    spec = valid_spec(layer_head_profile(weights, labels(30), column_width=424))
    legend = spec["layer"][0]["encoding"]["color"]["legend"]
    assert legend.get("orient") is None  # beside: below, it would sit under 864 px of rows
    assert spec["width"] + 60 + 90 <= 424


@pytest.mark.parametrize("scale", ["chart", "shared", "fixed"])
def test_a_log_colour_scale_spans_three_decades_and_draws_zeros_at_the_floor(valid_spec, scale):
    matrix = random_attention(6)
    matrix[2, 3] = 0.0
    top = {"chart": matrix.max(), "shared": 0.9, "fixed": 1.0}[scale]
    chart = attention_heatmap(
        matrix,
        labels(6),
        scale=scale,
        shared_max=0.9 if scale == "shared" else None,
        log=True,
        legend_notes=[WITHOUT_FIRST_NOTE],
    )
    spec = valid_spec(chart)
    color = heat_layer(spec)["encoding"]["color"]
    assert color["scale"]["type"] == "log"
    # "chart" reads the cells as sent (5 significant digits).
    np.testing.assert_allclose(color["scale"]["domain"], [top / 1000, top], rtol=1e-4)
    title = " ".join(color["title"])
    assert "log scale, 3 decades" in title and "≤" in title
    assert "without the first token, rows renormalised" in title
    # The colour reads `c`, the value raised to the floor; the tooltip keeps the value.
    cells = chart["datasets"]["cells"]
    assert color["field"] == "c"
    zero = cells[(cells["q"] == 2) & (cells["k"] == 3)].iloc[0]
    floor = color["scale"]["domain"][0]
    assert zero["v"] == 0.0 and zero["c"] == floor
    assert (cells["c"] >= floor).all()
    assert (cells.loc[cells["v"] > floor, "c"] == cells.loc[cells["v"] > floor, "v"]).all()


def test_a_linear_heatmap_has_no_log_and_a_signed_one_says_log_does_not_apply(valid_spec):
    plain = valid_spec(attention_heatmap(random_attention(5), labels(5)))
    color = heat_layer(plain)["encoding"]["color"]
    assert "type" not in color["scale"] and color["field"] == "v"
    assert not any("log" in line for line in color["title"])
    signed = random_attention(5) - random_attention(5, seed=1)
    spec = valid_spec(attention_heatmap(signed, labels(5), diverging=True, log=True))
    color = heat_layer(spec)["encoding"]["color"]
    assert "type" not in color["scale"] and color["field"] == "v"
    assert "log does not apply" in " ".join(color["title"])


def test_a_long_profile_fills_its_column_and_a_short_one_keeps_its_cells(valid_spec):
    # The profile of a 128-token mask was 330 px wide in a 1,140 px column at 1440 px.
    rng = np.random.default_rng(0)
    long = valid_spec(layer_head_profile(rng.random((2, 3, 64)), labels(64), column_width=560))
    filled = layer_head_profile(rng.random((2, 3, 64)), labels(64), column_width=560, fill=True)
    spec = valid_spec(filled)
    assert spec["width"] == "container" and spec["autosize"]["type"] == "fit-x"
    # Labelled as planned for the narrowest column: the same keys as the fixed-width chart.
    axis = spec["layer"][0]["encoding"]["x"]["axis"]
    assert axis["values"] == long["layer"][0]["encoding"]["x"]["axis"]["values"]
    short = valid_spec(
        layer_head_profile(rng.random((2, 3, 8)), labels(8), column_width=560, fill=True)
    )
    assert isinstance(short["width"], int)
