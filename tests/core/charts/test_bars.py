"""Bar layouts: prediction bars keep a labelled row per word, token bars switch to a
horizontal top-N layout when the column cannot label them all, scale modes on the value axis."""

from __future__ import annotations

import numpy as np
import pytest

from core.chart_layout import BAR_AXIS_PX, BAR_PX, LABEL_PX
from core.charts import attention_bars, chart_notes, prediction_bars
from core.charts.bars import percent, probability_label


def labels(n):
    return [f"t{i}" for i in range(n)]


@pytest.mark.parametrize("k", [1, 5, 10])
def test_prediction_bars_label_every_word_and_keep_their_height(valid_spec, k):
    scores = np.linspace(0.5, 0.01, k)
    spec = valid_spec(prediction_bars(labels(k), scores, title="Mask 1 before"))
    assert spec["height"] >= BAR_PX * k
    # fit-x: Streamlit fits only the width, so titles and axes do not eat the bars' height.
    assert spec["autosize"] == {"type": "fit-x", "contains": "padding"}
    bars, percents = spec["layer"]
    for axis in (bars["encoding"]["y"]["axis"], percents["encoding"]["y"]["axis"]):
        assert axis["values"] == list(range(k))
        assert axis["labelOverlap"] is False


def test_prediction_bars_never_go_below_a_labelled_row(valid_spec):
    spec = valid_spec(prediction_bars(labels(5), [0.5, 0.2, 0.1, 0.1, 0.1], bar_height=6))
    assert spec["height"] == 5 * BAR_PX


@pytest.mark.parametrize(
    ("scale", "shared", "domain", "title"),
    [
        ("fixed", None, [0.0, 1.0], "probability (0–100% fixed)"),
        ("shared", 0.6, [0.0, 0.6], "probability (0–60% shared)"),
    ],
)
def test_prediction_scale_modes(valid_spec, scale, shared, domain, title):
    spec = valid_spec(prediction_bars(["a", "b"], [0.3, 0.1], scale=scale, shared_max=shared))
    x = spec["layer"][0]["encoding"]["x"]
    assert x["scale"]["domain"] == domain
    assert x["title"] == title


def test_prediction_chart_scale_names_its_own_maximum(valid_spec):
    spec = valid_spec(prediction_bars(["a", "b"], [0.3, 0.1]))
    x = spec["layer"][0]["encoding"]["x"]
    assert x["scale"] == {"domainMin": 0}
    assert x["title"] == "probability (0–30% this chart)"


def test_prediction_bars_fill_a_given_column(valid_spec):
    spec = valid_spec(prediction_bars(["a", "b"], [0.3, 0.1], column_width=340))
    assert spec["width"] == 340


def test_token_bars_put_their_legend_above_the_plot(valid_spec):
    out = np.full(12, 1 / 12)
    spec = valid_spec(attention_bars(out, out, labels(12), 0, column_width=272))
    legend = spec["encoding"]["color"]["legend"]
    assert legend["orient"] == "top"
    # "attended by" in full: a legend label limit of its own, wider than the name.
    assert legend["labelLimit"] >= 100
    # So the whole column less the value axis is the plot: 17 tokens of LABEL_PX stand upright.
    assert spec["encoding"]["x"]["field"] == "pos"


def test_short_input_keeps_vertical_bars_with_every_label(valid_spec):
    n = 12
    out = np.random.default_rng(0).dirichlet(np.ones(n))
    chart = attention_bars(out, out[::-1], labels(n), 3, column_width=400)
    spec = valid_spec(chart)
    enc = spec["encoding"]
    assert enc["x"]["field"] == "pos" and enc["xOffset"]["field"] == "direction"
    assert enc["x"]["axis"]["values"] == list(range(n))
    assert enc["x"]["axis"]["labelOverlap"] is False
    assert spec["autosize"]["type"] == "fit-x" and spec["width"] == 400
    assert chart_notes(chart) == []


def test_medium_input_turns_horizontal_with_a_row_per_token(valid_spec):
    n = 30  # 30 * 12 px > 300 px of plot in a 360 px column
    out = np.random.default_rng(1).dirichlet(np.ones(n))
    spec = valid_spec(attention_bars(out, out, labels(n), 0, column_width=360))
    enc = spec["encoding"]
    assert enc["y"]["field"] == "pos" and enc["yOffset"]["field"] == "direction"
    assert enc["x"]["field"] == "v"
    assert enc["y"]["axis"]["values"] == list(range(n))
    assert spec["height"] == n * BAR_PX


@pytest.mark.parametrize("n", [138, 512])
def test_long_input_shows_the_top_tokens_with_a_note(valid_spec, n):
    rng = np.random.default_rng(n)
    out, inc = rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n))
    selected = int(np.argmin(np.maximum(out, inc)))  # the weakest token, still drawn
    chart = attention_bars(out, inc, labels(n), selected, column_width=360, top_n=30)
    spec = valid_spec(chart)
    positions = spec["encoding"]["y"]["scale"]["domain"]
    assert len(positions) == 30 and positions == sorted(positions)
    assert selected in positions
    strongest = set(np.argsort(-np.maximum(out, inc), kind="stable")[:29].tolist())
    assert strongest <= set(positions)
    assert spec["height"] == 30 * BAR_PX  # 22 px a token, never 500 bars in 300 px
    rows = next(v for v in spec["datasets"].values() if v and "direction" in v[0])
    assert {r["pos"] for r in rows} == set(positions)
    (note,) = chart_notes(chart)
    assert f"Top 30 of {n}" in note
    # Rows are not contiguous, so their labels carry the position.
    assert "datum.value + '·'" in spec["encoding"]["y"]["axis"]["labelExpr"]


@pytest.mark.parametrize(("n", "token_axis"), [(25, "x"), (26, "y")])
def test_vertical_layout_is_chosen_only_when_labels_fit(n, token_axis):
    # The legend sits above the bars, so a 360 px column less the value axis leaves 300 px
    # of plot: 25 labels of LABEL_PX fit, 26 do not.
    assert 360 - BAR_AXIS_PX == 300
    assert 25 * LABEL_PX <= 300 < 26 * LABEL_PX
    out = np.full(n, 1 / n)
    chart = attention_bars(out, out, labels(n), 0, column_width=360)
    assert getattr(chart.encoding, token_axis).shorthand == "pos:O"


@pytest.mark.parametrize(
    ("scale", "shared", "domain", "title"),
    [
        ("fixed", None, [0.0, 1.0], "attention (0–1 fixed)"),
        ("shared", 0.25, [0.0, 0.25], "attention (0–0.25 shared)"),
    ],
)
def test_token_bar_scale_modes(valid_spec, scale, shared, domain, title):
    out = np.array([0.1, 0.2, 0.7])
    spec = valid_spec(attention_bars(out, out, ["a", "b", "c"], 0, scale=scale, shared_max=shared))
    y = spec["encoding"]["y"]
    assert y["scale"]["domain"] == domain
    assert y["title"] == title


def test_token_bars_without_a_column_keep_the_old_layout(valid_spec):
    n = 200
    out = np.full(n, 1 / n)
    spec = valid_spec(attention_bars(out, out, labels(n), 0))
    assert spec["encoding"]["x"]["field"] == "pos" and spec["height"] == 220
    assert "autosize" not in spec


@pytest.mark.parametrize(
    ("top", "text"), [(1.0, "100%"), (0.3, "30%"), (0.042, "4.2%"), (0.0035, "0.35%")]
)
def test_probability_bounds_read_as_short_percentages(top, text):
    assert percent(top) == text


def test_small_probabilities_keep_two_significant_digits():
    # A random model's guesses (≈ 0.005 %) were all labelled "0.0%".
    assert probability_label(0.567) == "56.7%" and probability_label(0.004) == "0.4%"
    assert probability_label(0.000053) == "0.0053%" and probability_label(0.0) == "0.0%"
    assert probability_label(1.0) == "100.0%"
