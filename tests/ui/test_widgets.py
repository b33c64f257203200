"""Small helpers of the widgets module that need no running app."""

import gc
import weakref

import numpy as np

from ui.widgets import file_stem, label_from


def test_file_stems_are_descriptive_and_safe():
    assert (
        file_stem("attention", "bert-base-uncased", "", "raw") == "attention_bert-base-uncased_raw"
    )
    assert file_stem("x", "../../etc/passwd") == "x_..-..-etc-passwd"
    assert file_stem("a b", None) == "a-b"
    assert file_stem("") == "export"


def test_label_from_reads_labels_and_holds_nothing_else():
    labels = {0: "zero", "mean": "mean of heads"}
    format_func = label_from(labels)
    assert format_func(0) == "zero" and format_func("mean") == "mean of heads"
    assert label_from(["a", "b"])(1) == "b"
    # A format_func stays in a kept session's widget metadata: it must not pin arrays.
    array = np.zeros(4)
    ref = weakref.ref(array)
    keep = label_from([str(v) for v in array])
    del array
    gc.collect()
    assert ref() is None and keep(0) == "0.0"
