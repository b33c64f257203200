"""Keys of the corpus store: a corpus's content hash, a run's id, and the checked sentences
both are computed from (shared by running a corpus and opening a stored run)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from core.errors import EmptyCorpusError

STATISTICS_VERSION = 2
"""Part of every run's key: bump it when a statistic's definition changes."""


def corpus_hash(sentences: Sequence[str]) -> str:
    """Content hash of a corpus (the sentences, in order)."""
    digest = hashlib.sha256()
    for sentence in sentences:
        encoded = sentence.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.hexdigest()[:32]


def run_id(model_name: str, corpus: str, max_tokens: int, mode: str) -> str:
    """Key of a run in the store: model, corpus hash, settings and statistics version."""
    key = f"{model_name}\x00{corpus}\x00{max_tokens}\x00{mode}\x00{STATISTICS_VERSION}"
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def check_sentences(sentences: Sequence[str]) -> list[str]:
    """The corpus as a list of non-empty strings, or an `EmptyCorpusError` saying what's wrong."""
    if isinstance(sentences, str):
        raise EmptyCorpusError("Give the corpus as a list of sentences, not one string.")
    checked = list(sentences)
    if not checked:
        raise EmptyCorpusError("The corpus has no sentences.")
    for index, sentence in enumerate(checked):
        if not isinstance(sentence, str) or not sentence.strip():
            raise EmptyCorpusError(
                f"Sentence {index + 1} of the corpus is empty or not text: remove it."
            )
    return checked
