"""Loaded models shared by the core tests (loading is the slow part, so once per session)."""

from __future__ import annotations

import pytest

from core import EMBEDDED_MODEL, LoadedModel, load_model
from tests.core import attention_inputs

MLM_FAMILIES = ("bert", "roberta", "distilbert", "albert")


@pytest.fixture(scope="session")
def embedded() -> LoadedModel:
    return load_model(EMBEDDED_MODEL)


@pytest.fixture(scope="session")
def loaded_tiny(tiny_model_path):
    """Factory: `loaded_tiny("roberta")` -> LoadedModel of that tiny random family."""
    cache: dict[str, LoadedModel] = {}

    def load(family: str) -> LoadedModel:
        if family not in cache:
            cache[family] = load_model(str(tiny_model_path(family)))
        return cache[family]

    return load


@pytest.fixture(scope="session")
def minilm_attentions():
    """Real attentions ``[6, 12, n, n]`` of the embedded MiniLM for n = 4..24 (rollout/flow)."""
    return attention_inputs.minilm_attentions()
