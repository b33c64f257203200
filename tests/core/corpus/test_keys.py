"""Store keys: a corpus's content hash, a run's id and the sentence check before both."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import core.corpus.result
import core.corpus.run
from core.corpus.keys import check_sentences, corpus_hash, run_id
from core.errors import EmptyCorpusError


def test_corpus_hash_depends_on_content_and_order_not_on_joins():
    assert corpus_hash(["a b", "c"]) == corpus_hash(["a b", "c"])
    assert corpus_hash(["a b", "c"]) != corpus_hash(["c", "a b"])
    # Lengths are hashed with each sentence, so moving a boundary changes the hash.
    assert corpus_hash(["ab", "c"]) != corpus_hash(["a", "bc"])
    assert corpus_hash(["\ud800"]) != corpus_hash(["\ufffd"])  # lone surrogates hash too


def test_run_id_changes_with_every_setting():
    base = run_id("model", "hash", 64, "mean")
    others = [
        run_id("other", "hash", 64, "mean"),
        run_id("model", "other", 64, "mean"),
        run_id("model", "hash", 65, "mean"),
        run_id("model", "hash", 64, "max"),
    ]
    assert len({base, *others}) == 5 and base == run_id("model", "hash", 64, "mean")


@pytest.mark.parametrize(
    ("sentences", "message"),
    [("one string", "not one string"), ([], "no sentences"), (["ok", " "], "Sentence 2")],
)
def test_check_sentences_says_what_is_wrong(sentences, message):
    with pytest.raises(EmptyCorpusError, match=message):
        check_sentences(sentences)
    assert check_sentences(("a", "b")) == ["a", "b"]


def imported_modules(module) -> set[str]:
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    return {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }


def test_result_does_not_import_run():
    """Running a corpus builds a result; a result never reaches back into the running code."""
    assert "core.corpus.run" not in imported_modules(core.corpus.result)
    assert "core.corpus.result" in imported_modules(core.corpus.run)
