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


VIRIDIS_STOPS = tuple("#{:02x}{:02x}{:02x}".format(*(int(c) for c in s)) for s in _VIRIDIS_STOPS)
"""The same stops as hex colours, for legends drawn in the browser."""


def interpolate(scaled: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """`[...]` values in 0..1 to `[..., 3]` uint8 colours interpolated between RGB `stops`
    `[k, 3]` (evenly spaced; NaN counts as 0, the caller marks it)."""
    values = np.asarray(scaled, dtype=np.float64)
    position = np.clip(np.nan_to_num(values), 0.0, 1.0) * (len(stops) - 1)
    low = np.minimum(position.astype(np.int64), len(stops) - 2)
    fraction = (position - low)[..., None]
    rgb = stops[low] * (1 - fraction) + stops[low + 1] * fraction
    return rgb.round().astype(np.uint8)


def viridis(scaled: np.ndarray) -> np.ndarray:
    """`[...]` values in 0..1 to `[..., 3]` uint8 viridis colours (NaN -> `NAN_RGB`)."""
    rgb = interpolate(scaled, _VIRIDIS_STOPS)
    rgb[np.isnan(np.asarray(scaled, dtype=np.float64))] = NAN_RGB
    return rgb


def png_bytes(pixels: np.ndarray) -> bytes:
    """`[rows, cols, 3 or 4]` uint8 as PNG bytes (RGB or RGBA)."""
    buffer = io.BytesIO()
    mode = "RGBA" if pixels.shape[-1] == 4 else "RGB"
    Image.fromarray(np.ascontiguousarray(pixels), mode=mode).save(
        buffer, format="PNG", optimize=True
    )
    return buffer.getvalue()


def data_url(png: bytes) -> str:
    """PNG bytes as a ``data:`` URL."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


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
    return data_url(png_bytes(rgb))
