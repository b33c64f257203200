"""Shared by the chart-builder tests: every spec is checked against the Vega-Lite schema."""

from __future__ import annotations

from typing import Any

import altair as alt
import numpy as np
import pytest
from altair.utils.schemapi import validate_jsonschema
from altair.vegalite.v6.schema import load_schema

from core.charts import spec_dict

SCHEMA = load_schema()


@pytest.fixture
def valid_spec():
    """`valid_spec(chart)` -> its spec dict, after validating it against the schema."""

    def check(chart: alt.TopLevelMixin) -> dict[str, Any]:
        spec = spec_dict(chart)
        # Inline rows are free-form objects to the schema, and checking thousands of them
        # one by one is most of the time: a few rows per dataset validate the same.
        lean = {**spec, "datasets": {k: v[:3] for k, v in spec.get("datasets", {}).items()}}
        validate_jsonschema(lean, SCHEMA)
        return spec

    return check


def random_attention(n: int, seed: int = 0, heads: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (n, n) if heads is None else (heads, n, n)
    return rng.dirichlet(np.ones(n), size=shape[:-1])
