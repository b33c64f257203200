"""The Masked prediction page in the real app (AppTest)."""

import numpy as np

from tests.pages.conftest import assert_clean, on_page, table_with


def test_masked_page_without_mlm_head_says_so_and_offers_presets():
    at = on_page("pages/masked.py", text="The [MASK] sat on the mat.")
    assert any("no masked-word head" in w.value for w in at.warning)
    assert any("bert-base-uncased" in b.label for b in at.button)
    # The mask's attention profile and the gallery are still drawn.
    assert len(at.get("vega_lite_chart")) == 2


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
