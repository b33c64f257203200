"""Shared pytest setup: offline Hugging Face, and tiny random checkpoints built on demand.

Fixtures
--------
``tiny_model_path``  (session) factory ``tiny_model_path("roberta") -> Path``: builds each family
                     once per session (see ``tests/tiny_models.py``) and returns its directory,
                     loadable with ``from_pretrained(str(path))``.
``tiny_model``       factory ``tiny_model("bert") -> (model, tokenizer)``: a fresh eager-attention
                     model in eval mode plus its tokenizer, loaded from ``tiny_model_path``.
``mlm_family``       parametrised over the masked-LM families ("bert", "distilbert", "roberta",
                     "albert"): a test taking it runs once per family.
``any_family``       parametrised over every family.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

# tiny_models imports transformers lazily (inside functions), so the environment set below is in
# place before transformers or huggingface_hub are first imported.
from tests.tiny_models import FAMILIES, MLM_FAMILIES, build_tiny_model, load_tiny_model

# No machine here reaches the Hub; without these a lookup would hang on network timeouts.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Training the test tokenizers uses the Rust thread pool; keep it from warning (or deadlocking)
# if a test later forks, e.g. a Streamlit AppTest or multiprocessing.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if "huggingface_hub" in sys.modules:  # imported by a plugin before us: flip the cached constant
    sys.modules["huggingface_hub"].constants.HF_HUB_OFFLINE = True


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Factory: ``tiny_model_path(family) -> Path`` of a saved tiny checkpoint (built once)."""
    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            directory = tmp_path_factory.mktemp(f"tiny-{family}", numbered=True)
            built[family] = build_tiny_model(family, directory)
        return built[family]

    return get


@pytest.fixture
def tiny_model(tiny_model_path: Callable[[str], Path]):
    """Factory: ``tiny_model(family) -> (model, tokenizer)``, eager attention, eval mode."""

    def get(family: str):
        return load_tiny_model(family, tiny_model_path(family))

    return get


@pytest.fixture(params=MLM_FAMILIES)
def mlm_family(request: pytest.FixtureRequest) -> str:
    """Each masked-LM family in turn."""
    return request.param


@pytest.fixture(params=FAMILIES)
def any_family(request: pytest.FixtureRequest) -> str:
    """Each family in turn."""
    return request.param
