"""Global view scatter: valid spec, colour modes, literal token text, clipped sentences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.charts.corpus import SENTENCE_CHARS, global_view_chart


def view_frame(m: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    tokens = ["[CLS]", "${alert(1)}", "<b>x</b>"] + [f"t{i}" for i in range(m - 3)]
    half = pd.DataFrame(
        {
            "position": np.arange(m),
            "relative_position": np.arange(m) / (m - 1),
            "token": tokens,
            "sentence": ["word " * 60] * m,
        }
    )
    frame = pd.concat([half.assign(role="query"), half.assign(role="key")], ignore_index=True)
    return frame.assign(x=rng.normal(size=2 * m), y=rng.normal(size=2 * m))


def rows_of(spec):
    (rows,) = [v for v in spec["datasets"].values() if v and "role" in v[0]]
    return rows


def test_role_colouring_draws_every_point_with_its_token(valid_spec):
    spec = valid_spec(global_view_chart(view_frame(), colour="role", width=400, height=300))
    rows = rows_of(spec)
    assert len(rows) == 12
    assert {r["role"] for r in rows} == {"query", "key"}
    assert spec["encoding"]["color"]["field"] == "role"
    # Token text is data, kept literally (never spliced into an expression).
    assert "${alert(1)}" in {r["token"] for r in rows}
    assert {t["field"] for t in spec["encoding"]["tooltip"]} >= {"token", "sentence"}
    assert (spec["width"], spec["height"]) == (400, 300)


def test_position_colouring_keeps_queries_and_keys_apart_by_shape(valid_spec):
    spec = valid_spec(global_view_chart(view_frame(), colour="position"))
    assert spec["encoding"]["color"]["field"] == "relative_position"
    assert spec["encoding"]["shape"]["field"] == "role"
    assert spec["width"] == "container"  # fills the page column, whatever its width


def test_long_sentences_are_clipped_in_the_tooltip(valid_spec):
    rows = rows_of(valid_spec(global_view_chart(view_frame())))
    assert all(len(r["sentence"]) <= SENTENCE_CHARS for r in rows)
    assert rows[0]["sentence"].endswith("…")


@pytest.mark.parametrize(
    ("frame", "options"),
    [
        (view_frame().drop(columns="token"), {}),
        (view_frame(), {"colour": "rainbow"}),
        (view_frame(), {"width": 10}),
    ],
)
def test_bad_input_is_refused(frame, options):
    with pytest.raises(ValueError):
        global_view_chart(frame, **options)
