"""Raster images of attention: PNG heatmaps and the all-heads gallery as a ZIP.

The CS50 "attention" exercise saves one diagram per head; this does the same for any model,
at any length, without a browser. Two palettes:

* ``"blue"``: white to dark blue on 0 to each head's own maximum (every head's pattern shows,
  readable when printed);
* ``"cs50"``: the exercise's absolute grey scale, ``grey = round(255 * weight)`` for weights
  in 0..1 (0 black, 1 white, never rescaled per head) on a black background with white
  labels, so a weak head looks dark, as in the students' own diagrams.

Layers and heads are numbered from 0, as everywhere in the app (the exercise counts from 1);
every PNG carries its provenance in PNG text chunks, and the ZIP a ``provenance.json``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from collections.abc import Sequence
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from core.export import APP_NAME, Provenance
from core.version import VERSION

Palette = Literal["blue", "cs50"]
PALETTES: tuple[str, ...] = ("blue", "cs50")

# White to dark blue: readable when printed and for most colour-vision deficiencies.
_LOW = np.array([255, 255, 255], dtype=np.float64)
_HIGH = np.array([8, 48, 107], dtype=np.float64)
_MAX_IMAGE_SIDE = 1400
NAN_RGB = (235, 235, 235)
"""Cells without a value in the blue palette."""
CS50_NAN_RGB = (90, 20, 20)
"""Cells without a value in the grey palette: dark red, since any grey would read as a weight."""


def cs50_grey(values: np.ndarray) -> np.ndarray:
    """CS50's absolute grey level of each weight: ``round(255 * v)`` for `v` clipped to 0..1.

    Returns uint8 of the input's shape (NaN -> 0; `colorize` paints those cells apart).
    """
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64)), 0.0, 1.0)
    return np.round(255 * v).astype(np.uint8)


def colorize(
    matrix: np.ndarray, vmax: float | None = None, *, palette: Palette = "blue"
) -> np.ndarray:
    """`[q, k]` weights to `[q, k, 3]` uint8 colours.

    ``"blue"``: on a 0..vmax scale (default the matrix's maximum), NaN light grey.
    ``"cs50"``: the absolute grey scale (`cs50_grey`, `vmax` ignored), NaN dark red.
    """
    values = np.asarray(matrix, dtype=np.float64)
    if palette == "cs50":
        rgb = np.repeat(cs50_grey(values)[..., None], 3, axis=-1)
        rgb[np.isnan(values)] = CS50_NAN_RGB
        return rgb
    if palette != "blue":
        raise ValueError(f"palette must be one of {PALETTES}, got {palette!r}")
    top = float(np.nanmax(values)) if vmax is None and np.isfinite(values).any() else vmax or 1.0
    scaled = np.clip(np.nan_to_num(values / (top or 1.0)), 0.0, 1.0)[..., None]
    rgb = _LOW + (_HIGH - _LOW) * scaled
    rgb[np.isnan(values)] = NAN_RGB
    return rgb.round().astype(np.uint8)


def png_info(provenance: Provenance | None, title: str = "") -> PngInfo:
    """PNG text chunks: Software, Title and the provenance as JSON under ``Comment``."""
    info = PngInfo()
    info.add_text("Software", f"{APP_NAME} {VERSION}")
    if title:
        info.add_itxt("Title", title)
    if provenance is not None:
        info.add_itxt("Comment", json.dumps(provenance.as_dict(), ensure_ascii=False))
    return info


def attention_png(
    matrix: np.ndarray,
    query_labels: Sequence[str],
    key_labels: Sequence[str] | None = None,
    *,
    title: str = "",
    palette: Palette = "blue",
    provenance: Provenance | None = None,
) -> bytes:
    """A PNG heatmap of `matrix` `[q, k]` with token labels when cells are large enough.

    `palette` as in `colorize`; `provenance` is stored in the PNG's text chunks (`png_info`).
    """
    key_labels = list(query_labels if key_labels is None else key_labels)
    q, k = matrix.shape
    if len(query_labels) != q or len(key_labels) != k:
        raise ValueError("Label counts must match the matrix shape.")
    background, ink = ("black", "white") if palette == "cs50" else ("white", "black")
    cell = max(1, min(32, _MAX_IMAGE_SIDE // max(q, k)))
    show_labels = cell >= 8
    font = ImageFont.load_default(size=max(8, min(14, cell - 2)))
    margin = _label_margin(font, [*query_labels, *key_labels]) if show_labels else 0
    top = 24 if title else 4
    image = Image.new("RGB", (margin + k * cell + 4, top + margin + q * cell + 4), background)
    cells = Image.fromarray(colorize(matrix, palette=palette))
    image.paste(cells.resize((k * cell, q * cell), Image.NEAREST), (margin, top + margin))
    draw = ImageDraw.Draw(image)
    if title:
        draw.text((4, 4), title, fill=ink, font=ImageFont.load_default(size=14))
    if show_labels:
        for i, label in enumerate(query_labels):
            draw.text((margin - 4, top + margin + i * cell + cell / 2), label, ink, font, "rm")
        column = Image.new("RGB", (margin, k * cell), background)
        column_draw = ImageDraw.Draw(column)
        for j, label in enumerate(key_labels):
            column_draw.text((margin - 4, j * cell + cell / 2), label, ink, font, "rm")
        image.paste(column.rotate(90, expand=True), (margin, top))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True, pnginfo=png_info(provenance, title))
    return buffer.getvalue()


def _label_margin(font: ImageFont.FreeTypeFont, labels: Sequence[str]) -> int:
    widest = max((font.getlength(label) for label in labels), default=0)
    return int(min(widest, 160)) + 8


def gallery_file_name(layer: int, head: int, *, layers: int = 100, heads: int = 100) -> str:
    """``attention_L03_H07.png``: 0-based, zero-padded to the widest index so names sort."""
    lw, hw = len(str(max(0, layers - 1))), len(str(max(0, heads - 1)))
    return f"attention_L{layer:0{lw}d}_H{head:0{hw}d}.png"


def gallery_zip(
    attentions: np.ndarray,
    labels: Sequence[str],
    *,
    model_name: str = "",
    palette: Palette = "blue",
    provenance: Provenance | None = None,
) -> bytes:
    """A ZIP of one PNG per head (`gallery_file_name`: ``attention_L0_H0.png`` …, 0-based).

    `attentions` is `[layers, heads, n, n]`. `labels` are drawn as given: pass
    ``core.tokens.token_labels(tokens, "raw")`` for the tokenizer's raw pieces (``Ġsat``,
    ``##ding``), ``"marked"`` for readable text with word-piece markers. `palette`:
    ``"blue"`` (each head to its own maximum) or ``"cs50"`` (the exercise's absolute grey).
    With `provenance`, each PNG carries it (with its own layer and head) and the ZIP holds a
    ``provenance.json``.
    """
    if palette not in PALETTES:
        raise ValueError(f"palette must be one of {PALETTES}, got {palette!r}")
    n_layers, n_heads = attentions.shape[:2]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for layer in range(n_layers):
            for head in range(n_heads):
                title = f"{model_name} layer {layer} head {head}".strip()
                head_provenance = None
                if provenance is not None:
                    head_provenance = dataclasses.replace(provenance, layer=layer, head=head)
                png = attention_png(
                    attentions[layer, head],
                    labels,
                    title=title,
                    palette=palette,
                    provenance=head_provenance,
                )
                name = gallery_file_name(layer, head, layers=n_layers, heads=n_heads)
                archive.writestr(name, png)
        if provenance is not None:
            about = {**provenance.as_dict(), "palette": palette, "layer": None, "head": None}
            archive.writestr("provenance.json", json.dumps(about, ensure_ascii=False, indent=1))
    return buffer.getvalue()
