"""What the head grid ships to the browser: every head's thumbnail in one image, and a measure.

Pure and Streamlit-free, so it is tested without a browser. The thumbnails travel as one PNG
atlas (layer ``l``'s head ``h`` is the block at rows ``l*r …``, columns ``h*c …``), coloured
here with the sequential palette of every other chart (viridis, `core.charts._raster`), so the
browser only scales blocks up, pixel for pixel, to the width it has. Cells the model never
computed (a causal model's later keys) are transparent: drawn empty, never as zeros.

A measure (one number per head, e.g. the first-token share) is drawn as a bar under each
thumbnail: its length is the value on the measure's scale and its colour repeats it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from core.charts._common import round_sig
from core.charts._raster import VIRIDIS_STOPS, data_url, interpolate, png_bytes
from core.errors import InvalidAttentionError, InvalidSelectionError

PAYLOAD_VERSION = 1
MEASURE_STOPS = ("#56B4E9", "#E69F00", "#D55E00")
"""Okabe-Ito sky blue, orange and vermillion: mid-luminance, so a measure's bar stands out on
light and dark backgrounds alike, and told apart by colour-blind readers."""


def _hex_stops(stops: tuple[str, ...]) -> np.ndarray:
    return np.array([[int(s[i : i + 2], 16) for i in (1, 3, 5)] for s in stops], dtype=np.float64)


ATLAS_CACHE_SIZE = 16
"""Atlas images kept, by content: a rerun of the overview (another measure, the table) shows
the same thumbnails, and encoding 144 heads of 40 × 40 cells takes about 75 ms."""
_atlases: OrderedDict[str, str] = OrderedDict()
_atlases_lock = threading.Lock()


def atlas_url(thumbnails: np.ndarray, vmaxes: np.ndarray) -> str:
    """`atlas_png` as a ``data:`` URL, encoded once per content (`ATLAS_CACHE_SIZE` kept)."""
    digest = hashlib.blake2b(digest_size=16)
    for array in (thumbnails, vmaxes):
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    key = digest.hexdigest()
    with _atlases_lock:
        if key in _atlases:
            _atlases.move_to_end(key)
            return _atlases[key]
    url = data_url(atlas_png(thumbnails, vmaxes))
    with _atlases_lock:
        _atlases[key] = url
        while len(_atlases) > ATLAS_CACHE_SIZE:
            _atlases.popitem(last=False)
    return url


def atlas_png(thumbnails: np.ndarray, vmaxes: np.ndarray) -> bytes:
    """`thumbnails` ``[layers, heads, r, c]`` as one RGBA PNG ``[layers*r, heads*c]``: each head
    on 0..``vmaxes[layer, head]`` in viridis, NaN cells transparent."""
    layers, heads, rows, cols = thumbnails.shape
    scaled = thumbnails / vmaxes[:, :, None, None]
    rgba = np.empty((layers, heads, rows, cols, 4), dtype=np.uint8)
    rgba[..., :3] = interpolate(scaled, _hex_stops(VIRIDIS_STOPS))
    rgba[..., 3] = np.where(np.isnan(thumbnails), 0, 255)
    # [layers, heads, r, c, 4] -> [layers, r, heads, c, 4]: the heads of a layer side by side.
    atlas = rgba.transpose(0, 2, 1, 3, 4).reshape(layers * rows, heads * cols, 4)
    return png_bytes(atlas)


def build_payload(
    thumbnails: Any,
    *,
    vmax: float | None = None,
    per_head: bool = False,
    scale_title: str = "attention",
    selected: tuple[int, int] | None = None,
    measure: Any = None,
    measure_name: str = "",
    measure_range: tuple[float, float] | None = None,
    measure_threshold: float | None = None,
    caption: str = "",
) -> dict[str, Any]:
    """The browser's data for the grid.

    `thumbnails` is ``[layers, heads, r, c]`` (block means, NaN where nothing was computed).
    Colours run from 0 to `vmax` (default: the grid's largest value), or to each head's own
    maximum with `per_head`; `scale_title` names that scale in the legend. `selected`
    ``(layer, head)`` is outlined. `measure` ``[layers, heads]`` (or None) is drawn as a bar
    under each thumbnail on `measure_range` (default 0 to its largest value), named
    `measure_name`; `measure_threshold` (e.g. the sink ε) is marked on its legend.
    """
    try:
        t = np.asarray(thumbnails, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InvalidAttentionError("The thumbnails must be an array of numbers.") from error
    if t.ndim != 4 or 0 in t.shape:
        raise InvalidAttentionError(
            f"The head grid takes thumbnails [layers, heads, rows, columns], got {t.shape}."
        )
    layers, heads = t.shape[:2]
    finite = np.where(np.isfinite(t), t, 0.0)
    if per_head:
        head_max = finite.max(axis=(2, 3))
        vmaxes = np.where(head_max > 0, head_max, 1.0)
        top = 1.0
    else:
        top = float(vmax) if vmax is not None and vmax > 0 else float(finite.max() or 1.0)
        vmaxes = np.full((layers, heads), top)
    if selected is not None:
        layer, head = (int(i) for i in selected)
        if not (0 <= layer < layers and 0 <= head < heads):
            raise InvalidSelectionError(
                f"Head {selected} is outside the grid of {layers} layers × {heads} heads."
            )
        selected = (layer, head)
    return {
        "version": PAYLOAD_VERSION,
        "layers": layers,
        "heads": heads,
        "rows": int(t.shape[2]),
        "cols": int(t.shape[3]),
        "image": atlas_url(t, vmaxes),
        "legend": {
            "title": scale_title,
            "low": 0.0,
            "high": float(round_sig([top], 3)[0]),
            "stops": list(VIRIDIS_STOPS),
            "perHead": bool(per_head),
        },
        "selected": None if selected is None else list(selected),
        "measure": _measure(measure, measure_name, measure_range, measure_threshold, layers, heads),
        "caption": str(caption),
    }


def _measure(
    values: Any,
    name: str,
    value_range: tuple[float, float] | None,
    threshold: float | None,
    layers: int,
    heads: int,
) -> dict[str, Any] | None:
    if values is None:
        return None
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (layers, heads):
        raise InvalidSelectionError(
            f"A head measure needs one value per head, [{layers}, {heads}], got {v.shape}."
        )
    finite = v[np.isfinite(v)]
    if value_range is None:
        low, high = 0.0, float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    else:
        low, high = (float(x) for x in value_range)
    if not high > low:
        raise InvalidSelectionError(f"A measure's range must be increasing, not {value_range}.")
    scaled = (v - low) / (high - low)
    colours = interpolate(scaled, _hex_stops(MEASURE_STOPS))
    rounded = round_sig(v, 3)
    return {
        "name": str(name),
        "low": low,
        "high": float(round_sig([high], 3)[0]),
        "stops": list(MEASURE_STOPS),
        "threshold": None if threshold is None else float(threshold),
        # Flat, layer-major: head (l, h) is entry l * heads + h; None where undefined.
        "values": [None if not np.isfinite(x) else float(x) for x in rounded.ravel()],
        "shares": [None if not np.isfinite(x) else float(np.clip(x, 0, 1)) for x in scaled.ravel()],
        "colours": ["#{:02x}{:02x}{:02x}".format(*c) for c in colours.reshape(-1, 3)],
    }
