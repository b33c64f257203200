"""What the head view ships to the browser: pruning, rounding, compact JSON, validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.errors import AtlasError, InvalidAttentionError, InvalidSelectionError
from core.tokens import PIECE_MARKER, Token, token_labels
from ui.head_view import build_payload, payload_json, strongest_lines
from ui.head_view.payload import WEIGHT_SCALE


def random_attention(heads: int, queries: int, keys: int, seed: int = 0) -> np.ndarray:
    """Row-stochastic ``[heads, queries, keys]``, peaked like real attention."""
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(keys, 0.3), size=(heads, queries))


def lines(payload: dict) -> set[tuple[int, int, int, int]]:
    """Every shipped line as (head, query, key, weight in thousandths)."""
    found = set()
    for head, flat in enumerate(payload["edges"]):
        assert len(flat) % 3 == 0
        for q, k, w in zip(flat[0::3], flat[1::3], flat[2::3], strict=True):
            found.add((head, q, k, w))
    return found


def brute_force_kept(weights: np.ndarray, top_k: int, threshold: float) -> set:
    """Reference pruning with full sorts: row or column top-k, at least `threshold`."""
    kept = set()
    heads, queries, keys = weights.shape
    for h in range(heads):
        for q in range(queries):
            cut = np.sort(weights[h, q])[::-1][min(top_k, keys) - 1]
            kept |= {(h, q, k) for k in range(keys) if weights[h, q, k] >= cut}
        for k in range(keys):
            cut = np.sort(weights[h, :, k])[::-1][min(top_k, queries) - 1]
            kept |= {(h, q, k) for q in range(queries) if weights[h, q, k] >= cut}
    return {
        (h, q, k)
        for h, q, k in kept
        if weights[h, q, k] >= threshold and round(weights[h, q, k] * WEIGHT_SCALE) > 0
    }


TOKENS = [f"t{i}" for i in range(20)]


def test_pruning_keeps_the_row_and_column_top_k_above_the_threshold():
    weights = random_attention(3, 20, 20)
    payload = build_payload(weights, TOKENS, top_k=4, threshold=0.02)
    shipped = {(h, q, k) for h, q, k, _ in lines(payload)}
    assert shipped == brute_force_kept(weights.astype(np.float32), 4, 0.02)
    # Pruning really prunes: far fewer than the 1,200 possible lines, yet every row of every
    # head keeps its strongest line (hover on any left token shows something).
    assert len(shipped) < 0.6 * weights.size
    for h in range(3):
        for q in range(20):
            assert (h, q, int(np.argmax(weights[h, q]))) in shipped


def test_hover_on_a_right_token_has_its_strongest_incoming_lines():
    # A key that is nobody's top-k in its rows still keeps its own strongest incoming lines.
    weights = np.full((1, 6, 6), 0.01)
    weights[0, :, 0] = 0.9  # every query's top lines go to key 0 ...
    weights[0, 3, 5] = 0.05  # ... and key 5's strongest incoming line is from query 3
    payload = build_payload(weights, TOKENS[:6], top_k=1, threshold=0.02)
    shipped = {(q, k) for _, q, k, _ in lines(payload)}
    assert (3, 5) in shipped
    assert all((q, 0) in shipped for q in range(6))


def test_weights_are_rounded_to_thousandths_and_invisible_lines_dropped():
    weights = np.array([[[0.5004, 0.4991, 0.0006], [0.12345, 0.8761, 0.00049]]])
    weights = np.concatenate([weights, [[[0.2, 0.3, 0.5]]]], axis=1)
    payload = build_payload(weights, ["a", "b", "c"], top_k=3, threshold=0.0, colour_scale_max=1.0)
    assert lines(payload) == {
        (0, 0, 0, 500),
        (0, 0, 1, 499),
        (0, 0, 2, 1),
        (0, 1, 0, 123),
        (0, 1, 1, 876),
        # 0.00049 rounds to 0 thousandths: an invisible line, not shipped
        (0, 2, 0, 200),
        (0, 2, 1, 300),
        (0, 2, 2, 500),
    }
    assert payload["ws"] == WEIGHT_SCALE
    assert all(isinstance(value, int) for flat in payload["edges"] for value in flat)


def test_threshold_drops_weak_lines_even_in_the_top_k():
    weights = np.array([[[0.98, 0.015, 0.005]] * 3])
    payload = build_payload(weights, ["a", "b", "c"], top_k=3, threshold=0.01)
    assert {(q, k) for _, q, k, _ in lines(payload)} == {(q, k) for q in range(3) for k in (0, 1)}


def test_json_is_compact_and_round_trips():
    weights = random_attention(12, 40, 40, seed=1)
    tokens = [*TOKENS, *TOKENS[:19], "naïve ✓"]
    payload = build_payload(weights, tokens, segment_b_start=21, piece_marks=[False] * 40)
    text = payload_json(payload)
    assert json.loads(text) == payload
    structure = text.replace(payload["note"], "")  # the note is prose, with its own spaces
    assert ", " not in structure and ": " not in structure
    assert "naïve ✓" in text  # not escaped to \\u sequences
    # About a dozen characters per line: "q,k,w," with three-digit indexes and weights.
    shipped = len(lines(payload))
    edges_text = json.dumps(payload["edges"], separators=(",", ":"))
    assert len(edges_text) <= 12 * shipped + 2 * 12 + 2


def test_a_512_token_layer_ships_under_a_megabyte():
    weights = random_attention(12, 512, 512, seed=2).astype(np.float32)
    text = payload_json(build_payload(weights, [f"w{i}" for i in range(512)]))
    # The dense layer would be 3.1 million weights; BertViz ships every layer's, as text.
    assert len(text.encode()) < 1_000_000


def test_every_head_is_shipped_and_listed_whatever_is_shown():
    weights = random_attention(12, 5, 5)
    payload = build_payload(weights, TOKENS[:5], heads=[7, 3, 3])
    assert payload["heads"] == 12
    assert len(payload["edges"]) == 12 and all(payload["edges"])
    assert payload["shown"] == [3, 7]
    assert build_payload(weights, TOKENS[:5])["shown"] == list(range(12))


def test_causal_drops_lines_to_later_tokens_even_when_the_array_has_them():
    weights = random_attention(4, 10, 10)  # not masked: every key gets some weight
    payload = build_payload(weights, TOKENS[:10], causal=True, top_k=10, threshold=0.0)
    assert lines(payload)
    assert all(k <= q for _, q, k, _ in lines(payload))
    assert "causal" in payload["note"]


def test_cross_attention_keeps_both_token_lists_and_piece_marks_per_side():
    weights = random_attention(2, 3, 5)
    payload = build_payload(
        weights,
        ["a", "b", "c"],
        ["v", "w", "x", "y", "z"],
        piece_marks=([False, True, False], [False, False, True, True, False]),
    )
    assert payload["left"] == ["a", "b", "c"] and payload["right"] == ["v", "w", "x", "y", "z"]
    assert payload["pieces"] == [0, 1, 0]
    assert payload["rpieces"] == [0, 0, 1, 1, 0]
    assert max(k for _, _, k, _ in lines(payload)) <= 4


def test_self_attention_ships_the_tokens_once():
    payload = build_payload(random_attention(1, 3, 3), ["a", "b", "c"], piece_marks=[0, 1, 0])
    assert payload["right"] is None and payload["rpieces"] is None
    assert payload["pieces"] == [0, 1, 0]


def test_colour_scale_is_the_layer_maximum_unless_fixed():
    weights = np.array([[[0.2, 0.1], [0.3, 0.25]]])
    layer = build_payload(weights, ["a", "b"])
    assert layer["max"] == pytest.approx(0.3) and layer["scale"] == "layer"
    assert "this layer's maximum" in layer["note"]
    fixed = build_payload(weights, ["a", "b"], colour_scale_max=1.0)
    assert fixed["max"] == 1.0 and fixed["scale"] == "fixed"
    assert "fixed scale" in fixed["note"]


def test_note_says_what_was_pruned():
    payload = build_payload(random_attention(2, 20, 20), TOKENS, top_k=3, threshold=0.05)
    shipped = len(lines(payload))
    assert "3 strongest" in payload["note"] and "0.05" in payload["note"]
    assert f"({shipped:,} of 800)" in payload["note"]


def test_selection_and_segments_are_passed_through():
    payload = build_payload(
        random_attention(1, 4, 4), TOKENS[:4], selected=np.int64(2), segment_b_start=3
    )
    assert payload["sel"] == 2 and payload["segB"] == 3
    assert build_payload(random_attention(1, 4, 4), TOKENS[:4])["sel"] is None


def test_strongest_lines_with_k_beyond_the_length_keeps_everything_above_threshold():
    weights = np.array([[[0.5, 0.0], [0.2, 0.8]]], dtype=np.float32)
    assert strongest_lines(weights, 5, 0.0).tolist() == [[[True, False], [True, True]]]


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: build_payload(np.ones((2, 2)), ["a", "b"]), InvalidAttentionError, "one layer"),
        (
            lambda: build_payload(np.full((1, 2, 2), np.nan), ["a", "b"]),
            InvalidAttentionError,
            "NaN",
        ),
        (lambda: build_payload(-np.ones((1, 2, 2)), ["a", "b"]), InvalidAttentionError, "negative"),
        (lambda: build_payload(np.ones((1, 2, 3)), ["a", "b"]), InvalidAttentionError, "square"),
        (lambda: build_payload(np.ones((1, 0, 0)), []), InvalidAttentionError, "empty"),
        (lambda: build_payload(np.ones((1, 2, 2)), ["a"]), InvalidSelectionError, "1 tokens"),
        (lambda: build_payload(np.ones((1, 2, 2)), "ab"), InvalidSelectionError, "one string"),
        (
            lambda: build_payload(np.ones((1, 2, 3)), ["a", "b"], ["x"]),
            InvalidSelectionError,
            "right_tokens",
        ),
        (
            lambda: build_payload(np.ones((1, 2, 2)), ["a", "b"], selected=2),
            InvalidSelectionError,
            "outside",
        ),
        (
            lambda: build_payload(np.ones((1, 2, 2)), ["a", "b"], selected=0.5),
            InvalidSelectionError,
            "whole number",
        ),
        (
            lambda: build_payload(np.ones((1, 2, 2)), ["a", "b"], heads=[1]),
            InvalidSelectionError,
            "head 1",
        ),
        (
            lambda: build_payload(np.ones((1, 2, 2)), ["a", "b"], colour_scale_max=0),
            InvalidSelectionError,
            "positive",
        ),
        (
            lambda: build_payload(np.ones((1, 2, 2)), ["a", "b"], segment_b_start=0),
            InvalidSelectionError,
            "first token",
        ),
        (
            lambda: build_payload(np.ones((1, 2, 2)), ["a", "b"], piece_marks=[True]),
            InvalidSelectionError,
            "1 entries",
        ),
        (
            lambda: build_payload(np.ones((1, 2, 2)), ["a", "b"], top_k=0),
            InvalidSelectionError,
            "top_k",
        ),
        (
            lambda: build_payload(np.ones((1, 2, 2)), ["a", "b"], threshold=1.5),
            InvalidSelectionError,
            "threshold",
        ),
        (
            lambda: build_payload(np.ones((1, 2, 3)), ["a", "b"], ["x", "y", "z"], causal=True),
            InvalidSelectionError,
            "causal",
        ),
    ],
)
def test_bad_input_raises_a_readable_atlas_error(call, error, words):
    with pytest.raises(error, match=words) as raised:
        call()
    assert isinstance(raised.value, AtlasError)


def test_word_pieces_are_marked_as_on_every_other_view():
    # The heatmaps label a continuation piece "##woman" (`core.tokens.token_labels`): the
    # line view draws the same marker before the pieces it flags.
    payload = build_payload(random_attention(1, 3, 3), ["wo", "man", "."], piece_marks=[0, 1, 0])
    assert (
        payload["marker"]
        == PIECE_MARKER
        == token_labels([Token("wo", 0, 0, False), Token("man", 1, 0, False)])[1].removesuffix(
            "man"
        )
    )


def test_a_method_without_heads_is_named_instead_of_one_head_chip():
    payload = build_payload(random_attention(1, 3, 3), ["a", "b", "c"], single="rollout")
    assert payload["single"] == "rollout" and payload["heads"] == 1
    assert build_payload(random_attention(2, 3, 3), ["a", "b", "c"])["single"] is None
    with pytest.raises(InvalidSelectionError):
        build_payload(random_attention(2, 3, 3), ["a", "b", "c"], single="rollout")
