import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

import core
from core.export import Provenance
from core.images import (
    CS50_NAN_RGB,
    attention_png,
    colorize,
    cs50_grey,
    gallery_file_name,
    gallery_zip,
)
from core.tokens import token_labels


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


def test_gallery_has_one_png_per_head_numbered_from_zero_like_the_ui():
    attentions = np.random.default_rng(1).dirichlet(np.ones(4), size=(2, 3, 4))
    archive = zipfile.ZipFile(io.BytesIO(gallery_zip(attentions, ["[CLS]", "a", "b", "[SEP]"])))
    names = sorted(archive.namelist())
    assert names == [f"attention_L{layer}_H{head}.png" for layer in range(2) for head in range(3)]
    assert archive.read(names[0])[:8] == b"\x89PNG\r\n\x1a\n"
    # The first file is layer 0, head 0: its cells are that head's weights.
    first = np.asarray(Image.open(io.BytesIO(archive.read("attention_L0_H0.png"))))
    assert first.shape[2] == 3


def test_gallery_names_sort_in_model_order_past_ten():
    assert gallery_file_name(3, 7, layers=12, heads=12) == "attention_L03_H07.png"
    assert gallery_file_name(11, 0, layers=12, heads=12) == "attention_L11_H00.png"
    names = [gallery_file_name(layer, 0, layers=12, heads=1) for layer in range(12)]
    assert sorted(names) == names


def test_cs50_grey_is_absolute_and_rounds_like_the_exercise():
    weights = np.array([0.0, 0.25, 0.5, 1.0, 1.7, -0.1, np.nan])
    assert cs50_grey(weights).tolist() == [0, 64, 128, 255, 255, 0, 0]
    # Absolute: a head whose strongest weight is 0.1 stays dark, not rescaled to white.
    colours = colorize(np.array([[0.1, 0.0], [0.05, np.nan]]), palette="cs50")
    assert tuple(colours[0, 0]) == (26, 26, 26)
    assert tuple(colours[1, 1]) == CS50_NAN_RGB
    assert tuple(colorize(np.array([[0.1]]))[0, 0]) == (8, 48, 107)  # blue: own maximum
    with pytest.raises(ValueError, match="palette"):
        colorize(np.eye(2), palette="rainbow")  # type: ignore[arg-type]


def test_cs50_gallery_png_cells_are_the_grey_of_each_weight():
    matrix = np.array([[1.0, 0.0], [0.25, 0.75]])
    png = attention_png(matrix, ["a", "b"], palette="cs50")
    pixels = np.asarray(Image.open(io.BytesIO(png)))
    assert tuple(pixels[0, 0]) == (0, 0, 0)  # the background is black, as in CS50
    greys = {int(v) for v in np.unique(pixels[..., 0])}
    assert {0, 64, 191, 255} <= greys


def test_exports_carry_provenance_in_each_png_and_the_zip():
    provenance = Provenance(model="tiny/bert", text="a b", method="raw", hide_special=True)
    attentions = np.random.default_rng(3).dirichlet(np.ones(3), size=(2, 2, 3))
    archive = zipfile.ZipFile(
        io.BytesIO(gallery_zip(attentions, ["x", "y", "z"], palette="cs50", provenance=provenance))
    )
    about = json.loads(archive.read("provenance.json"))
    assert about["model"] == "tiny/bert" and about["palette"] == "cs50"
    assert about["app_version"] == core.__version__
    image = Image.open(io.BytesIO(archive.read("attention_L1_H0.png")))
    stored = json.loads(image.text["Comment"])
    assert (stored["layer"], stored["head"], stored["hide_special"]) == (1, 0, True)
    assert image.text["Software"] == f"Attention Atlas {core.__version__}"
    assert "layer 1 head 0" in image.text["Title"]


def test_gallery_draws_raw_piece_labels_when_given(loaded_tiny):
    result = core.run_attention(loaded_tiny("gpt2"), "the cat sat")
    raw = token_labels(result.tokens, "raw")
    clean = token_labels(result.tokens, "clean")
    assert raw != clean
    with_raw = gallery_zip(result.attentions[:1, :1], raw)
    with_clean = gallery_zip(result.attentions[:1, :1], clean)
    name = "attention_L0_H0.png"
    raw_png = zipfile.ZipFile(io.BytesIO(with_raw)).read(name)
    clean_png = zipfile.ZipFile(io.BytesIO(with_clean)).read(name)
    assert raw_png != clean_png  # the label text differs, the cells do not


def test_label_count_mismatch():
    with pytest.raises(ValueError):
        attention_png(np.ones((2, 2)), ["a"])
