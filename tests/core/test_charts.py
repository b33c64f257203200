"""Specs of the chart builders: marks, encodings, params, inline data and label handling."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pytest

from core.charts import (
    attention_bars,
    attention_heatmap,
    head_grid,
    head_view_lines,
    layer_head_profile,
    prediction_bars,
    prune_edges,
    round_sig,
    spec_dict,
)

HOSTILE = ["</script><b>x</b>", "\"'\\", "${x}", "🙂 emoji", "עברית", "a\nb", "{{x}}"]


# --- helpers ---------------------------------------------------------------------------------


def rows_with(spec: dict[str, Any], *fields: str) -> list[dict[str, Any]]:
    """The one inline dataset whose rows have exactly `fields`."""
    found = [
        rows
        for rows in spec["datasets"].values()
        if rows and set(rows[0]) == set(fields) and all(set(r) == set(fields) for r in rows)
    ]
    assert len(found) == 1, f"expected one dataset with fields {fields}, found {len(found)}"
    return found[0]


def params_by_name(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in spec.get("params", [])}


def label_params(spec: dict[str, Any], stem: str = "tok") -> dict[str, list[Any]]:
    return {
        name: p["value"]
        for name, p in params_by_name(spec).items()
        if name.startswith(f"{stem}_") and "select" not in p
    }


def layers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return spec.get("layer", [spec])


def expressions(node: Any) -> list[str]:
    """Every Vega expression string in a spec (labelExpr, calculate, filter, expr, test)."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"labelExpr", "calculate", "expr", "test", "filter"} and isinstance(
                value, str
            ):
                found.append(value)
            else:
                found.extend(expressions(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(expressions(item))
    return found


def attention(n: int, seed: int = 0, heads: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.random((n, n) if heads is None else (heads, n, n))
    return a / a.sum(-1, keepdims=True)


# --- rounding --------------------------------------------------------------------------------


def test_round_sig_keeps_five_significant_digits_and_short_reprs():
    values = np.array([0.002340312345, 123456.7, -0.5000049, 0.0, np.nan, np.inf, 1.23456789e-7])
    out = round_sig(values)
    assert [repr(float(v)) for v in out[[0, 1, 2, 3, 6]]] == [
        "0.0023403",
        "123460.0",
        "-0.5",
        "0.0",
        "1.2346e-07",
    ]
    assert np.isnan(out[4]) and np.isinf(out[5])
    assert out.dtype == np.float64 and out.shape == values.shape


# --- attention_heatmap -----------------------------------------------------------------------


def test_heatmap_spec_encodings_and_params():
    labels = ["[CLS]", "the", "cat", "[SEP]"]
    spec = spec_dict(attention_heatmap(attention(4), labels, title="L0 H1"))
    (heat,) = layers(spec)
    assert heat["mark"]["type"] == "rect"
    enc = heat["encoding"]
    assert (enc["x"]["field"], enc["x"]["type"]) == ("k", "ordinal")
    assert (enc["y"]["field"], enc["y"]["type"]) == ("q", "ordinal")
    assert (enc["color"]["field"], enc["color"]["type"]) == ("v", "quantitative")
    assert enc["x"]["scale"]["domain"] == [0, 1, 2, 3]
    assert enc["y"]["scale"]["domain"] == [0, 1, 2, 3]
    assert [t["field"] for t in enc["tooltip"]] == ["q", "query", "k", "key", "v"]
    assert enc["tooltip"][-1]["format"] == ".4f"
    assert enc["color"]["scale"]["scheme"] == "viridis"
    assert enc["color"]["scale"]["domainMin"] == 0
    assert spec["title"] == "L0 H1"

    params = params_by_name(spec)
    assert params["cell"]["select"] == {
        "type": "point",
        "fields": ["q", "k"],
        "on": "click",
        "clear": "dblclick",
    }
    (tok_name,) = label_params(spec)
    assert label_params(spec)[tok_name] == labels
    assert enc["x"]["axis"]["labelExpr"] == f"{tok_name}[datum.value]"
    assert enc["y"]["axis"]["labelExpr"] == f"{tok_name}[datum.value]"
    # Four cells have room for every label: all are drawn, none culled.
    assert enc["x"]["axis"]["labelOverlap"] is False
    assert enc["x"]["axis"]["values"] == [0, 1, 2, 3]
    assert enc["x"]["axis"]["labelLimit"] > 0


def test_heatmap_data_is_one_numeric_row_per_drawn_cell():
    m = attention(5, seed=3)
    m[1, 2] = np.nan
    causal = np.triu(np.ones((5, 5), dtype=bool), 1)
    spec = spec_dict(attention_heatmap(m, list("abcde"), empty_mask=causal))
    rows = rows_with(spec, "q", "k", "v")
    expected = {(q, k) for q in range(5) for k in range(q + 1) if (q, k) != (1, 2)}
    assert {(r["q"], r["k"]) for r in rows} == expected
    assert len(rows) == 15  # the lower triangle; (1, 2) NaN lies in the masked part anyway
    by_cell = {(r["q"], r["k"]): r["v"] for r in rows}
    assert by_cell[(3, 1)] == pytest.approx(m[3, 1], rel=1e-4)
    assert all(isinstance(r[f], (int, float)) for r in rows for f in ("q", "k", "v"))

    m[4, 0] = np.nan
    rows = rows_with(
        spec_dict(attention_heatmap(m, list("abcde"), empty_mask=causal)), "q", "k", "v"
    )
    assert len(rows) == 14 and (4, 0) not in {(r["q"], r["k"]) for r in rows}


def test_heatmap_duplicate_tokens_stay_separate_positions():
    labels = ["the", "cat", "the"]
    spec = spec_dict(attention_heatmap(attention(3), labels))
    rows = rows_with(spec, "q", "k", "v")
    assert sorted({r["q"] for r in rows}) == [0, 1, 2]
    assert sorted({r["k"] for r in rows}) == [0, 1, 2]
    assert len(rows) == 9
    assert list(label_params(spec).values()) == [labels]


def test_heatmap_separate_key_labels_and_selected_row_outline():
    m = attention(3)[:2]  # 2 queries x 3 keys
    spec = spec_dict(attention_heatmap(m, ["q0", "q1"], ["k0", "k1", "k2"], selected=1))
    heat, outline = layers(spec)
    assert sorted(label_params(spec).values()) == [["k0", "k1", "k2"], ["q0", "q1"]]
    assert heat["encoding"]["y"]["scale"]["domain"] == [0, 1]
    assert heat["encoding"]["x"]["scale"]["domain"] == [0, 1, 2]
    assert outline["mark"] == {"type": "rect", "filled": False, "strokeWidth": 2}
    assert outline["encoding"]["y"]["field"] == "q"
    assert outline["encoding"]["x2"] == {"value": "width"}
    assert spec["datasets"][outline["data"]["name"]] == [{"q": 1}]
    assert len(rows_with(spec, "q", "k", "v")) == 6


def test_heatmap_diverging_domain_is_symmetric_around_zero():
    diff = np.array([[0.1, -0.3], [0.25, 0.0]])
    spec = spec_dict(attention_heatmap(diff, ["a", "b"], diverging=True, value_label="Δ"))
    scale = layers(spec)[0]["encoding"]["color"]["scale"]
    assert scale["domain"] == [-0.3, 0.3]
    assert scale["domainMid"] == 0
    assert scale["scheme"] == "blueorange"
    assert layers(spec)[0]["encoding"]["color"]["title"] == ["Δ", "±0.3 this chart"]

    fixed = spec_dict(attention_heatmap(diff, ["a", "b"], diverging=True, domain=(-0.1, 0.5)))
    assert layers(fixed)[0]["encoding"]["color"]["scale"]["domain"] == [-0.5, 0.5]


def test_heatmap_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="labels"):
        attention_heatmap(attention(3), ["a", "b"])
    with pytest.raises(ValueError, match="empty_mask"):
        attention_heatmap(attention(3), list("abc"), empty_mask=np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="selected"):
        attention_heatmap(attention(3), list("abc"), selected=3)


def test_heatmap_512_spec_stays_compact():
    n = 512
    m = attention(n, seed=7)
    spec = spec_dict(attention_heatmap(m, [f"tok{i}" for i in range(n)], selected=5))
    rows = rows_with(spec, "q", "k", "v")
    assert len(rows) == n * n
    compact = json.dumps(spec, separators=(",", ":"))
    size = len(compact.encode("utf-8"))
    print(f"\n512x512 heatmap spec JSON: {size} bytes ({size / (n * n):.1f} per cell)")
    # ~32 bytes per cell: {"q":511,"k":511,"v":0.0019531}, no strings per cell.
    assert size < 34 * n * n
    assert all(len(repr(r["v"])) <= 12 for r in rows[:2000])

    causal = np.triu(np.ones((n, n), dtype=bool), 1)
    half = spec_dict(attention_heatmap(m, [f"tok{i}" for i in range(n)], empty_mask=causal))
    assert len(rows_with(half, "q", "k", "v")) == n * (n + 1) // 2


# --- prune_edges / head_view_lines ------------------------------------------------------------


EDGES = np.array(
    [
        [0.5, 0.3, 0.2, 0.0],
        [0.1, 0.1, 0.7, 0.1],
        [0.25, 0.25, 0.25, 0.25],
        [0.0, 0.0, 0.05, 0.95],
    ]
)


def edge_set(df) -> set[tuple[int, int, int]]:
    return {
        (int(h), int(s), int(d)) for h, s, d in zip(df["head"], df["src"], df["dst"], strict=True)
    }


def test_prune_edges_threshold_and_top_k():
    every = prune_edges(EDGES)
    assert len(every) == 13  # the three zero weights are dropped
    assert list(every.columns) == ["head", "src", "dst", "w"]

    assert edge_set(prune_edges(EDGES, threshold=0.3)) == {
        (0, 0, 0),
        (0, 0, 1),
        (0, 1, 2),
        (0, 3, 3),
    }
    # Ties go to the lower key position.
    assert edge_set(prune_edges(EDGES, top_k=1)) == {(0, 0, 0), (0, 1, 2), (0, 2, 0), (0, 3, 3)}
    assert edge_set(prune_edges(EDGES, top_k=2)) == {
        (0, 0, 0),
        (0, 0, 1),
        (0, 1, 2),
        (0, 1, 0),
        (0, 2, 0),
        (0, 2, 1),
        (0, 3, 3),
        (0, 3, 2),
    }
    both = prune_edges(EDGES, top_k=2, threshold=0.2)
    assert edge_set(both) == {(0, 0, 0), (0, 0, 1), (0, 1, 2), (0, 2, 0), (0, 2, 1), (0, 3, 3)}
    w = dict(zip(zip(both["src"], both["dst"], strict=True), both["w"], strict=True))
    assert w[(1, 2)] == 0.7


def test_prune_edges_per_head_with_head_ids():
    weights = np.stack([EDGES, EDGES.T])
    df = prune_edges(weights, top_k=1, head_ids=[3, 9])
    assert sorted(set(df["head"])) == [3, 9]
    assert edge_set(df[df["head"] == 9]) == {(9, 0, 0), (9, 1, 0), (9, 2, 1), (9, 3, 3)}
    with pytest.raises(ValueError, match="head_ids"):
        prune_edges(weights, head_ids=[1])


def test_head_view_lines_spec():
    labels = ["the", "cat", "the", "[SEP]"]
    weights = np.stack([EDGES, EDGES.T])
    spec = spec_dict(head_view_lines(weights, labels, [2, 5], top_k=2, selected=1))
    lines, left, right = layers(spec)

    assert lines["mark"]["type"] == "rule"
    enc = lines["encoding"]
    assert (enc["y"]["field"], enc["y2"]["field"]) == ("src", "dst")
    assert enc["x"] == {"value": 0} and enc["x2"] == {"value": "width"}
    assert (enc["opacity"]["field"], enc["opacity"]["type"]) == ("w", "quantitative")
    assert (enc["color"]["field"], enc["color"]["type"]) == ("head", "nominal")
    assert enc["color"]["legend"]["orient"] == "top"
    edge_rows = rows_with(spec, "head", "src", "dst", "w")
    assert len(edge_rows) == len(prune_edges(weights, top_k=2)) == 16
    assert {r["head"] for r in edge_rows} == {2, 5}
    (line_filter,) = [t["filter"] for t in lines["transform"] if "filter" in t]
    assert "hover.src" in line_filter and "token.src" in line_filter

    params = params_by_name(spec)
    assert params["token"]["select"]["fields"] == ["src"]
    assert params["token"]["select"]["on"] == "click"
    assert params["token"]["value"] == [{"src": 1}]
    assert params["hover"]["select"]["fields"] == ["src"]
    assert params["hover"]["select"]["on"] == "pointerover"
    (tok_name,) = label_params(spec)
    assert label_params(spec)[tok_name] == labels

    assert left["mark"]["type"] == "rect"
    axis_left = left["encoding"]["y"]["axis"]
    axis_right = right["encoding"]["y"]["axis"]
    assert (axis_left["orient"], axis_right["orient"]) == ("left", "right")
    assert axis_left["values"] == axis_right["values"] == [0, 1, 2, 3]
    assert axis_left["labelExpr"] == f"{tok_name}[datum.value]"
    assert spec["resolve"] == {"axis": {"y": "independent"}}
    assert spec["height"] == 4 * 18


def test_head_view_lines_single_head_has_no_legend_and_no_preselection():
    spec = spec_dict(head_view_lines(EDGES, list("abcd"), [7], threshold=0.2))
    lines = layers(spec)[0]
    assert lines["encoding"]["color"]["legend"] is None
    assert "value" not in params_by_name(spec)["token"]
    assert len(rows_with(spec, "head", "src", "dst", "w")) == 9  # weights >= 0.2


# --- attention_bars --------------------------------------------------------------------------


def test_attention_bars_spec_and_data():
    m = attention(3, seed=2)
    spec = spec_dict(attention_bars(m[1], m[:, 1], ["the", "cat", "the"], 1))
    assert spec["mark"]["type"] == "bar"
    enc = spec["encoding"]
    assert (enc["x"]["field"], enc["xOffset"]["field"], enc["y"]["field"]) == (
        "pos",
        "direction",
        "v",
    )
    assert enc["color"]["field"] == "direction"
    assert enc["tooltip"][-1]["format"] == ".4f"
    assert "datum.value === 1" in enc["x"]["axis"]["labelFontWeight"]["expr"]
    rows = rows_with(spec, "pos", "direction", "v")
    assert len(rows) == 6
    out = {r["pos"]: r["v"] for r in rows if r["direction"] == "attends to"}
    inc = {r["pos"]: r["v"] for r in rows if r["direction"] == "attended by"}
    assert out == {i: pytest.approx(m[1, i], rel=1e-4) for i in range(3)}
    assert inc == {i: pytest.approx(m[i, 1], rel=1e-4) for i in range(3)}
    assert params_by_name(spec)["token"]["select"]["fields"] == ["pos"]


# --- pool_matrix / head_grid -----------------------------------------------------------------


def test_head_grid_spec_data_and_selection():
    thumbs = np.random.default_rng(0).random((3, 4, 2, 2))
    thumbs[2, 3, 1, 1] = np.nan
    spec = spec_dict(head_grid(thumbs, selected=(1, 2), head_labels=["h0", "h1", "h2", "h3"]))
    images, legend, outline = layers(spec)
    assert images["mark"]["type"] == "image"
    rows = rows_with(spec, "layer", "head", "url")
    assert [(r["layer"], r["head"]) for r in rows] == [(a, b) for a in range(3) for b in range(4)]
    assert all(r["url"].startswith("data:image/png;base64,") for r in rows)
    enc = images["encoding"]
    assert (enc["x"]["field"], enc["y"]["field"], enc["url"]["field"]) == ("head", "layer", "url")
    assert enc["opacity"]["condition"][0]["param"] == "head"
    # Whole pixels per cell: 44 px thumbnails of m=2 -> 22 px per cell, 44 px images.
    assert (images["mark"]["width"], images["mark"]["height"]) == (44, 44)

    params = params_by_name(spec)
    assert params["head"]["select"] == {
        "type": "point",
        "fields": ["layer", "head"],
        "on": "click",
        "clear": "dblclick",
    }
    assert sorted(label_params(spec).values()) == [["0", "1", "2"], ["h0", "h1", "h2", "h3"]]
    vmax = float(round_sig(np.nanmax(thumbs)))
    assert legend["encoding"]["color"]["scale"]["domain"] == [0.0, vmax]
    assert spec["datasets"][outline["data"]["name"]] == [{"layer": 1, "head": 2}]
    assert outline["mark"]["filled"] is False


def test_head_grid_images_hold_the_thumbnail_pixels():
    import base64
    import io

    from PIL import Image

    thumbs = np.zeros((1, 2, 2, 2))
    thumbs[0, 1] = [[1.0, 0.0], [np.nan, 0.5]]
    rows = rows_with(spec_dict(head_grid(thumbs, thumb_px=4)), "layer", "head", "url")
    png = base64.b64decode(rows[1]["url"].split(",", 1)[1])
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert pixels.shape == (4, 4, 3)  # 2 px per cell
    assert tuple(pixels[0, 0]) == (253, 231, 37)  # the largest weight: viridis' yellow end
    assert tuple(pixels[0, 2]) == (68, 1, 84)  # zero: viridis' purple end
    assert tuple(pixels[2, 0]) == (235, 235, 235)  # NaN: light grey
    assert tuple(pixels[2, 2]) == (33, 145, 140)  # half: the middle stop


# --- prediction_bars / layer_head_profile ------------------------------------------------------


def test_prediction_bars_best_first_with_percent_labels():
    spec = spec_dict(prediction_bars(["dog", "cat", "the", "cat"], [0.1, 0.5, 0.05, 0.2]))
    bars, percents = layers(spec)
    assert bars["mark"]["type"] == "bar"
    rows = rows_with(spec, "rank", "p", "token")
    assert [(r["rank"], r["token"], r["p"]) for r in rows] == [
        (0, "cat", 0.5),
        (1, "cat", 0.2),
        (2, "dog", 0.1),
        (3, "the", 0.05),
    ]
    enc = bars["encoding"]
    assert (enc["y"]["field"], enc["x"]["field"]) == ("rank", "p")
    assert enc["x"]["axis"]["format"] == "%"
    assert {t["field"]: t.get("format") for t in enc["tooltip"]}["p"] == ".2%"
    assert label_params(spec)[enc["y"]["axis"]["labelExpr"].split("[")[0]] == [
        "cat",
        "cat",
        "dog",
        "the",
    ]
    (prob_name, probs) = next(iter(label_params(spec, "prob").items()))
    assert probs == ["50.0%", "20.0%", "10.0%", "5.0%"]
    assert percents["encoding"]["y"]["axis"]["labelExpr"] == f"{prob_name}[datum.value]"
    assert percents["encoding"]["y"]["axis"]["orient"] == "right"


def test_layer_head_profile_spec():
    weights = np.random.default_rng(1).random((2, 3, 4))
    full = spec_dict(layer_head_profile(weights, ["[CLS]", "a", "[MASK]", "a"], title="mask"))
    spec, layer_rule = layers(full)
    assert layer_rule["mark"]["type"] == "rule"  # between layer 0 and layer 1
    assert spec["mark"]["type"] == "rect"
    rows = rows_with(full, "layer", "head", "k", "v")
    assert len(rows) == 24
    assert {(r["layer"], r["head"], r["k"]): r["v"] for r in rows}[(1, 2, 3)] == pytest.approx(
        weights[1, 2, 3], rel=1e-4
    )
    enc = spec["encoding"]
    assert (enc["x"]["field"], enc["y"]["field"]) == ("k", "row")
    assert enc["y"]["scale"]["domain"] == list(range(6))
    assert enc["y"]["axis"]["labelExpr"] == (
        "'L' + floor(datum.value / 3) + ' H' + (datum.value % 3)"
    )
    calcs = {t["as"]: t["calculate"] for t in spec["transform"]}
    assert calcs["row"] == "datum.layer * 3 + datum.head"
    assert params_by_name(full)["head"]["select"]["fields"] == ["layer", "head"]
    assert list(label_params(full).values()) == [["[CLS]", "a", "[MASK]", "a"]]


# --- hostile token text ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_specs() -> dict[str, dict[str, Any]]:
    n = len(HOSTILE)
    m = attention(n, seed=5)
    return {
        "heatmap": spec_dict(attention_heatmap(m, HOSTILE, selected=0)),
        "lines": spec_dict(head_view_lines(m, HOSTILE, [0], top_k=2)),
        "bars": spec_dict(attention_bars(m[0], m[:, 0], HOSTILE, 0)),
        "predictions": spec_dict(prediction_bars(HOSTILE, np.linspace(0.4, 0.1, n))),
        "profile": spec_dict(layer_head_profile(m[None, :3], HOSTILE)),
        "grid": spec_dict(head_grid(m[None, None], head_labels=[HOSTILE[0]])),
    }


@pytest.mark.parametrize("name", ["heatmap", "lines", "bars", "predictions", "profile", "grid"])
def test_hostile_labels_round_trip_as_data_only(hostile_specs, name):
    spec = hostile_specs[name]
    text = json.dumps(spec)
    back = json.loads(text)
    assert back == spec
    label_values = [v for v in label_params(back).values()]
    if name == "grid":
        assert [HOSTILE[0]] in label_values
    else:
        assert HOSTILE in label_values
    if name == "predictions":
        assert [r["token"] for r in rows_with(back, "rank", "p", "token")] == HOSTILE
    # No expression contains token text: expressions only index the label arrays.
    exprs = expressions(back)
    assert exprs
    for expr in exprs:
        for label in HOSTILE:
            assert label not in expr
        assert "<" not in expr and "${" not in expr
        assert re.fullmatch(r"[\w\s.\[\]()+\-*/%<>=!?:|&,'\"#]*", expr.replace("<=", ""))


def test_hostile_labels_never_reach_per_cell_data(hostile_specs):
    spec = hostile_specs["heatmap"]
    rows = rows_with(spec, "q", "k", "v")
    assert all(isinstance(v, (int, float)) for r in rows for v in r.values())


def test_prediction_bars_rejects_non_finite_scores():
    with pytest.raises(ValueError, match="finite"):
        prediction_bars(["a", "b"], [0.5, float("nan")])


# --- causal masks, outgoing-only bars, neuron view -------------------------------------------


def test_causal_heatmap_omits_cells_above_the_diagonal():
    from core.charts import causal_mask

    m = attention(6, seed=4)
    spec = spec_dict(attention_heatmap(m, list("abcdef"), causal=True))
    rows = rows_with(spec, "q", "k", "v")
    assert len(rows) == 6 * 7 // 2
    assert all(r["k"] <= r["q"] for r in rows)
    # Not drawn means absent from the data, not a cell of value 0 or null.
    assert all(isinstance(r["v"], float) for r in rows)
    assert {(r["q"], r["k"]) for r in rows} == {(q, k) for q in range(6) for k in range(q + 1)}
    # Same as the explicit mask; positions let a window keep its place in the input.
    same = spec_dict(
        attention_heatmap(m, list("abcdef"), empty_mask=causal_mask(range(6), range(6)))
    )
    assert rows_with(same, "q", "k", "v") == rows
    np.testing.assert_array_equal(
        causal_mask([3, 4], [2, 3, 4, 5]),
        [[False, False, True, True], [False, False, False, True]],
    )


def test_attention_bars_without_incoming_draw_one_direction():
    m = attention(3)[:2]  # a cross-attention row set: 2 targets x 3 sources
    spec = spec_dict(attention_bars(m[1], None, ["s0", "s1", "s2"], None))
    rows = rows_with(spec, "pos", "direction", "v")
    assert [r["direction"] for r in rows] == ["attends to"] * 3
    assert [r["v"] for r in rows] == pytest.approx(m[1], rel=1e-4)
    axis = spec["encoding"]["x"]["axis"]
    assert "labelFontWeight" not in axis
    with pytest.raises(ValueError, match="incoming"):
        attention_bars(m[1], np.ones(2), ["s0", "s1", "s2"], None)


def _neuron_arrays(n: int = 5, d: int = 8, masked_from: int | None = 3):
    rng = np.random.default_rng(11)
    q, keys = rng.normal(size=d), rng.normal(size=(n, d))
    products = q * keys
    scores = products.sum(-1) / np.sqrt(d)
    masked = np.zeros(n, dtype=bool) if masked_from is None else np.arange(n) >= masked_from
    scores = np.where(masked, -np.inf, scores)
    weights = np.where(masked, 0.0, np.exp(scores - scores.max()))
    return q, keys, products, scores, weights / weights.sum(), masked


def test_neuron_view_chart_data_per_panel():
    from core.charts import neuron_view_chart

    q, keys, products, scores, weights, masked = _neuron_arrays()
    spec = spec_dict(
        neuron_view_chart(q, keys, products, scores, weights, list("abcde"), query=2, masked=masked)
    )
    query_rows = rows_with(spec, "d", "query")
    assert [r["query"] for r in query_rows] == pytest.approx(q, rel=1e-4)
    key_rows = rows_with(spec, "k", "d", "key")
    assert len(key_rows) == 5 * 8  # every key vector, masked ones too: they exist
    product_rows = rows_with(spec, "k", "d", "product")
    assert len(product_rows) == 3 * 8  # masked keys never meet the query
    assert {r["k"] for r in product_rows} == {0, 1, 2}
    by_cell = {(r["k"], r["d"]): r["product"] for r in product_rows}
    assert by_cell[(1, 4)] == pytest.approx(products[1, 4], rel=1e-4)
    bars = rows_with(spec, "k", "score", "weight")
    assert [r["k"] for r in bars] == [0, 1, 2]
    assert [r["score"] for r in bars] == pytest.approx(scores[:3], rel=1e-4)
    assert [r["weight"] for r in bars] == pytest.approx(weights[:3], rel=1e-4)
    assert sum(r["weight"] for r in bars) == pytest.approx(1.0, rel=1e-4)
    # Token texts travel once, as a parameter; the query's label is bold.
    assert list(label_params(spec).values()) == [list("abcde")]
    assert "datum.value === 2" in json.dumps(spec)
    assert spec["resolve"]["scale"]["color"] == "independent"


def test_neuron_view_chart_without_mask_and_with_hostile_labels():
    from core.charts import neuron_view_chart

    q, keys, products, scores, weights, _ = _neuron_arrays(n=len(HOSTILE), masked_from=None)
    spec = spec_dict(neuron_view_chart(q, keys, products, scores, weights, HOSTILE, query=0))
    assert len(rows_with(spec, "k", "score", "weight")) == len(HOSTILE)
    for expr in expressions(spec):
        assert all(label not in expr for label in HOSTILE)


def test_neuron_view_chart_rejects_mismatched_inputs():
    from core.charts import neuron_view_chart

    q, keys, products, scores, weights, _ = _neuron_arrays()
    labels = list("abcde")
    with pytest.raises(ValueError, match="key_vectors"):
        neuron_view_chart(q, keys[:, :4], products, scores, weights, labels, query=0)
    with pytest.raises(ValueError, match="products"):
        neuron_view_chart(q, keys, products[:4], scores, weights, labels, query=0)
    with pytest.raises(ValueError, match="scores"):
        neuron_view_chart(q, keys, products, scores[:4], weights, labels, query=0)
    with pytest.raises(ValueError, match="query"):
        neuron_view_chart(q, keys, products, scores, weights, labels, query=5)
    with pytest.raises(ValueError, match="labels"):
        neuron_view_chart(q, keys, products, scores, weights, labels[:4], query=0)
