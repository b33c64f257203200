"""Raster images of attention: PNG heatmaps and the all-heads gallery as a ZIP.

The CS50 "attention" exercise saves one diagram per head; this does the same for any model,
at any length, without a browser.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# White to dark blue: readable when printed and for most colour-vision deficiencies.
_LOW = np.array([255, 255, 255], dtype=np.float64)
_HIGH = np.array([8, 48, 107], dtype=np.float64)
_MAX_IMAGE_SIDE = 1400


def colorize(matrix: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """`[q, k]` weights to `[q, k, 3]` uint8 colours on a 0..vmax scale (NaN drawn light grey)."""
    values = np.asarray(matrix, dtype=np.float64)
    top = float(np.nanmax(values)) if vmax is None and np.isfinite(values).any() else vmax or 1.0
    scaled = np.clip(np.nan_to_num(values / (top or 1.0)), 0.0, 1.0)[..., None]
    rgb = _LOW + (_HIGH - _LOW) * scaled
    rgb[np.isnan(values)] = (235, 235, 235)
    return rgb.round().astype(np.uint8)


def attention_png(
    matrix: np.ndarray,
    query_labels: Sequence[str],
    key_labels: Sequence[str] | None = None,
    *,
    title: str = "",
) -> bytes:
    """A PNG heatmap of `matrix` `[q, k]` with token labels when cells are large enough."""
    key_labels = list(query_labels if key_labels is None else key_labels)
    q, k = matrix.shape
    if len(query_labels) != q or len(key_labels) != k:
        raise ValueError("Label counts must match the matrix shape.")
    cell = max(1, min(32, _MAX_IMAGE_SIDE // max(q, k)))
    show_labels = cell >= 8
    font = ImageFont.load_default(size=max(8, min(14, cell - 2)))
    margin = _label_margin(font, [*query_labels, *key_labels]) if show_labels else 0
    top = 24 if title else 4
    image = Image.new("RGB", (margin + k * cell + 4, top + margin + q * cell + 4), "white")
    cells = Image.fromarray(colorize(matrix)).resize((k * cell, q * cell), Image.NEAREST)
    image.paste(cells, (margin, top + margin))
    draw = ImageDraw.Draw(image)
    if title:
        draw.text((4, 4), title, fill="black", font=ImageFont.load_default(size=14))
    if show_labels:
        for i, label in enumerate(query_labels):
            draw.text((margin - 4, top + margin + i * cell + cell / 2), label, "black", font, "rm")
        column = Image.new("RGB", (margin, k * cell), "white")
        column_draw = ImageDraw.Draw(column)
        for j, label in enumerate(key_labels):
            column_draw.text((margin - 4, j * cell + cell / 2), label, "black", font, "rm")
        image.paste(column.rotate(90, expand=True), (margin, top))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _label_margin(font: ImageFont.FreeTypeFont, labels: Sequence[str]) -> int:
    widest = max((font.getlength(label) for label in labels), default=0)
    return int(min(widest, 160)) + 8


def gallery_zip(attentions: np.ndarray, labels: Sequence[str], *, model_name: str = "") -> bytes:
    """A ZIP of one PNG per head, named like the CS50 exercise: `Attention_Layer1_Head1.png`.

    `attentions` is `[layers, heads, n, n]`; layers and heads are numbered from 1 in file names.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for layer in range(attentions.shape[0]):
            for head in range(attentions.shape[1]):
                title = f"{model_name} layer {layer + 1} head {head + 1}".strip()
                png = attention_png(attentions[layer, head], labels, title=title)
                archive.writestr(f"Attention_Layer{layer + 1}_Head{head + 1}.png", png)
    return buffer.getvalue()
