"""Loaded models shared by the core tests (loading is the slow part, so once per session)."""

from __future__ import annotations

import pytest

from core import EMBEDDED_MODEL, LoadedModel, load_model

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
