"""Shared corpus-test inputs: a small varied corpus and a per-test DuckDB store."""

from __future__ import annotations

import pytest

from core.corpus import CorpusStore

# Different lengths (so batches pad), punctuation, a split word and repeated tokens.
SENTENCES = [
    "The cat sat on the mat.",
    "Emma Woodhouse, handsome, clever, and rich, had lived nearly twenty-one years.",
    "It rained.",
    "The the the dog barked, and the other dog barked back at the unbelievably loud dog.",
    "Mr. Knightley was a sensible man about seven or eight-and-thirty.",
    "Yes!",
    "She had been a friend and companion such as few possessed: intelligent, well-informed.",
    "Tokenization splits uncommonly long words into pieces.",
    "A, b, c.",
]


@pytest.fixture
def store(tmp_path) -> CorpusStore:
    return CorpusStore(tmp_path / "corpus.duckdb")
