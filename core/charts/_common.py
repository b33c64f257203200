"""Shared pieces of the chart builders: rounding, token-label parameters, axes, scales."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import altair as alt
import numpy as np

SIG_DIGITS = 5
"""Significant digits kept for values sent to the browser."""

SEQUENTIAL_SCHEME = "viridis"
"""Perceptually uniform and legible on both light and dark backgrounds."""

DIVERGING_SCHEME = "blueorange"

HEAD_SCHEME = "category10"
"""One colour per head in the line view (category20 takes over beyond 10 heads)."""

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


def spec_dict(chart: alt.TopLevelMixin) -> dict[str, Any]:
    """The chart's Vega-Lite spec as a dict, with its data inlined under ``"datasets"``.

    Lifts Altair's 5000-row guard for this one call: a 512-token heatmap has 262k rows by
    design. Streamlit does not need this (it ships data frames as Arrow itself).
    """
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
    digest = hashlib.sha1(json.dumps(values).encode("utf-8")).hexdigest()[:10]
    return alt.param(name=f"{stem}_{digest}", value=values)


def position_dtype(n: int) -> type[np.integer]:
    # Narrow integers keep the Arrow tables Streamlit ships small.
    return np.int16 if n < np.iinfo(np.int16).max else np.int32


def position_axis(
    param: alt.Parameter,
    *,
    title: str | None,
    label_angle: float | None = None,
    orient: str | None = None,
    values: list[int] | None = None,
    font_weight_expr: str | None = None,
) -> alt.Axis:
    """An axis over token positions whose labels are the texts in `param`.

    `values` lists the positions to label; it is needed on quantitative scales, where the
    default ticks would be round numbers rather than every position.
    """
    kwargs: dict[str, Any] = {
        "title": title,
        "labelExpr": f"{param.name}[datum.value]",
        # At hundreds of tokens greedy culling keeps a readable subset instead of a smear.
        "labelOverlap": "greedy",
        "labelLimit": LABEL_LIMIT_PX,
        # Flush alignment would shift the first and last labels off their rows.
        "labelFlush": False,
        "grid": False,
        "ticks": False,
        "domain": False,
    }
    if label_angle is not None:
        kwargs["labelAngle"] = label_angle
    if orient is not None:
        kwargs["orient"] = orient
    if values is not None:
        kwargs["values"] = values
    if font_weight_expr is not None:
        kwargs["labelFontWeight"] = alt.ExprRef(expr=font_weight_expr)
    return alt.Axis(**kwargs)


def add_params(chart: alt.TopLevelMixin, params: list[alt.Parameter]) -> alt.TopLevelMixin:
    unique = {p.name: p for p in params}
    return chart.add_params(*unique.values())


# Streamlit fits charts without an explicit autosize into their width *including* axes and
# legend, which squeezes a heatmap's cells to nothing; "pad" keeps the plot size we set.
PAD = alt.AutoSizeParams(type="pad", contains="padding")


def heat_size(n: int) -> int:
    """Default side in px of a heatmap axis with `n` cells: 22 px per cell within 220..680."""
    return int(min(680, max(220, 22 * n)))


def color_scale(
    values: np.ndarray,
    *,
    diverging: bool,
    domain: tuple[float, float] | None,
    scheme: str | None,
) -> alt.Scale:
    if diverging:
        # Symmetric around 0 so equal gains and losses get equally strong colours.
        if domain is None:
            bound = float(np.max(np.abs(values))) if values.size else 0.0
        else:
            bound = float(max(abs(domain[0]), abs(domain[1])))
        bound = bound or 1.0  # an all-zero difference still needs a non-empty domain
        return alt.Scale(
            scheme=scheme or DIVERGING_SCHEME, domain=[-bound, bound], domainMid=0, clamp=True
        )
    if domain is not None:
        return alt.Scale(scheme=scheme or SEQUENTIAL_SCHEME, domain=list(domain), clamp=True)
    if values.size and float(values.min()) >= 0:
        # Anchoring at 0 keeps "no attention" the same colour in every head.
        return alt.Scale(scheme=scheme or SEQUENTIAL_SCHEME, domainMin=0)
    return alt.Scale(scheme=scheme or SEQUENTIAL_SCHEME)
