"""Colour scales: the domain a chart's colours (or bar lengths) span, and how legends name it.

Three modes (`ScaleMode`):

* ``"chart"``: 0 to this chart's own maximum (the most contrast inside one chart, but two charts
  side by side are not comparable),
* ``"shared"``: 0 to a maximum the caller computed over every compared chart with
  :func:`shared_max` (the default for comparisons),
* ``"fixed"``: 0 to 1, the whole range of an attention weight (near-uniform attention then
  looks cool, as it should).

Signed data (differences) uses the same modes symmetrically around 0. Unsigned data can also
be drawn on a log scale spanning `LOG_DECADES` decades below its top (`log_domain`), for weights
spread over orders of magnitude. Pure functions; nothing here draws.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal, get_args

import numpy as np

ScaleMode = Literal["chart", "shared", "fixed"]
SCALE_MODES: tuple[str, ...] = get_args(ScaleMode)


LOG_DECADES = 3
"""A log colour scale spans this many decades below its top (as the canvas explorer's does);
smaller values, zeros included, are drawn in the bottom colour."""

SCALE_WORDS = {"chart": "this chart", "shared": "shared", "fixed": "fixed"}
"""How a legend or axis title names each scale mode."""


def shared_max(matrices: Iterable[np.ndarray], *, absolute: bool = False) -> float:
    """Largest finite value over all `matrices` (any shapes), for ``scale="shared"``.

    `absolute` takes the largest magnitude instead (differences, drawn symmetric around 0).
    Returns 1.0 when there is no positive finite value, so a domain is never empty.
    """
    best = 0.0
    for matrix in matrices:
        values = np.asarray(matrix, dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size:
            best = max(best, float(np.abs(values).max() if absolute else values.max()))
    return best if best > 0 else 1.0


def check_scale(scale: str, shared: float | None) -> None:
    """Raise ValueError for an unknown mode, or ``"shared"`` without a usable maximum."""
    if scale not in SCALE_MODES:
        raise ValueError(f"scale must be one of {SCALE_MODES}, got {scale!r}")
    if scale == "shared" and (shared is None or not math.isfinite(shared) or shared <= 0):
        raise ValueError("scale='shared' needs a positive shared_max (see core.scales.shared_max)")


def value_domain(
    values: np.ndarray,
    scale: ScaleMode,
    *,
    shared: float | None = None,
    diverging: bool = False,
) -> tuple[float, float]:
    """The colour (or bar-length) domain for `values` under `scale`.

    Non-negative data gets ``(0, top)``; `diverging` data ``(-top, top)``. `top` is this chart's
    largest value (magnitude), `shared`, or 1 for ``"fixed"``.
    """
    check_scale(scale, shared)
    if scale == "fixed":
        top = 1.0
    elif scale == "shared":
        top = float(shared)  # type: ignore[arg-type]  # checked above
    else:
        top = shared_max([values], absolute=diverging)
    return (-top, top) if diverging else (0.0, top)


def log_domain(domain: tuple[float, float], decades: int = LOG_DECADES) -> tuple[float, float]:
    """The log colour domain for the linear `domain` ``(0, top)``: ``(top / 10**decades, top)``.

    A log scale cannot start at 0; values below the floor are drawn in the floor's colour.
    """
    top = float(domain[1])
    if not (math.isfinite(top) and top > 0) or decades < 1:
        raise ValueError(f"a log scale needs a positive top and decades >= 1, got {top}, {decades}")
    return (top / 10**decades, top)


def format_bound(value: float) -> str:
    """A scale bound for a legend: 2 significant digits, no exponent for attention sizes."""
    if value == 1.0:
        return "1"
    return f"{value:.2g}" if abs(value) >= 1e-3 else f"{value:.1e}"


def scale_title(
    value_label: str,
    scale: ScaleMode,
    domain: tuple[float, float],
    *,
    diverging: bool = False,
    log: bool = False,
) -> list[str]:
    """Two-line legend title saying what the colours span, e.g. ``["attention", "0–1 fixed"]``.

    Two lines keep a vertical legend narrow. With `log` (unsigned data; `domain` is then
    `log_domain`'s) the span starts at the floor, marked "≤" since zeros and smaller values
    share its colour, and a third line says how many decades: ``"log scale, 3 decades"``.
    """
    top = format_bound(domain[1])
    if diverging:
        span = f"±{top}"
    elif log:
        span = f"≤{format_bound(domain[0])}–{top}"
    else:
        span = f"0–{top}"
    lines = [value_label, f"{span} {SCALE_WORDS[scale]}"]
    if log and not diverging:
        lines.append(f"log scale, {round(math.log10(domain[1] / domain[0]))} decades")
    return lines


def scale_caption(
    value_label: str, scale: ScaleMode, domain: tuple[float, float], *, diverging: bool = False
) -> str:
    """`scale_title` on one line, for an axis: ``"attention (0–1 fixed)"``."""
    name, span = scale_title(value_label, scale, domain, diverging=diverging)
    return f"{name} ({span})"
