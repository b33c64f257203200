"""Every model-reading method on checkpoints stored in float16, bfloat16 and float64.

The same seeded weights are saved in float32 and in the other dtype; each method's result on
the other dtype must be close to the float32 one, within what that dtype's forward pass
resolves (tolerances below), and never a raw error.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import core
from tests.tiny_models import build_tiny_model

TEXT = "The researchers visualized attention patterns quickly, and the students read them."
METHODS = ("attention_norm", "alti", "value_zeroing", "grad_attention")
TOLERANCE = {"float64": 1e-5, "float16": 3e-3, "bfloat16": 3e-2}
"""Absolute, on row-normalised scores (and relative, on the attention norm's lengths); half
types differ from float32 already in the model's own forward pass (bf16 keeps 8 bits)."""
CASES = [
    ("bert", "float64"),
    ("bert", "float16"),
    ("gpt2", "bfloat16"),
    ("llama", "bfloat16"),
    ("llama", "float64"),
    ("gemma2", "bfloat16"),
    ("qwen3", "float16"),
    ("phi3", "bfloat16"),
]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Factory: (the float32 model, the same weights stored in `dtype`)."""
    cache = {}

    def get(family: str, dtype: str):
        if family not in cache:
            cache[family] = core.load_model(
                str(build_tiny_model(family, tmp_path_factory.mktemp(family)))
            )
        directory = tmp_path_factory.mktemp(f"{family}-{dtype}")
        other = core.load_model(str(build_tiny_model(family, directory, dtype=dtype)))
        assert next(other.model.parameters()).dtype == getattr(torch, dtype)
        return cache[family], other

    return get


def _scale(values: np.ndarray) -> float:
    return max(1.0, float(np.abs(values).max()))


@pytest.mark.parametrize(("family", "dtype"), CASES)
def test_every_method_works_in_the_stored_dtype(pair, family, dtype):
    reference, model = pair(family, dtype)
    tolerance = TOLERANCE[dtype]
    for method in METHODS:
        assert method in core.list_methods(model)
        expected = core.compute_method(reference, TEXT, method)
        result = core.compute_method(model, TEXT, method)
        assert result.per_layer.dtype == np.float64
        assert np.isfinite(result.per_layer).all(), method
        if method == "grad_attention":
            # A half-precision model may predict another token: compare where targets agree.
            if result.notes != expected.notes:
                continue
            atol = tolerance * _scale(expected.rollout)
            np.testing.assert_allclose(result.rollout, expected.rollout, atol=atol, err_msg=method)
        elif method == "attention_norm":
            atol = tolerance * _scale(expected.per_layer)
            np.testing.assert_allclose(
                result.per_layer, expected.per_layer, atol=atol, err_msg=method
            )
        else:
            np.testing.assert_allclose(result.per_layer.sum(-1), 1.0, atol=1e-9)
            np.testing.assert_allclose(
                result.per_layer, expected.per_layer, atol=tolerance, err_msg=method
            )


@pytest.mark.parametrize(("family", "dtype"), CASES)
def test_the_logit_lens_works_in_the_stored_dtype(pair, family, dtype):
    reference, model = pair(family, dtype)
    position = 3 if family == "bert" else -1
    expected = core.logit_lens(reference, TEXT, position, top_k=3)
    table = core.logit_lens(model, TEXT, position, top_k=3)
    assert table.probability.between(0, 1).all()
    np.testing.assert_allclose(
        table.probability.to_numpy(), expected.probability.to_numpy(), atol=TOLERANCE[dtype]
    )
