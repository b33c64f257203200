"""What the explorer ships: every matrix of the layer as 8-bit codes and the shown one as float16,
empty cells as NaN, in one binary message, checked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.errors import InvalidAttentionError, InvalidSelectionError
from ui.explorer.payload import (
    MAX_TOKENS,
    add_tiles,
    build_long_payload,
    build_payload,
    checked_tiles,
    decode_codes,
    decode_values,
    encode_values,
    model_max,
    outside_window,
    pack,
    unpack,
)


def rows_summing_to_one(heads: int, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(n), size=(heads, n)).astype(np.float32)


def test_every_head_and_the_mean_travel_in_order_and_decode_to_the_values():
    weights = rows_summing_to_one(3, 5)
    mean = weights.mean(0)
    payload = build_payload(weights, list("abcde"), mean=mean, head=1, shared_max=1.0)
    assert payload["names"] == ["0", "1", "2", "mean"]
    assert payload["shape"] == [4, 5, 5] and payload["head"] == 1
    values = decode_codes(payload)
    # 8-bit codes: within half a step (1/508) of each row's largest weight.
    half_step = np.nanmax(np.concatenate([weights, mean[None]]), axis=-1, keepdims=True) / 508
    assert (np.abs(values[:3] - weights) <= half_step[:3] * (1 + 1e-6)).all()
    assert (np.abs(values[3] - mean) <= half_step[3] * (1 + 1e-6)).all()
    # The shown head as float16: 3 significant digits (relative error below 2^-11).
    assert payload["exactOf"] == 1
    exact = decode_values(payload["exact"], [5, 5])
    np.testing.assert_allclose(exact, weights[1], rtol=2**-11, atol=6e-8)
    # Each row's largest weight is exact to float32 in the codes (code 254 times its scale).
    np.testing.assert_allclose(values[:3].max(-1), weights.max(-1), rtol=1e-6)


def test_signed_codes_keep_their_sign_within_half_a_step():
    weights = rows_summing_to_one(2, 6) - 0.2
    payload = build_payload(weights, list("abcdef"))
    values = decode_codes(payload)
    scale = np.abs(weights).max(-1, keepdims=True)
    assert (np.abs(values - weights) <= scale / 254 * (1 + 1e-6)).all()
    assert (
        np.sign(values[np.abs(weights) > scale / 127])
        == np.sign(weights[np.abs(weights) > scale / 127])
    ).all()


def test_the_message_is_one_byte_a_cell_plus_the_shown_matrix_in_float16():
    n = 128
    payload = build_payload(rows_summing_to_one(12, n), [str(i) for i in range(n)])
    assert len(payload["codes"]) == 12 * n * n and len(payload["scales"]) == 4 * 12 * n
    assert len(payload["exact"]) == 2 * n * n
    message = pack(payload)
    assert len(message) < 0.24e6  # ≈ 0.2 MB at 128 tokens, 12 heads (float16 was 0.52 MB)
    back = unpack(message)
    assert back["codes"] == payload["codes"] and back["exact"] == payload["exact"]
    assert back["rows"] == payload["rows"] and back["shape"] == payload["shape"]


def test_empty_cells_are_nan_never_zero():
    weights = rows_summing_to_one(2, 4)
    future = np.triu(np.ones((4, 4), dtype=bool), 1)
    payload = build_payload(weights, list("abcd"), empty=future, shared_max=1.0)
    values = decode_codes(payload)
    assert np.isnan(values[:, future]).all()
    assert np.isfinite(values[:, ~future]).all()
    assert np.isnan(decode_values(payload["exact"], [4, 4])[future]).all()
    # Rows a method left out (NaN) stay empty too.
    weights[:, 2] = np.nan
    values = decode_codes(build_payload(weights, list("abcd")))
    assert np.isnan(values[:, 2]).all() and np.isfinite(values[:, 1]).all()


@pytest.mark.parametrize(("head", "index"), [("mean", 2), ("all", 2), (0, 0), (1, 1)])
def test_the_head_shown_first(head, index):
    weights = rows_summing_to_one(2, 3)
    assert build_payload(weights, list("abc"), mean=weights.mean(0), head=head)["head"] == index


def test_a_method_without_heads_ships_its_one_matrix_whatever_the_view_names():
    payload = build_payload(rows_summing_to_one(1, 3), list("abc"), head=7)
    assert payload["names"] == ["0"] and payload["head"] == 0


def test_cross_attention_has_its_own_columns_and_no_bands():
    weights = rows_summing_to_one(2, 3)[:, :, :3]
    cross = np.random.default_rng(1).dirichlet(np.ones(4), size=(2, 3))
    payload = build_payload(cross, list("abc"), list("wxyz"), segment_b_start=1)
    assert payload["cols"] == list("wxyz") and payload["segB"] is None
    assert payload["shape"] == [2, 3, 4]
    with pytest.raises(InvalidAttentionError, match="square"):
        build_payload(cross, list("abc"))
    assert build_payload(weights, list("abc"), segment_b_start=1)["cols"] is None


def test_signed_scores_are_flagged_for_a_diverging_palette():
    weights = rows_summing_to_one(1, 3) - 0.3
    assert build_payload(weights, list("abc"))["signed"] is True
    assert build_payload(weights + 1, list("abc"))["signed"] is False


def test_scales():
    weights = rows_summing_to_one(1, 3)
    assert build_payload(weights, list("abc"), shared_max=0.8)["shared"] == pytest.approx(0.8)
    assert build_payload(weights, list("abc"), scale="fixed")["scale"] == "fixed"
    # The shared scale needs the model's maximum; the others offer it only when given.
    with pytest.raises(InvalidSelectionError, match="shared_max"):
        build_payload(weights, list("abc"), scale="shared")
    assert build_payload(weights, list("abc"))["shared"] is None
    with pytest.raises(InvalidSelectionError, match="scale"):
        build_payload(weights, list("abc"), scale="loud")
    with pytest.raises(InvalidSelectionError, match="positive"):
        build_payload(weights, list("abc"), scale="chart", shared_max=-1.0)


def test_model_max_spans_every_head_and_layer_and_skips_rows_not_computed():
    per_head = np.zeros((2, 3, 4, 4))
    per_head[1, 2, 0, 0] = 0.7
    per_head[0, 0, 1] = np.nan
    assert model_max(per_head, per_head.mean(1)) == pytest.approx(0.7)
    assert model_max(None, np.full((2, 3, 3), -0.4)) == pytest.approx(0.4)
    assert model_max(None, np.full((1, 2, 2), np.nan)) == 1.0
    assert model_max(None, np.zeros((1, 2, 2))) == 1.0


def test_huge_scores_are_clipped_not_infinite():
    values = decode_values(encode_values(np.array([[[1e6, -1e6]]])), [1, 1, 2])
    assert values.tolist() == [[[65504.0, -65504.0]]]


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"heads": np.ones((2, 2))}, InvalidAttentionError, "dimension"),
        ({"heads": np.ones((0, 2, 2))}, InvalidAttentionError, "empty"),
        ({"heads": np.full((1, 2, 2), np.inf)}, InvalidAttentionError, "infinite"),
        ({"row_labels": ["a"]}, InvalidSelectionError, "1 tokens"),
        ({"row_labels": "ab"}, InvalidSelectionError, "one string"),
        ({"selected": 2}, InvalidSelectionError, "outside"),
        ({"selected": True}, InvalidSelectionError, "outside"),
        ({"head": 5}, InvalidSelectionError, "outside"),
        ({"head": "best"}, InvalidSelectionError, "mean"),
        ({"layer": 3, "layers": 2}, InvalidSelectionError, "outside"),
        ({"layers": 0}, InvalidSelectionError, "at least 1"),
        ({"empty": np.ones((3, 3), bool)}, InvalidSelectionError, "empty mask"),
        ({"mean": np.ones((3, 3))}, InvalidAttentionError, "mean"),
        ({"segment_b_start": 0}, InvalidSelectionError, "first token"),
    ],
)
def test_bad_input_is_a_typed_error(changes, error, match):
    arguments = {"heads": np.full((2, 2, 2), 0.5), "row_labels": ["a", "b"], **changes}
    with pytest.raises(error, match=match):
        build_payload(**arguments)


def test_longer_inputs_are_refused_for_the_long_input_path():
    n = MAX_TOKENS + 1
    with pytest.raises(InvalidSelectionError, match=str(MAX_TOKENS)):
        build_payload(np.zeros((1, n, n), np.float32), ["t"] * n)


def test_the_header_is_compact_strict_json_and_the_arrays_start_on_multiples_of_8():
    payload = build_payload(rows_summing_to_one(1, 3), ["a", "b", "c"], title="Layer 0 — é")
    message = pack(payload)
    assert message[:4] == b"ATX2"
    length = int.from_bytes(message[4:8], "little")
    header = json.loads(message[8 : 8 + length])
    assert header["title"] == "Layer 0 — é" and b", " not in message[8 : 8 + length]
    assert (8 + length) % 8 == 0
    assert all(offset % 8 == 0 for offset, _ in header["$blobs"].values())
    with pytest.raises(InvalidSelectionError):
        unpack(b"nope" + message[4:])


def test_outside_a_sliding_window():
    groups = [[i] for i in range(5)]
    causal = outside_window(groups, 2, causal=True)
    i, j = np.indices((5, 5))
    np.testing.assert_array_equal(causal, ~((i - j >= 0) & (i - j < 2)))
    both_ways = outside_window(groups, 2, causal=False)
    np.testing.assert_array_equal(both_ways, abs(i - j) >= 2)
    # A merged unit is outside only when none of its positions is inside.
    merged = outside_window([[0], [1, 2], [3], [4]], 2, causal=True)
    assert not merged[1, 0] and not merged[2, 1] and merged[2, 0] and merged[3, 1]
    with pytest.raises(InvalidSelectionError, match="at least 1"):
        outside_window(groups, 0, causal=True)


def long_payload(**changes):
    grid = np.full((4, 4), 0.01, np.float32)
    grid[np.triu_indices(4, 1)] = np.nan
    edges = np.array([0, 3, 6, 8, 10])
    arguments = {
        "overview": grid,
        "row_edges": edges,
        "col_edges": edges,
        "row_labels": [f"t{i}" for i in range(10)],
        "reduce": "max",
        "n_heads": 2,
        "head": 1,
        "selected": 4,
        "selected_row": np.linspace(0, 1, 10),
        "tile_size": 4,
    }
    return build_long_payload(**{**arguments, **changes})


def test_a_long_payload_holds_the_overview_and_the_selected_row_not_the_matrix():
    payload = long_payload()
    assert payload["shape"] == [3, 10, 10] and payload["names"] == ["0", "1", "mean"]
    assert payload["head"] == 1 and payload["sel"] == 4 and payload["rowOf"] == 4
    assert payload["long"] == {
        "rowEdges": [0, 3, 6, 8, 10],
        "colEdges": [0, 3, 6, 8, 10],
        "reduce": "max",
        "tile": 4,
    }
    overview = decode_values(payload["overview"], [4, 4])
    assert np.isnan(overview[0, 1]) and overview[1, 0] == pytest.approx(0.01, rel=1e-3)
    np.testing.assert_allclose(
        decode_values(payload["row"], [10]), np.linspace(0, 1, 10), rtol=2**-11
    )
    assert "codes" not in payload and payload["tiles"] == []
    assert unpack(pack(payload))["long"]["reduce"] == "max"
    assert long_payload(head="mean")["head"] == 2


def test_tiles_travel_in_order_as_float16():
    payload = long_payload()
    first, second = np.full((4, 4), 0.5), np.arange(8, dtype=np.float32).reshape(4, 2) / 8
    add_tiles(payload, [(0, 4, first), (8, 8, second)])
    assert payload["tiles"] == [[0, 4, 4, 4], [8, 8, 4, 2]]
    data = decode_values(payload["tileData"], [24])
    np.testing.assert_allclose(data[:16], first.ravel())
    np.testing.assert_allclose(data[16:], second.ravel())
    add_tiles(payload, [])
    assert payload["tiles"] == [] and payload["tileData"] is None


def test_tile_requests_are_checked():
    asked = [[0, 4], [4, 4], [0, 4], [3, 0], [12, 0], ["0", 4], [True, 0], [8], "x"]
    assert checked_tiles(asked, 10, 4) == [(0, 4), (4, 4)]
    assert checked_tiles("nonsense", 10, 4) == []
    assert checked_tiles([[0, 0]] * 3 + [[4, 0], [8, 0]], 10, 4, limit=2) == [(0, 0), (4, 0)]


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"overview": np.zeros((3, 4))}, "between its edges"),
        ({"row_edges": np.array([1, 3, 6, 8, 10])}, "from 0"),
        ({"reduce": "median"}, "mean"),
        ({"scale": "shared"}, "fixed"),
        ({"selected_row": np.zeros(9)}, "10 weights"),
        ({"selected": 10}, "selected token"),
    ],
)
def test_a_long_payload_refuses_nonsense(changes, match):
    with pytest.raises((InvalidAttentionError, InvalidSelectionError), match=match):
        long_payload(**changes)
