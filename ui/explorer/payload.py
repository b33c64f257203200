"""What the explorer ships to the browser: one layer's matrices, compact, and how to colour them.

Pure and Streamlit-free, so it is tested without a browser. The component
(:mod:`ui.explorer.component`) sends :func:`pack` of :func:`build_payload`.

Every matrix of the layer travels at once (each head, then the page's mean of heads), so a head
or token change, hover and the legend's options repaint in the browser with no server run.

Encoding (``codes``, ``scales``, ``exact``): every matrix as 8-bit codes on a scale per row,
``[matrices, rows, columns]`` uint8 in C order with float32 ``[matrices, rows]`` scales (the
row's largest magnitude): a weight is ``code / 254 * scale`` (signed scores: ``(code / 127 - 1)
* scale``), 254 steps of its row's maximum, finer than the 256 colours a palette has; code 255
is a cell the model never computed (a causal model's later keys, keys outside a sliding window,
rows a stopped method left out), drawn empty and hatched, never as a zero. 1 byte a cell:
0.21 MB for 12 heads and their mean at 128 tokens, 3.4 MB at 512. The matrix shown first also
travels as float16 (``exact``: relative error below 2^-11, about 3 significant digits), so the
hover reads its value itself; another head's hover says its 8-bit step until the run that
follows the keys (`ui.explorer.component`) brings that head's float16.

The component sends all of it as one binary message (:func:`pack`: a JSON header and the
arrays), with no base64 and no JSON string of megabytes to parse. A page that builds with
``heads_later`` gets the codes encoded later in its run (:class:`LayerCodes`): a layer change
sends the shown matrix's float16 first (0.53 MB at 512 tokens) and every matrix's codes after
the page's other views (3.4 MB), so the explorer paints before they travel.

A self-attention longer than `MAX_TOKENS` (:func:`build_long_payload`) travels as one head's
pooled overview (float16 blocks between edges), the selected token's exact row, and the exact
tiles the browser asks for as it zooms (:func:`add_tiles`, :func:`checked_tiles`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.errors import InvalidAttentionError, InvalidSelectionError
from ui.payload_checks import one_layer, optional_index, segment_start, token_labels

PAYLOAD_VERSION = 2
EMPTY_CODE = 255
"""8-bit code of a cell never computed."""
STEPS = 254
"""Codes 0–254: an unsigned weight is ``code / STEPS`` of its row's scale."""
MAGIC = b"ATX2"
MAX_TOKENS = 512
"""Longest side the explorer takes whole; longer inputs go to the long-input path
(`ui.matrix.show_matrix`) until pooled overviews and exact tiles are requested as you move."""
SCALES = ("shared", "chart", "fixed")
"""Colour scales: shared across the model's heads and layers, this matrix's own maximum, 0–1."""
MEAN = "mean"


def build_payload(
    heads: Any,
    row_labels: Sequence[str],
    column_labels: Sequence[str] | None = None,
    *,
    mean: Any = None,
    head: int | str = MEAN,
    selected: int | None = None,
    layer: int = 0,
    layers: int = 1,
    empty: Any = None,
    scale: str = "chart",
    shared_max: float | None = None,
    segment_b_start: int | None = None,
    title: str = "",
    value_label: str = "attention",
    log: bool = False,
    drop_first: bool = False,
    heads_later: bool = False,
) -> dict[str, Any]:
    """The browser's data for one layer.

    `heads` is ``[h, q, k]`` (a method without heads passes its one matrix as ``[1, q, k]``);
    `mean` ``[q, k]`` is the page's "mean of heads" matrix, shipped after the heads (None: no
    mean choice). Rows are `row_labels`; columns `column_labels` (cross attention) or the rows'
    labels again. `head` is the matrix shown first: a head's index or ``"mean"``. `selected`
    is a row (display unit) or None. `layer` of `layers` lets the keyboard ask for the next
    one. `empty` bool ``[q, k]`` marks cells the model never computes (NaN cells are empty
    too). `scale` is the colour scale shown first (`SCALES`; the legend offers the others);
    `shared_max` is the largest magnitude over the model's heads and layers (`model_max`),
    needed by ``"shared"``. `segment_b_start` is the first row of
    a pair's sentence B. `log` and `drop_first` set the legend's "Log" and "Without first
    token" boxes (the sidebar's settings; the browser applies both, and the boxes change them
    there until the sidebar's change). Keys are short on purpose: the dict is sent on every run.

    `heads_later`: the layer's codes are not encoded here; ``"codes"`` and ``"scales"`` are
    None and ``"later"`` holds a :class:`LayerCodes` that the component sends after the shown
    matrix (`ui.explorer.component.explorer`), so a layer change paints from one matrix.
    """
    weights = _validated_heads(heads)
    n_heads, n_rows, n_columns = weights.shape
    matrices = [weights]
    if mean is not None:
        mean_matrix = _as_float(mean, "mean")
        if mean_matrix.shape != (n_rows, n_columns):
            raise InvalidAttentionError(
                f"The mean must be [{n_rows}, {n_columns}] like each head, not "
                f"{list(mean_matrix.shape)}."
            )
        matrices.append(mean_matrix[None])
    stacked = np.concatenate(matrices, axis=0)
    if max(n_rows, n_columns) > MAX_TOKENS:
        raise InvalidSelectionError(
            f"The explorer takes at most {MAX_TOKENS} tokens a side, not {max(n_rows, n_columns)}."
        )
    rows = token_labels(row_labels, n_rows, "row_labels", "rows")
    cross = column_labels is not None
    columns = token_labels(column_labels, n_columns, "column_labels", "columns") if cross else rows
    if not cross and n_rows != n_columns:
        raise InvalidAttentionError(
            f"Self attention must be square, but it has {n_rows} rows and {n_columns} columns: "
            "pass column_labels for cross attention."
        )
    names = [str(h) for h in range(n_heads)] + ([MEAN] if mean is not None else [])
    shown = _validated_head(head, n_heads, mean is not None)
    if empty is not None:
        mask = np.asarray(empty, dtype=bool)
        if mask.shape != (n_rows, n_columns):
            raise InvalidSelectionError(
                f"The empty mask must be [{n_rows}, {n_columns}], not {list(mask.shape)}."
            )
        stacked = np.where(mask[None], np.nan, stacked)
    if scale not in SCALES:
        raise InvalidSelectionError(f"scale must be one of {', '.join(SCALES)}, not {scale!r}.")
    # fmin skips NaN (never computed) without copying the finite values out.
    signed = bool(np.fmin.reduce(stacked, axis=None) < 0)
    shared = _shared(scale, shared_max)
    layers = _validated_count(layers, "layers")
    return {
        "v": PAYLOAD_VERSION,
        "rows": rows,
        "cols": columns if cross else None,
        "names": names,
        "head": shown,
        "sel": optional_index(selected, n_rows, "selected token"),
        "layer": optional_index(layer, layers, "layer"),
        "layers": layers,
        "shape": [len(names), n_rows, n_columns],
        **(
            {"codes": None, "scales": None, "later": LayerCodes(stacked, signed)}
            if heads_later
            else encode_codes(stacked, signed)
        ),
        "exact": encode_values(stacked[shown]),
        "exactOf": shown,
        "scale": scale,
        "shared": shared,
        "signed": signed,
        "segB": None if cross else segment_start(segment_b_start, n_rows),
        "title": str(title),
        "what": str(value_label),
        "log": bool(log),
        "dropFirst": bool(drop_first),
    }


@dataclasses.dataclass(frozen=True, eq=False)
class LayerCodes:
    """Every matrix of a layer (``[matrices, rows, columns]`` float32, NaN: never computed),
    held for one run until the component sends their codes after the shown matrix."""

    values: np.ndarray
    signed: bool

    def key(self) -> str:
        """Digest of the values (7 ms at 512 tokens; encoding them takes ≈ 80 ms)."""
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(np.ascontiguousarray(self.values).data)
        digest.update(b"signed" if self.signed else b"unsigned")
        return digest.hexdigest()[:16]

    def encode(self) -> dict[str, bytes]:
        """``codes`` and ``scales`` (:func:`encode_codes`)."""
        return encode_codes(self.values, self.signed)


def encode_values(values: np.ndarray) -> bytes:
    """`values` as little-endian float16 bytes (NaN stays NaN; beyond ±65504 is clipped, so a
    huge score is drawn at the top of the scale instead of as infinity)."""
    return np.clip(values, -65504.0, 65504.0).astype("<f2").tobytes()


def decode_values(data: bytes, shape: Sequence[int]) -> np.ndarray:
    """The inverse of :func:`encode_values`, as float32 `shape` (what the browser reads)."""
    return np.frombuffer(data, dtype="<f2").astype(np.float32).reshape(tuple(shape))


def encode_codes(values: np.ndarray, signed: bool) -> dict[str, bytes]:
    """``codes`` (uint8, `values`' shape) and ``scales`` (little-endian float32, one per row
    of the last axis) of `values` ``[..., columns]``; see the module's encoding."""
    with np.errstate(invalid="ignore"):  # an all-NaN row has no scale (0); NaN cells: empty
        # Per-row reductions instead of abs() and a mask of every cell (two 3.4 M-cell copies
        # a layer at 512 tokens): max propagates NaN, so a non-finite row max finds the rows
        # with empty cells, and only those are masked cell by cell.
        top = np.max(values, axis=-1)
        bottom = np.min(values, axis=-1) if signed else None
        gaps = ~np.isfinite(top) if bottom is None else ~np.isfinite(top + bottom)
        if gaps.any():
            top[gaps] = np.fmax.reduce(values[gaps], axis=-1)
            if bottom is not None:
                bottom[gaps] = np.fmin.reduce(values[gaps], axis=-1)
        magnitude = np.abs(top) if bottom is None else np.fmax(np.abs(top), np.abs(bottom))
        scales = np.nan_to_num(magnitude, nan=0.0).astype(np.float32)
        safe = np.where(scales > 0, scales, 1.0)[..., None]
        # In place on one temporary: 3.4 M cells a layer at 512 tokens.
        unit = values / safe
        steps = np.add(unit, 1, out=unit) if signed else unit
        codes = np.multiply(steps, STEPS // 2 if signed else STEPS, out=unit)
        np.clip(np.rint(codes, out=codes), 0, STEPS, out=codes)
        encoded = codes.astype(np.uint8)
    if gaps.any():
        encoded[gaps] = np.where(np.isfinite(values[gaps]), encoded[gaps], EMPTY_CODE)
    return {"codes": encoded.tobytes(), "scales": scales.astype("<f4").tobytes()}


def decode_codes(payload: dict[str, Any]) -> np.ndarray:
    """float32 ``payload["shape"]``: every matrix as the browser decodes its 8-bit codes (NaN:
    never computed); the inverse of :func:`encode_codes`, to within half a step of each row's
    scale."""
    shape = tuple(payload["shape"])
    codes = np.frombuffer(payload["codes"], dtype=np.uint8).reshape(shape).astype(np.float32)
    scales = np.frombuffer(payload["scales"], dtype="<f4").reshape(shape[:-1])[..., None]
    unit = codes / (STEPS // 2) - 1 if payload["signed"] else codes / STEPS
    values = unit * scales
    return np.where(codes == EMPTY_CODE, np.nan, values).astype(np.float32)


def pack(payload: dict[str, Any]) -> bytes:
    """One binary message of `payload`: ``MAGIC``, the header's length (uint32, little-endian),
    the header (compact UTF-8 JSON of the fields that are not bytes, plus ``"$blobs"``: each
    bytes field's ``[offset, length]`` after the header) and the bytes fields, each starting
    on a multiple of 8 so the browser views them as typed arrays in place."""
    header: dict[str, Any] = {}
    blobs: dict[str, list[int]] = {}
    parts: list[bytes] = []
    offset = 0
    for name, value in payload.items():
        if isinstance(value, bytes):
            blobs[name] = [offset, len(value)]
            padding = -len(value) % 8
            parts.append(value + b"\0" * padding)
            offset += len(value) + padding
        else:
            header[name] = value
    header["$blobs"] = blobs
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    encoded = text.encode("utf-8")
    encoded += b" " * (-(len(MAGIC) + 4 + len(encoded)) % 8)
    return b"".join([MAGIC, struct.pack("<I", len(encoded)), encoded, *parts])


def unpack(message: bytes) -> dict[str, Any]:
    """The inverse of :func:`pack` (what the browser reads)."""
    if message[: len(MAGIC)] != MAGIC:
        raise InvalidSelectionError("Not an explorer message.")
    (length,) = struct.unpack_from("<I", message, len(MAGIC))
    start = len(MAGIC) + 4
    payload = json.loads(message[start : start + length].decode("utf-8"))
    base = start + length
    for name, (offset, size) in payload.pop("$blobs").items():
        payload[name] = bytes(message[base + offset : base + offset + size])
    return payload


def model_max(per_head: np.ndarray | None, per_layer: np.ndarray) -> float:
    """Largest finite magnitude over every head and layer of a method's scores, for the shared
    scale (`per_head` ``[l, h, q, k]`` when the method has heads, else `per_layer` ``[l, q,
    k]``; rows not computed are NaN and left out). 1.0 when nothing is positive."""
    values = per_head if per_head is not None else per_layer
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN array is "nothing"
        # max and -min rather than abs(): no copy of a 512-token model's 38 M scores.
        top = max(float(np.nanmax(values)), -float(np.nanmin(values)))
    return top if np.isfinite(top) and top > 0 else 1.0


def outside_window(groups: Sequence[Sequence[int]], window: int, *, causal: bool) -> np.ndarray:
    """bool ``[m, m]``: display cells a sliding-window layer never computes.

    Query i sees keys j with ``0 <= i - j < window`` (causal; ``|i - j| < window`` otherwise).
    `groups` are the input positions of each display unit (merged words, hidden tokens): a
    cell is outside when no pair of its row's and column's positions is inside.
    """
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
        raise InvalidSelectionError(f"A sliding window must be at least 1 token, not {window!r}.")
    first = np.array([min(g) for g in groups], dtype=np.int64)
    last = np.array([max(g) for g in groups], dtype=np.int64)
    # The smallest and largest distance i - j over the cell's pairs of positions.
    nearest = first[:, None] - last[None, :]
    farthest = last[:, None] - first[None, :]
    low = 0 if causal else 1 - window
    return (farthest < low) | (nearest > window - 1)


def _shared(scale: str, shared_max: float | None) -> float | None:
    """The shared scale's top (None when not given; then the shared scale is not offered)."""
    if shared_max is None:
        if scale == "shared":
            raise InvalidSelectionError("The shared scale needs a positive shared_max.")
        return None
    top = float(shared_max)
    if not np.isfinite(top) or top <= 0:
        raise InvalidSelectionError(f"shared_max must be a positive number, not {shared_max!r}.")
    return top


def _as_float(values: Any, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise InvalidAttentionError(f"The {name} must be an array of numbers.") from error
    if np.isinf(array).any():
        raise InvalidAttentionError(f"The {name} holds infinite values.")
    return array


def _validated_heads(heads: Any) -> np.ndarray:
    weights = one_layer(heads, "The explorer")
    if np.isinf(weights).any():
        raise InvalidAttentionError("The attention holds infinite values.")
    return weights


def _validated_count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise InvalidSelectionError(f"{what} must be a whole number of at least 1, not {value!r}.")
    return int(value)


def _validated_head(head: int | str, n_heads: int, has_mean: bool) -> int:
    """The shipped matrix index of `head`: a head's own index, or the mean's (after the heads).

    "all" (the line view's every head) shows the mean here, as the heatmap did."""
    if isinstance(head, str):
        if head in (MEAN, "all"):
            return n_heads if has_mean else 0
        raise InvalidSelectionError(f"The head must be a number, 'mean' or 'all', not {head!r}.")
    if n_heads == 1 and not has_mean:
        return 0  # a method without heads: its one matrix, whatever head the view names
    index = optional_index(head, n_heads, "head")
    return 0 if index is None else index


def build_long_payload(
    overview: Any,
    row_edges: Any,
    col_edges: Any,
    row_labels: Sequence[str],
    *,
    reduce: str,
    n_heads: int,
    head: int | str = MEAN,
    selected: int | None = None,
    selected_row: Any = None,
    layer: int = 0,
    layers: int = 1,
    scale: str = "fixed",
    tile_size: int = 64,
    title: str = "",
    log: bool = False,
) -> dict[str, Any]:
    """The browser's data for one head of a self-attention longer than `MAX_TOKENS`.

    `overview` float32 ``[row blocks, col blocks]`` is the head pooled into blocks (NaN: no
    computed weight), block `b` of rows being ``row_edges[b]:row_edges[b + 1]`` (so
    ``row_edges[-1]`` is the length); `reduce` says how (``"mean"`` or ``"max"``). Exact
    weights come as tiles of `tile_size` × `tile_size` tokens the browser asks for as it zooms
    (:func:`add_tiles`). `selected_row` float32 ``[n]`` is the selected token's exact row (its
    bars). The head chips ask the server: ``names`` lists the `n_heads` heads and the mean,
    ``head`` the one shown. Scales: ``"fixed"`` (0–1) or ``"chart"`` (the overview's maximum:
    the matrix's own with max pooling); a long input has no shared maximum. `log` sets the
    legend's "Log" box (the sidebar's setting); "Without first token" is off at length (a
    pooled block cannot be renormalised row by row).
    """
    grid = _as_float(overview, "overview")
    rows_at = np.asarray(row_edges, dtype=np.int64)
    cols_at = np.asarray(col_edges, dtype=np.int64)
    if grid.ndim != 2 or grid.shape != (len(rows_at) - 1, len(cols_at) - 1):
        raise InvalidAttentionError(
            f"The overview must be [row blocks, col blocks] between its edges, not "
            f"{list(grid.shape)} with {len(rows_at)} and {len(cols_at)} edges."
        )
    n = int(rows_at[-1])
    if int(cols_at[-1]) != n or rows_at[0] != 0 or cols_at[0] != 0:
        raise InvalidAttentionError("The overview's edges must run from 0 to the length.")
    rows = token_labels(row_labels, n, "row_labels", "rows")
    if reduce not in ("mean", "max"):
        raise InvalidSelectionError(f"Pool by 'mean' or 'max', not {reduce!r}.")
    if scale not in ("fixed", "chart"):
        raise InvalidSelectionError(f"A long input's scale is 'fixed' or 'chart', not {scale!r}.")
    n_heads = _validated_count(n_heads, "n_heads")
    names = [str(h) for h in range(n_heads)] + [MEAN]
    sel = optional_index(selected, n, "selected token")
    exact_row = None
    if selected_row is not None:
        exact_row = _as_float(selected_row, "selected row")
        if exact_row.shape != (n,):
            raise InvalidAttentionError(f"The selected row must have {n} weights.")
    return {
        "v": PAYLOAD_VERSION,
        "rows": rows,
        "cols": None,
        "names": names,
        "head": _validated_head(head, n_heads, True),
        "sel": sel,
        "layer": optional_index(layer, _validated_count(layers, "layers"), "layer"),
        "layers": int(layers),
        "shape": [len(names), n, n],
        "scale": scale,
        "shared": None,
        "signed": False,
        "segB": None,
        "log": bool(log),
        "title": str(title),
        "what": f"attention ({reduce} pooled where not exact)",
        "long": {
            "rowEdges": rows_at.tolist(),
            "colEdges": cols_at.tolist(),
            "reduce": reduce,
            "tile": _validated_count(tile_size, "tile_size"),
        },
        "overview": encode_values(grid),
        "row": None if exact_row is None else encode_values(exact_row),
        "rowOf": sel if exact_row is not None else None,
        "tiles": [],
    }


def add_tiles(payload: dict[str, Any], tiles: Sequence[tuple[int, int, np.ndarray]]) -> None:
    """Put exact tiles in a long payload: each ``(first row, first column, float32 [h, w])``,
    listed in ``payload["tiles"]`` as ``[row, col, h, w]`` and their float16 concatenated in
    order in ``payload["tileData"]``."""
    listed, parts = [], []
    for row, col, values in tiles:
        matrix = _as_float(values, "tile")
        if matrix.ndim != 2:
            raise InvalidAttentionError("A tile is [rows, columns].")
        listed.append([int(row), int(col), *map(int, matrix.shape)])
        parts.append(encode_values(matrix))
    payload["tiles"] = listed
    payload["tileData"] = b"".join(parts) if parts else None


def checked_tiles(request: Any, n: int, size: int, limit: int = 64) -> list[tuple[int, int]]:
    """The tile origins a browser asked for (``[[row, col], ...]``, multiples of `size` below
    `n`), nonsense dropped, at most `limit`."""
    if not isinstance(request, list):
        return []
    origins: list[tuple[int, int]] = []
    for item in request[: 4 * limit]:
        if not (isinstance(item, list) and len(item) == 2):
            continue
        row, col = item
        if (
            all(
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v < n and v % size == 0
                for v in (row, col)
            )
            and (row, col) not in origins
        ):
            origins.append((row, col))
    return origins[:limit]


# ---------------------------------------------------------------------- compare
COMPARE_LINKS = ("words", "characters")
"""How a compare payload's panels find each other's rows: the replacement's word units, or
two tokenizations' characters (`core.compare_view`)."""


def link_panel(
    payload: dict[str, Any],
    row_units: Sequence[int],
    unit_rows: Sequence[int],
    *,
    notes: Sequence[str] = (),
    scale_names: dict[str, str] | None = None,
) -> dict[str, Any]:
    """`payload` (:func:`build_payload`) as one panel of a compare payload: its rows' link
    units (``rowUnit``, -1: none) and each unit's row (``unitRow``), the legend's extra
    `notes` (pooling, what the difference is of) and `scale_names` naming a scale otherwise
    than the explorer's words (the difference's "shared" is the layer's heads)."""
    n_rows = payload["shape"][1]
    if len(row_units) != n_rows:
        raise InvalidSelectionError(f"row_units must give each of the {n_rows} rows its unit.")
    if any(not -1 <= int(r) < n_rows for r in unit_rows):
        raise InvalidSelectionError("unit_rows must name rows of the panel (or -1).")
    if payload["cols"] is not None:
        raise InvalidSelectionError("A compare panel is self attention (square).")
    return {
        **payload,
        "rowUnit": [int(u) for u in row_units],
        "unitRow": [int(r) for r in unit_rows],
        "notes": [str(note) for note in notes],
        "scaleNames": dict(scale_names or {}),
    }


def build_compare_payload(
    panels: Sequence[dict[str, Any]], *, link: str, units: int, caption: str = ""
) -> dict[str, Any]:
    """The browser's data for matrices drawn together (Before, After, Difference; or two
    models) sharing one view: zoom, pan, hover and the selected row move them all, mapped
    through the link units (`link` one of `COMPARE_LINKS`, `units` of them). Each panel is
    :func:`link_panel`'s, with the same head names (the head chips drive every panel)."""
    if link not in COMPARE_LINKS:
        raise InvalidSelectionError(f"link must be one of {', '.join(COMPARE_LINKS)}.")
    if not 2 <= len(panels) <= 4:
        raise InvalidSelectionError("A compare payload draws 2 to 4 matrices.")
    names = panels[0]["names"]
    if any(p["names"] != names for p in panels) or any("rowUnit" not in p for p in panels):
        raise InvalidSelectionError("Compare panels need the same heads and their link units.")
    if any(len(p["unitRow"]) != units for p in panels):
        raise InvalidSelectionError(f"Every panel maps each of the {units} link units to a row.")
    return {
        "v": PAYLOAD_VERSION,
        "compare": {"link": link, "units": int(units), "caption": str(caption)},
        "panels": [dict(p) for p in panels],
    }


def pack_compare(payload: dict[str, Any]) -> bytes:
    """:func:`pack` of a compare payload: each panel's bytes fields travel as top-level
    blobs named ``"<panel>:<field>"`` (the panel keeps the field, as ``"$blob"``)."""
    flat: dict[str, Any] = {name: value for name, value in payload.items() if name != "panels"}
    headers = []
    for index, panel in enumerate(payload["panels"]):
        header = {}
        for name, value in panel.items():
            if isinstance(value, bytes):
                flat[f"{index}:{name}"] = value
                header[name] = "$blob"
            else:
                header[name] = value
        headers.append(header)
    flat["panels"] = headers
    return pack(flat)


def unpack_compare(message: bytes) -> dict[str, Any]:
    """The inverse of :func:`pack_compare` (what the browser reads)."""
    flat = unpack(message)
    panels = flat.pop("panels")
    for index, panel in enumerate(panels):
        for name, value in panel.items():
            if value == "$blob":
                panel[name] = flat.pop(f"{index}:{name}")
    flat["panels"] = panels
    return flat
