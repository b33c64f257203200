"""The Masked prediction page in the real app (AppTest)."""

import numpy as np

from tests.pages.conftest import assert_clean, on_page, table_with


def test_masked_page_without_mlm_head_says_so_and_offers_presets():
    at = on_page("pages/masked.py", text="The [MASK] sat on the mat.")
    # One line, not a warning; the presets as buttons.
    assert any("no masked-word head" in i.value for i in at.info) and not at.warning
    assert any("bert-base-uncased" in b.label for b in at.button)
    # The mask's attention profile is still drawn; the gallery grid (the overview's) is not,
    # and the predictions slider, which would do nothing, is hidden.
    assert len(at.get("vega_lite_chart")) == 1
    assert not at.slider


def test_masked_page_predicts_each_mask(tiny_model_path):
    at = on_page(
        "pages/masked.py",
        model=tiny_model_path("bert"),
        text="the [MASK] sat on the [MASK] .",
    )
    assert not at.error
    charts = at.get("vega_lite_chart")
    # Two masks: a prediction chart and an attention profile each, then the gallery.
    assert len(charts) == 5
    predictions = table_with(at, 0, {"rank", "p"})
    assert predictions.num_rows == 5
    scores = predictions["p"].to_numpy()
    assert (np.diff(scores) <= 0).all() and 0 < scores[0] <= 1
    at.slider[0].set_value(3).run()
    assert table_with(at, 0, {"rank", "p"}).num_rows == 3


def test_masked_page_masks_a_picked_word(tiny_model_path):
    at = on_page("pages/masked.py", model=tiny_model_path("roberta"), text="the cat sat")
    assert any("no [MASK]" in i.value for i in at.info)
    at.selectbox(key="w_mask").set_value(2).run()
    assert_clean(at)
    assert table_with(at, 0, {"rank", "p"}).num_rows == 5


def test_gallery_zip_is_numbered_from_zero_with_provenance(tiny_model_path):
    import io
    import json
    import zipfile

    import core
    from ui import cache
    from ui.cache import Inputs

    inputs = Inputs(str(tiny_model_path("bert")), "the cat sat")
    prov = core.Provenance(model=inputs.model, text=inputs.text)
    archive = zipfile.ZipFile(io.BytesIO(cache.gallery(inputs, "cs50", True, prov)))
    names = archive.namelist()
    result = cache.attention(inputs)
    assert "attention_L0_H0.png" in names or "attention_L00_H00.png" in names
    assert not any("Layer1" in name for name in names)
    assert len([n for n in names if n.endswith(".png")]) == result.num_layers * result.num_heads
    assert json.loads(archive.read("provenance.json"))["text"] == "the cat sat"


def test_masked_page_gallery_caption_counts_from_zero(tiny_model_path):
    at = on_page("pages/masked.py", model=tiny_model_path("bert"), text="the [MASK] sat .")
    assert_clean(at)
    captions = " ".join(c.value for c in at.caption)
    assert "attention_L0_H0.png" in captions and "Layer1" not in captions
    assert [r.label for r in at.radio] == ["PNG colours"]


def test_a_long_inputs_mask_profile_fills_the_column():
    # At 128 tokens the profile was 330 px wide whatever the window; 13 tokens keep 22 px a key.
    from tests.e2e.harness import long_text
    from tests.pages.conftest import chart_specs

    at = on_page("pages/masked.py", text=long_text(128, mask=True))
    spec = chart_specs(at)[0]
    assert spec["width"] == "container"
    # Every key exact: 128 keys on the axis, not 64 blocks of two.
    assert len(spec["layer"][0]["encoding"]["x"]["scale"]["domain"]) == 128
    assert not [c for c in at.caption if "blocks" in c.value]
    at = on_page("pages/masked.py", text="The cat sat on the [MASK].")
    assert isinstance(chart_specs(at)[0]["width"], int)


def test_the_mask_profile_marks_word_pieces(tiny_model_path):
    from tests.pages.conftest import chart_specs

    at = on_page(
        "pages/masked.py", model=tiny_model_path("bert"), text="The embeddings were [MASK]."
    )
    profile = chart_specs(at)[1]
    labels = next(p["value"] for p in profile["params"] if p["name"].startswith("tok_"))
    assert "##bed" in labels
