"""`python -m core.corpus` end to end on a tiny model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.corpus import CorpusStore, open_corpus, read_corpus_file
from core.corpus.__main__ import main
from tests.core.corpus.conftest import SENTENCES

REPOSITORY = Path(__file__).resolve().parents[3]


def test_command_writes_the_store_and_prints_labels(tiny_model_path, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES), encoding="utf-8")
    store = tmp_path / "store.duckdb"
    model = str(tiny_model_path("bert"))
    code = main(
        [
            "--model",
            model,
            "--corpus",
            str(corpus),
            "--store",
            str(store),
            "--max-tokens",
            "16",
            "--batch-size",
            "4",
        ]
    )
    out = capsys.readouterr()
    assert code == 0
    assert f"{len(SENTENCES)}/{len(SENTENCES)} sentences" in out.out
    assert "s left" in out.err and "s left" not in out.out  # progress goes to stderr
    result = open_corpus(model, read_corpus_file(corpus), max_tokens=16, store=CorpusStore(store))
    assert result is not None and result.finished


def test_command_reports_bad_input_without_traceback(tmp_path, capsys):
    bad = tmp_path / "corpus.jsonl"
    bad.write_text("{not json", encoding="utf-8")
    assert main(["--corpus", str(bad), "--store", str(tmp_path / "s.duckdb")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Line 1 of corpus.jsonl") and "Traceback" not in err


@pytest.mark.parametrize(
    "content", [b"[" * 100_000, b'{"text": "a", "n": ' + b"9" * 5000 + b"}"], ids=["deep", "huge"]
)
def test_command_exits_2_with_one_line_on_deep_or_huge_json(tmp_path, content):
    """Issue 24: a traceback and exit 1 before; run as a command, as people do."""
    corpus = tmp_path / "bad.jsonl"
    corpus.write_bytes(content)
    done = subprocess.run(
        [sys.executable, "-m", "core.corpus", "--corpus", str(corpus)],
        cwd=REPOSITORY,
        env=os.environ | {"ATLAS_CORPUS_STORE": str(tmp_path / "s.duckdb")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: Line 1 of bad.jsonl") and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_module_runs_as_a_command():
    done = subprocess.run(
        [sys.executable, "-m", "core.corpus", "--help"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "--ray-address" in done.stdout and "--max-tokens" in done.stdout
