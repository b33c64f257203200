"""Corpus atlas charts: the joint 2-D embedding of one head's queries and keys (AttentionViz)."""

from __future__ import annotations

from typing import Literal

import altair as alt
import pandas as pd

from core.charts._common import HEAD_SCHEME, SEQUENTIAL_SCHEME, finish, round_sig

GlobalColour = Literal["role", "position"]
GLOBAL_COLOURS: tuple[str, ...] = ("role", "position")
GLOBAL_VIEW_COLUMNS = ("x", "y", "role", "token", "position", "relative_position", "sentence")
SENTENCE_CHARS = 120
"""Tooltips show at most this much of a point's sentence: a tooltip wider than the screen
hides the chart it explains."""
ROLE_ORDER = ["query", "key"]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def global_view_chart(
    frame: pd.DataFrame,
    *,
    colour: GlobalColour = "role",
    width: int | None = None,
    height: int = 420,
    title: str = "",
) -> alt.Chart:
    """Scatter of a head's queries and keys in one 2-D embedding (`core.corpus.global_view`).

    Args:
        frame: one row per point with at least `GLOBAL_VIEW_COLUMNS`: `x, y` (the embedding),
            `role` ("query"/"key"), `token`, `position` (0-based in its sentence),
            `relative_position` (position / (n − 1), 0 at the start, 1 at the end) and
            `sentence`.
        colour: "role" colours queries and keys apart; "position" colours by relative position
            (queries and keys then differ by shape).
        width: px of the plot; None fills the width of its container (Vega-Lite
            "container"; Streamlit: `width="stretch"`), so it fits any page column.
        height: px of the plot.

    Hovering a point shows its token, role, position and (clipped) sentence. Token and sentence
    texts are data, shown literally, never part of an expression.
    """
    missing = [c for c in GLOBAL_VIEW_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"global view frame lacks columns {missing}")
    if colour not in GLOBAL_COLOURS:
        raise ValueError(f"colour must be one of {GLOBAL_COLOURS}, not {colour!r}")
    if (width is not None and width < 50) or height < 50:
        raise ValueError(f"the chart needs at least 50 × 50 px, not {width} × {height}")
    data = pd.DataFrame(
        {
            "x": round_sig(frame["x"].to_numpy()),
            "y": round_sig(frame["y"].to_numpy()),
            "role": frame["role"].astype(str).to_numpy(),
            "token": frame["token"].astype(str).to_numpy(),
            "position": frame["position"].astype(int).to_numpy(),
            "relative_position": round_sig(frame["relative_position"].to_numpy(), 3),
            "sentence": [_clip(str(s), SENTENCE_CHARS) for s in frame["sentence"]],
        }
    )
    roles = alt.Scale(domain=ROLE_ORDER)
    # Legends go above the plot: beside it they would take width from a narrow page column.
    legend = alt.Legend(orient="top", direction="horizontal")
    if colour == "role":
        colour_encoding = alt.Color(
            "role:N",
            scale=alt.Scale(domain=ROLE_ORDER, scheme=HEAD_SCHEME),
            title="vector",
            legend=legend,
        )
        shape_encoding = alt.Shape("role:N", scale=roles, legend=None)
    else:
        colour_encoding = alt.Color(
            "relative_position:Q",
            scale=alt.Scale(scheme=SEQUENTIAL_SCHEME, domain=[0, 1]),
            title="position (0 start, 1 end)",
            legend=alt.Legend(orient="top", direction="horizontal", gradientLength=160),
        )
        shape_encoding = alt.Shape("role:N", scale=roles, title="vector", legend=legend)
    chart = (
        alt.Chart(data)
        .mark_point(filled=True, size=28, opacity=0.6)
        .encode(
            x=alt.X("x:Q", title="embedding 1", axis=alt.Axis(labels=False, ticks=False)),
            y=alt.Y("y:Q", title="embedding 2", axis=alt.Axis(labels=False, ticks=False)),
            color=colour_encoding,
            shape=shape_encoding,
            tooltip=[
                alt.Tooltip("token:N", title="token"),
                alt.Tooltip("role:N", title="vector"),
                alt.Tooltip("position:Q", title="position"),
                alt.Tooltip("sentence:N", title="sentence"),
            ],
        )
        .properties(width="container" if width is None else width, height=height)
        .interactive()
    )
    queries = int((data["role"] == "query").sum())
    notes = [f"{queries:,} tokens: each drawn as its query and its key vector"]
    return finish(chart, title, notes)
