"""`ui.matrix.show_matrix` in a running script (AppTest): the overview of a long matrix."""

from __future__ import annotations

import json

import pyarrow as pa
from streamlit.testing.v1 import AppTest


def _difference_script() -> None:
    import numpy as np

    from ui.matrix import show_matrix

    change = np.zeros((120, 120))
    change[60, 61] = -0.5
    change[10, 100] = 0.3
    labels = [f"t{i}" for i in range(120)]
    show_matrix(change, labels, key="difference", title="Difference", diverging=True)


def test_a_sparse_difference_keeps_its_changes_in_the_overview():
    # Block means washed a 512-token difference out to a blank square on its ±0.04 scale.
    at = AppTest.from_function(_difference_script, default_timeout=60).run()
    assert not at.exception
    overview = at.get("vega_lite_chart")[0]
    spec = json.loads(overview.proto.spec)
    assert "largest change per block" in " ".join(spec["title"]["text"])
    values = [
        value
        for dataset in overview.proto.datasets
        for table in [pa.ipc.open_stream(dataset.data.data).read_all()]
        if "v" in table.column_names
        for value in table["v"].to_pylist()
    ]
    assert min(values) == -0.5 and max(values) == 0.3
    assert any("largest change" in c.value for c in at.caption)
