"""Shared pieces of the chart builders: rounding, token-label parameters, axes, scales."""

from __future__ import annotations

import hashlib
import json
import textwrap
from collections.abc import Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from core.chart_layout import LABEL_FONT_SIZE, heatmap_side
from core.scales import ScaleMode, log_domain, scale_title, value_domain

SIG_DIGITS = 5
"""Significant digits kept for values sent to the browser."""

SEQUENTIAL_SCHEME = "viridis"
"""Perceptually uniform and legible on both light and dark backgrounds."""
LEGEND_LINE_CHARS = 22
"""Longest line of a legend title's notes."""
LOG_NOT_SIGNED = "linear: log does not apply to ± values"
"""Legend line of a signed chart asked for a log scale (a log scale has no 0 and no sign)."""

DIVERGING_SCHEME = "blueorange"

HEAD_SCHEME = "category10"
"""One colour per head in the line view (category20 takes over beyond 10 heads)."""

NOTE_COLOUR = "#808495"
"""Subtitles (the notes under a title): Streamlit's caption grey, read on the light and the dark
theme alike (Vega's default is black, invisible on the dark background)."""

LABEL_LIMIT_PX = 110
"""Long tokens are truncated with an ellipsis on axes; tooltips keep the full text."""


def round_sig(values: np.ndarray | Sequence[float], digits: int = SIG_DIGITS) -> np.ndarray:
    """Round every value to `digits` significant digits, keeping NaN/inf/0 as they are.

    Returns float64 of the input's shape. Rounding with a decimal count per order of magnitude
    makes each result the double nearest to a short decimal, so it serialises as e.g.
    ``0.0023403`` instead of 17 digits.
    """
    a = np.array(values, dtype=np.float64)
    nonzero = np.isfinite(a) & (a != 0)
    if not nonzero.any():
        return a
    vals = a[nonzero]
    decimals = digits - 1 - np.floor(np.log10(np.abs(vals))).astype(np.int64)
    rounded = np.empty_like(vals)
    # np.round takes one decimal count per call; the distinct magnitudes are few.
    for d in np.unique(decimals):
        sel = decimals == d
        rounded[sel] = np.round(vals[sel], int(d))
    a[nonzero] = rounded
    return a


Spec = dict[str, Any]
"""A Vega-Lite spec built as a plain dict (no Altair objects): its ``"datasets"`` may hold data
frames, which Streamlit ships as Arrow tables; `spec_dict` turns them into JSON rows."""


def spec_dict(chart: alt.TopLevelMixin | Spec) -> Spec:
    """The chart's Vega-Lite spec as a JSON-ready dict, its data inlined under ``"datasets"``.

    Lifts Altair's 5000-row guard for this one call: a 512-token heatmap has 262k rows by
    design. Streamlit does not need this (it ships data frames as Arrow itself).
    """
    if isinstance(chart, dict):
        datasets = {
            name: rows.to_dict("records") if isinstance(rows, pd.DataFrame) else rows
            for name, rows in chart.get("datasets", {}).items()
        }
        return {**chart, "datasets": datasets} if datasets else dict(chart)
    with alt.data_transformers.disable_max_rows():
        return chart.to_dict()


def check_labels(labels: Sequence[str], expected: int, what: str) -> list[str]:
    tokens = [str(t) for t in labels]
    if len(tokens) != expected:
        raise ValueError(f"{what}: expected {expected} labels, got {len(tokens)}")
    return tokens


def labels_param(tokens: list[str]) -> alt.Parameter:
    """A variable parameter holding the token texts, indexed by position in expressions."""
    return array_param("tok", tokens)


def array_param(stem: str, values: list[Any]) -> alt.Parameter:
    """A variable parameter whose value is `values`, named after a hash of them.

    Content-derived names let charts with different arrays be layered or concatenated without
    a parameter-name clash, while identical arrays share one parameter.
    """
    return alt.param(**array_param_spec(stem, values))


def array_param_spec(stem: str, values: list[Any]) -> Spec:
    """`array_param` as a plain spec: ``{"name": "<stem>_<hash>", "value": values}``."""
    digest = hashlib.sha1(json.dumps(values).encode("utf-8")).hexdigest()[:10]
    return {"name": f"{stem}_{digest}", "value": values}


def point_selection(
    name: str,
    fields: list[str],
    *,
    on: str = "click",
    clear: str = "dblclick",
    value: Any = None,
    empty: bool | None = None,
) -> alt.Parameter:
    """A point selection on `fields`, fired by the event `on` and emptied by `clear`.

    The spec equals ``alt.selection_point(name=..., fields=..., on=..., clear=..., ...)``. Given
    to the constructor, a string `on`/`clear` (or a `value`) is validated by Altair against
    schemas that fail first, and the caught errors hold the calling frames (the page's result
    among them) in reference cycles until a full garbage collection. Set on the built object,
    they skip that validation.
    """
    options = {} if empty is None else {"empty": empty}
    selection = alt.selection_point(name=name, fields=fields, **options)
    selection.param.select.on = on
    selection.param.select.clear = clear
    if value is not None:
        selection.param.value = value
    return selection


def position_dtype(n: int) -> type[np.integer]:
    # Narrow integers keep the Arrow tables Streamlit ships small.
    return np.int16 if n < np.iinfo(np.int16).max else np.int32


def position_axis(param: alt.Parameter, **options: Any) -> alt.Axis:
    """`axis_spec` for the texts in the variable parameter `param`, as an Altair axis."""
    return alt.Axis(**axis_spec(param.name, **options))


def axis_spec(
    labels_name: str,
    *,
    title: str | None,
    label_angle: float | None = None,
    orient: str | None = None,
    values: list[int] | None = None,
    font_weight_expr: str | None = None,
    planned: bool = False,
    offset: int | None = None,
) -> Spec:
    """An axis over token positions whose labels are the texts in parameter `labels_name`.

    `values` lists the positions to label; it is needed on quantitative scales, where the
    default ticks would be round numbers rather than every position. `planned` says the caller
    chose `values` so that they fit (`core.chart_layout.plan_axis`): every one of them is then
    drawn, at `LABEL_FONT_SIZE`, instead of Vega culling some. `offset` moves the labels away from
    the plot (to make room for A/B segment strips).
    """
    axis: Spec = {
        "title": title,
        "labelExpr": f"{labels_name}[datum.value]",
        # At hundreds of tokens greedy culling keeps a readable subset instead of a smear.
        "labelOverlap": False if planned else "greedy",
        "labelLimit": LABEL_LIMIT_PX,
        # Flush alignment would shift the first and last labels off their rows.
        "labelFlush": False,
        "grid": False,
        "ticks": False,
        "domain": False,
    }
    if label_angle is not None:
        axis["labelAngle"] = label_angle
    if orient is not None:
        axis["orient"] = orient
    if values is not None:
        axis["values"] = values
    if font_weight_expr is not None:
        axis["labelFontWeight"] = {"expr": font_weight_expr}
    if planned:
        axis["labelFontSize"] = LABEL_FONT_SIZE
    if offset is not None:
        axis["offset"] = offset
    return axis


def add_params(chart: alt.TopLevelMixin, params: list[alt.Parameter]) -> alt.TopLevelMixin:
    unique = {p.name: p for p in params}
    return chart.add_params(*unique.values())


# Streamlit fits charts without an explicit autosize into their width *including* axes and
# legend, which squeezes a heatmap's cells to nothing; "pad" keeps the plot size we set.
PAD_SPEC: Spec = {"type": "pad", "contains": "padding"}
PAD = alt.AutoSizeParams(**PAD_SPEC)
# Bar charts follow the column's width but keep the height we set: Streamlit's default "fit"
# also fits the height, title and axes included, which squeezed five prediction bars into
# 30 px with two labels.
FIT_X = alt.AutoSizeParams(type="fit-x", contains="padding")

NOTE_LINE_CHARS = 48
"""About 300 px of 11 px text: a subtitle line fits the narrowest column the pages use."""

TITLE_LINE_CHARS = 56
"""About 420 px of 13 px bold title text: longer titles are broken into lines, since Vega widens
the whole chart to fit a title (a 90-character title pushed a heatmap past its column)."""

NOTES_KEY = "atlas_notes"
"""Key in a spec's ``usermeta`` holding the notes on what a chart left out or thinned."""


def finish(chart: alt.TopLevelMixin, title: str, notes: Sequence[str]) -> alt.TopLevelMixin:
    """Set the title, with `notes` as its subtitle and in ``usermeta`` (`title_properties`)."""
    properties = title_properties(title, notes)
    return chart.properties(**properties) if properties else chart


def title_properties(title: str, notes: Sequence[str]) -> Spec:
    """The ``title`` (and ``usermeta``) of a chart: `notes` as its subtitle and in ``usermeta``
    (see `chart_notes`).

    Without notes the title stays a plain string, as before. Vega does not wrap titles, so the
    subtitle is broken into lines of at most `NOTE_LINE_CHARS` characters.
    """
    notes = [n for n in notes if n]
    text: str | list[str] = title
    if len(title) > TITLE_LINE_CHARS:
        text = textwrap.wrap(title, TITLE_LINE_CHARS)
    if notes:
        lines = [line for note in notes for line in textwrap.wrap(note, NOTE_LINE_CHARS)]
        return {
            "title": {
                "text": text or " ",
                "subtitle": lines,
                "anchor": "start",
                "subtitleColor": NOTE_COLOUR,
            },
            "usermeta": {NOTES_KEY: notes},
        }
    if isinstance(text, list):
        return {"title": {"text": text, "anchor": "start"}}
    return {"title": title} if title else {}


def chart_notes(chart: alt.TopLevelMixin | Spec) -> list[str]:
    """The notes a builder attached to `chart` (thinned labels, bars left out), or []."""
    if isinstance(chart, dict):
        meta = chart.get("usermeta", alt.Undefined)
    else:
        meta = getattr(chart, "usermeta", alt.Undefined)
    if meta is alt.Undefined or not isinstance(meta, dict):
        return []
    return list(meta.get(NOTES_KEY, []))


def heat_size(n: int) -> int:
    """Default side in px of a heatmap axis with `n` cells: 22 px per cell within 220..680."""
    return heatmap_side(n, None)


def scaled_color(
    values: np.ndarray,
    *,
    legend: alt.Legend | None = None,
    **options: Any,
) -> alt.Color:
    """`color_spec` as an Altair channel."""
    channel = color_spec(values, legend=None if legend is None else legend.to_dict(), **options)
    return alt.Color("v:Q", **{k: v for k, v in channel.items() if k not in ("field", "type")})


def color_spec(
    values: np.ndarray,
    *,
    value_label: str,
    diverging: bool,
    domain: tuple[float, float] | None,
    scheme: str | None,
    scale: ScaleMode,
    shared: float | None,
    legend: Spec | None = None,
    log: bool = False,
    notes: Sequence[str] = (),
) -> Spec:
    """The colour channel over field ``v`` for `scale`, its legend title saying which scale.

    An explicit `domain` wins over `scale` (the older way to fix a domain); its title then
    says "fixed" with the given bounds. `log` (unsigned data only) draws `core.scales.log_domain`
    of that domain on a log scale over field ``c``, which the caller fills with ``v`` raised to
    the floor (``scale.domain[0]``): zeros get the floor's colour instead of no colour. For
    signed data `log` is ignored and the legend says so. `notes` are further legend lines (e.g.
    what was done to the matrix).
    """
    if domain is None:
        used = value_domain(values, scale, shared=shared, diverging=diverging)
        mode: ScaleMode = scale
    else:
        used, mode = (float(domain[0]), float(domain[1])), "fixed"
    notes = [*notes, LOG_NOT_SIGNED] if log and diverging else list(notes)
    # Wrapped: a legend beside a heatmap has about `core.chart_layout.LEGEND_PX` + 40 px.
    extra = [line for note in notes for line in textwrap.wrap(note, LEGEND_LINE_CHARS)]
    log = log and not diverging
    if log:
        used = log_domain(used)
        color = {
            "type": "log",
            "scheme": scheme or SEQUENTIAL_SCHEME,
            "domain": list(used),
            "clamp": True,
        }
    elif domain is None and scale == "chart" and not diverging:
        # Left to Vega, as before: 0 to this chart's maximum.
        color = scale_spec(values, diverging=False, domain=None, scheme=scheme)
    else:
        color = scale_spec(values, diverging=diverging, domain=used, scheme=scheme)
    title = scale_title(value_label, mode, used, diverging=diverging, log=log) + extra
    # Gradient legends print 0.00 and 0.02 on top of each other unless told to cull.
    legend = {**(legend or {}), "labelOverlap": "greedy", "labelSeparation": 6}
    field = "c" if log else "v"
    return {
        "field": field,
        "type": "quantitative",
        "scale": color,
        "title": title,
        "legend": legend,
    }


def color_scale(values: np.ndarray, **options: Any) -> alt.Scale:
    """`scale_spec` as an Altair scale."""
    return alt.Scale(**scale_spec(values, **options))


def scale_spec(
    values: np.ndarray,
    *,
    diverging: bool,
    domain: tuple[float, float] | None,
    scheme: str | None,
) -> Spec:
    if diverging:
        # Symmetric around 0 so equal gains and losses get equally strong colours.
        if domain is None:
            bound = float(np.max(np.abs(values))) if values.size else 0.0
        else:
            bound = float(max(abs(domain[0]), abs(domain[1])))
        bound = bound or 1.0  # an all-zero difference still needs a non-empty domain
        return {
            "scheme": scheme or DIVERGING_SCHEME,
            "domain": [-bound, bound],
            "domainMid": 0,
            "clamp": True,
        }
    if domain is not None:
        return {"scheme": scheme or SEQUENTIAL_SCHEME, "domain": list(domain), "clamp": True}
    if values.size and float(values.min()) >= 0:
        # Anchoring at 0 keeps "no attention" the same colour in every head.
        return {"scheme": scheme or SEQUENTIAL_SCHEME, "domainMin": 0}
    return {"scheme": scheme or SEQUENTIAL_SCHEME}
