"""The logit lens as a layers × rank heatmap with the predicted tokens written in."""

from __future__ import annotations

import altair as alt
import pandas as pd

from core.chart_layout import LEGEND_PX
from core.charts._common import PAD, SEQUENTIAL_SCHEME, array_param, round_sig

LENS_RESERVED_PX = LEGEND_PX + 60
"""Beside the cells: the layer axis (title and numbers) and the probability legend."""
MIN_LENS_CELL_PX = 40
LAYER_TITLE = "layer (0 = embeddings)"
LAYER_TITLE_PX = 130
"""Length of `LAYER_TITLE` drawn upright beside the rows (11 px font, with margins): a
shallow model's rows grow until the chart is at least this tall, so the title fits beside it."""


def logit_lens_chart(
    table: pd.DataFrame,
    *,
    cell_width: int = 90,
    cell_height: int = 22,
    max_width: int | None = None,
) -> alt.LayerChart:
    """Heatmap of `core.logit_lens` output: one row per layer, one column per rank.

    Cell colour is the probability; the token text is written in the cell (cut with an
    ellipsis where it is wider; the tooltip has all). Token texts travel as one array
    parameter indexed by row number (data, never code). Cells are `cell_width` px wide, or
    narrower (down to `MIN_LENS_CELL_PX`) so that the whole chart, axis and legend included,
    fits `max_width` px.
    """
    required = {"layer", "rank", "token", "probability"}
    if not required <= set(table.columns):
        raise ValueError(f"logit lens table needs columns {sorted(required)}")
    data = table[["layer", "rank", "probability"]].copy().reset_index(drop=True)
    data["row"] = range(len(data))
    data["probability"] = round_sig(data["probability"].to_numpy(dtype="float64"))
    texts = array_param("lens", [str(t) for t in table["token"]])
    layers = int(data["layer"].max()) + 1 if len(data) else 1
    ranks = int(data["rank"].max()) if len(data) else 1
    if max_width is not None:
        room = (int(max_width) - LENS_RESERVED_PX) // max(1, ranks)
        cell_width = max(MIN_LENS_CELL_PX, min(cell_width, room))
    base = alt.Chart(data).transform_calculate(token=f"{texts.name}[datum.row]")
    cell_height = max(cell_height, -(-LAYER_TITLE_PX // layers))
    y = alt.Y("layer:O", title=LAYER_TITLE, sort="descending")
    x = alt.X("rank:O", title="rank", axis=alt.Axis(labelAngle=0))
    cells = base.mark_rect().encode(
        x=x,
        y=y,
        color=alt.Color("probability:Q", scale=alt.Scale(scheme=SEQUENTIAL_SCHEME, domain=[0, 1])),
        tooltip=[
            alt.Tooltip("layer:O"),
            alt.Tooltip("rank:O"),
            alt.Tooltip("token:N"),
            alt.Tooltip("probability:Q", format=".4f"),
        ],
    )
    labels = base.mark_text(limit=cell_width - 6).encode(
        x=x,
        y=y,
        text="token:N",
        color=alt.condition("datum.probability > 0.5", alt.value("black"), alt.value("white")),
    )
    chart = alt.layer(cells, labels).properties(
        width=cell_width * ranks, height=cell_height * layers, autosize=PAD
    )
    return chart.add_params(texts)
