"""Small PNG images of matrices for charts too dense to draw cell by cell.

A grid of 144 heads as rect marks is 40,000–80,000 Vega items: 8–15 s of drawing in headless
Chromium at 512 tokens (bench/RESULTS.md). As 144 image marks it is 144 items. The colours
follow Vega's "viridis", the sequential scheme of every other chart, so a raster thumbnail and
a heatmap of the same head look alike.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

# Viridis at nine evenly spaced stops (matplotlib's table); linear interpolation between them
# is within a few RGB units of the full 256-entry table.
_VIRIDIS_STOPS = np.array(
    [
        (68, 1, 84),
        (71, 45, 123),
        (59, 82, 139),
        (44, 114, 142),
        (33, 145, 140),
        (40, 174, 128),
        (94, 201, 98),
        (173, 220, 48),
        (253, 231, 37),
    ],
    dtype=np.float64,
)
NAN_RGB = (235, 235, 235)
"""Cells without a value (NaN) are light grey, as in the PNG exports."""


def viridis(scaled: np.ndarray) -> np.ndarray:
    """`[...]` values in 0..1 to `[..., 3]` uint8 viridis colours (NaN -> `NAN_RGB`)."""
    values = np.asarray(scaled, dtype=np.float64)
    position = np.clip(np.nan_to_num(values), 0.0, 1.0) * (len(_VIRIDIS_STOPS) - 1)
    low = np.minimum(position.astype(np.int64), len(_VIRIDIS_STOPS) - 2)
    fraction = (position - low)[..., None]
    rgb = _VIRIDIS_STOPS[low] * (1 - fraction) + _VIRIDIS_STOPS[low + 1] * fraction
    rgb[np.isnan(values)] = NAN_RGB
    return rgb.round().astype(np.uint8)


def png_data_url(matrix: np.ndarray, vmax: float, pixels_per_cell: int = 1) -> str:
    """`matrix` `[rows, cols]` as a viridis PNG on the scale 0..`vmax`, as a `data:` URL.

    Each cell becomes a `pixels_per_cell` square, so the browser does not blur small images
    when it scales them up.
    """
    values = np.asarray(matrix, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"matrix must be [rows, cols], got shape {values.shape}")
    rgb = viridis(values / (vmax or 1.0))
    if pixels_per_cell > 1:
        rgb = rgb.repeat(pixels_per_cell, axis=0).repeat(pixels_per_cell, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
