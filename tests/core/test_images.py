import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from core.images import attention_png, colorize, gallery_zip


def test_colorize_scale_and_nan():
    colours = colorize(np.array([[0.0, 0.5], [1.0, np.nan]]))
    assert tuple(colours[0, 0]) == (255, 255, 255)
    assert tuple(colours[1, 0]) == (8, 48, 107)
    assert tuple(colours[1, 1]) == (235, 235, 235)
    assert colours[0, 0, 0] > colours[0, 1, 0] > colours[1, 0, 0]


def test_png_cells_show_the_weights():
    matrix = np.array([[1.0, 0.0], [0.0, 1.0]])
    image = Image.open(io.BytesIO(attention_png(matrix, ["a", "b"])))
    pixels = np.asarray(image)
    dark = (pixels.sum(-1) < 200).sum()
    assert dark > 0 and image.width > 64


def test_long_input_png_stays_bounded():
    n = 512
    matrix = np.random.default_rng(0).dirichlet(np.ones(n), size=n)
    image = Image.open(io.BytesIO(attention_png(matrix, [f"t{i}" for i in range(n)])))
    assert max(image.size) <= 1400 + 8


def test_gallery_has_one_png_per_head_named_like_cs50():
    attentions = np.random.default_rng(1).dirichlet(np.ones(4), size=(2, 3, 4))
    archive = zipfile.ZipFile(io.BytesIO(gallery_zip(attentions, ["[CLS]", "a", "b", "[SEP]"])))
    names = sorted(archive.namelist())
    assert len(names) == 6
    assert "Attention_Layer2_Head3.png" in names
    assert archive.read(names[0])[:8] == b"\x89PNG\r\n\x1a\n"


def test_label_count_mismatch():
    with pytest.raises(ValueError):
        attention_png(np.ones((2, 2)), ["a"])
