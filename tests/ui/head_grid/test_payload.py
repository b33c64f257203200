"""The head grid's payload: one atlas image of every head, a measure per head, checks."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from core.charts._raster import VIRIDIS_STOPS
from core.errors import InvalidAttentionError, InvalidSelectionError
from ui.head_grid import MEASURE_STOPS, build_payload, opened_head


def atlas(payload: dict) -> np.ndarray:
    data = base64.b64decode(payload["image"].split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def test_every_head_is_its_block_of_the_atlas_on_one_scale():
    thumbs = np.zeros((2, 3, 4, 4))
    thumbs[1, 2] = 1.0  # layer 1, head 2 at the top of the scale
    thumbs[0, 1, 0, 0] = np.nan  # a cell never computed
    payload = build_payload(thumbs, selected=(1, 2))
    image = atlas(payload)
    assert image.shape == (2 * 4, 3 * 4, 4)
    top = tuple(int(VIRIDIS_STOPS[-1][i : i + 2], 16) for i in (1, 3, 5))
    bottom = tuple(int(VIRIDIS_STOPS[0][i : i + 2], 16) for i in (1, 3, 5))
    assert tuple(image[4, 8, :3]) == top and tuple(image[0, 8, :3]) == bottom
    # Empty, not zero: the NaN cell is transparent, every other one opaque.
    assert image[0, 4, 3] == 0 and (image[..., 3] == 255).sum() == image[..., 3].size - 1
    assert payload["selected"] == [1, 2] and payload["legend"]["high"] == 1.0


def test_each_head_to_its_own_maximum_says_so():
    thumbs = np.stack([np.full((2, 2), 0.1), np.full((2, 2), 0.5)])[None]
    shared, own = build_payload(thumbs), build_payload(thumbs, per_head=True)
    assert not shared["legend"]["perHead"] and own["legend"]["perHead"]
    # Shared: the weaker head is darker; own maximum: both at the top colour.
    assert (atlas(shared)[0, 0] != atlas(shared)[0, 2]).any()
    assert (atlas(own)[0, 0] == atlas(own)[0, 2]).all()


def test_a_measure_is_one_value_and_colour_per_head_with_its_threshold():
    values = np.array([[0.0, 0.3], [0.9, np.nan]])
    payload = build_payload(
        np.random.default_rng(0).random((2, 2, 3, 3)),
        measure=values,
        measure_name="first-token share",
        measure_range=(0.0, 1.0),
        measure_threshold=0.3,
    )
    measure = payload["measure"]
    assert measure["values"] == [0.0, 0.3, 0.9, None]
    assert measure["shares"] == [0.0, 0.3, 0.9, None]
    assert measure["colours"][0] == MEASURE_STOPS[0].lower()
    assert measure["threshold"] == 0.3 and measure["name"] == "first-token share"


def test_bad_input_is_refused_with_a_readable_error():
    with pytest.raises(InvalidAttentionError):
        build_payload(np.zeros((2, 2, 2)))
    with pytest.raises(InvalidSelectionError):
        build_payload(np.zeros((1, 2, 2, 2)), selected=(0, 5))
    with pytest.raises(InvalidSelectionError):
        build_payload(np.zeros((1, 2, 2, 2)), measure=np.zeros((2, 2)))


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ({"layer": 1, "head": 2}, (1, 2)),
        ({"layer": 1, "head": 9}, None),
        ({"layer": True, "head": 0}, None),
        ({"layer": "1", "head": 0}, None),
        (None, None),
    ],
)
def test_only_a_head_inside_the_grid_opens(trigger, expected):
    assert opened_head(trigger, 2, 3) == expected


def test_the_same_thumbnails_are_encoded_once():
    thumbs = np.random.default_rng(3).random((2, 2, 5, 5))
    first, again = build_payload(thumbs), build_payload(thumbs.copy())
    assert first["image"] is again["image"]  # the kept encoding, not a new one
    assert build_payload(thumbs, per_head=True)["image"] != first["image"]
