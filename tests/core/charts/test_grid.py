"""All-heads grid: fits its width with the legend, scale modes, per-head scaling."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from core.charts import head_grid, largest_thumbnail


def image_pixels(url: str) -> np.ndarray:
    png = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)))


def grid_rows(spec):
    return next(v for v in spec["datasets"].values() if v and "url" in v[0])


def legend_channel(spec):
    return next(
        layer["encoding"]["color"]
        for layer in spec["layer"]
        if "color" in layer.get("encoding", {})
    )


@pytest.mark.parametrize("max_width", [360, 640])
def test_grid_with_its_legend_fits_max_width(valid_spec, max_width):
    spec = valid_spec(
        head_grid(np.random.default_rng(0).random((12, 12, 16, 16)), max_width=max_width)
    )
    step = spec["width"]["step"]
    legend = legend_channel(spec)["legend"]
    beside = legend.get("orient") != "bottom"
    # 12 thumbnails, the layer axis (40 px) and, unless it had to go below, the legend.
    assert 12 * step + 40 + (110 if beside else 0) <= max_width
    assert beside == (max_width == 640)


@pytest.mark.parametrize(("heads", "max_width"), [(12, 560), (12, 424), (4, 560), (16, 560)])
def test_the_largest_thumbnail_that_fits_still_fits(valid_spec, heads, max_width):
    # 40 cells a side is what the pages ask for at most; 12 heads of 40 did not fit 560 px.
    cells = largest_thumbnail(heads, max_width)
    grid = np.random.default_rng(2).random((2, heads, cells, cells))
    spec = valid_spec(head_grid(grid, max_width=max_width))
    assert heads * spec["width"]["step"] + 40 <= max_width
    too_large = np.random.default_rng(2).random((2, heads, cells + 1, cells + 1))
    spec = valid_spec(head_grid(too_large, max_width=max_width))
    assert heads * spec["width"]["step"] + 40 > max_width
    assert largest_thumbnail(12, 560) < 40
    with pytest.raises(ValueError):
        largest_thumbnail(0, 560)


@pytest.mark.parametrize(
    ("scale", "shared", "top", "line"),
    [
        ("chart", None, 0.5, "0–0.5 this chart"),
        ("fixed", None, 1.0, "0–1 fixed"),
        ("shared", 0.8, 0.8, "0–0.8 shared"),
    ],
)
def test_grid_scale_modes(valid_spec, scale, shared, top, line):
    thumbs = np.full((1, 2, 2, 2), 0.25)
    thumbs[0, 0, 0, 0] = 0.5
    spec = valid_spec(head_grid(thumbs, scale=scale, shared_max=shared))
    color = legend_channel(spec)
    assert color["scale"]["domain"] == [0.0, top]
    assert color["title"] == ["attention", line]


def test_grid_per_head_scale_brightens_a_weak_head(valid_spec):
    thumbs = np.zeros((1, 2, 2, 2))
    thumbs[0, 0] = [[0.8, 0.0], [0.0, 0.0]]
    thumbs[0, 1] = [[0.08, 0.0], [0.0, 0.0]]  # ten times weaker
    shared = grid_rows(valid_spec(head_grid(thumbs)))
    own = grid_rows(spec := valid_spec(head_grid(thumbs, per_head=True)))
    # On one scale the weak head's top cell is dark; scaled to its own maximum it is as
    # bright as the strong head's.
    weak_shared = image_pixels(shared[1]["url"])[0, 0]
    weak_own, strong_own = image_pixels(own[1]["url"])[0, 0], image_pixels(own[0]["url"])[0, 0]
    assert tuple(weak_own) == tuple(strong_own) != tuple(weak_shared)
    assert legend_channel(spec)["title"] == ["attention", "0–max per head"]


def test_grid_labels_every_layer_and_head_when_thumbnails_leave_room(valid_spec):
    spec = valid_spec(head_grid(np.random.default_rng(1).random((6, 12, 8, 8)), max_width=424))
    images = spec["layer"][0]["encoding"]
    assert spec["width"]["step"] >= 12
    assert images["x"]["axis"]["labelOverlap"] is False
    assert images["y"]["axis"]["labelOverlap"] is False
