"""Corpus files and the bundled corpus."""

from __future__ import annotations

import json

import pytest

from core.corpus import BUNDLED_CORPORA, bundled_corpus, read_corpus_file, read_sentences
from core.errors import AtlasError, CorpusFileError, EmptyCorpusError


def test_bundled_corpus_has_thousands_of_english_sentences():
    sentences = bundled_corpus("austen")
    assert len(sentences) == 3000
    assert len(set(sentences)) > 2900
    assert all(s == s.strip() and s for s in sentences)
    assert "It is a truth universally acknowledged" in " ".join(sentences)
    assert set(BUNDLED_CORPORA) == {"austen"}
    with pytest.raises(CorpusFileError, match="no bundled corpus"):
        bundled_corpus("shakespeare")


def test_txt_one_sentence_per_line_blank_lines_skipped():
    data = b"First sentence.\n\n  Second one.  \r\nThird.\n"
    assert read_sentences(data, "x.txt") == ["First sentence.", "Second one.", "Third."]
    assert read_sentences("\ufeffBOM first.\n".encode(), "x.TXT") == ["BOM first."]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            'id,text\n1,Hello there.\n2,"Quoted, with comma."\n',
            ["Hello there.", "Quoted, with comma."],
        ),
        ("Sentence,label\nA one.,x\nB two.,y\n", ["A one.", "B two."]),
        ("words,n\nFirst column.,1\n,2\n", ["First column."]),
    ],
)
def test_csv_reads_text_or_sentence_column_else_the_first(content, expected):
    assert read_sentences(content.encode(), "data.csv") == expected


def test_jsonl_reads_the_text_field():
    lines = [json.dumps({"text": "One.", "id": 1}), "", json.dumps({"text": "Two."})]
    assert read_sentences("\n".join(lines).encode(), "d.jsonl") == ["One.", "Two."]


OK = b'{"text": "ok"}\n'
DEEP = b"[" * 100_000
DEEP_TEXT = b'{"text": ' + DEEP + b"]"
HUGE = b'{"text": "a", "n": ' + b"9" * 5000 + b"}"


@pytest.mark.parametrize(
    ("data", "name", "error", "message"),
    [
        (b"a", "corpus.pdf", CorpusFileError, "must be .txt, .csv, .jsonl"),
        (b"\xff\xfe\x00bad", "x.txt", CorpusFileError, "not UTF-8"),
        (b"a\x00b", "x.txt", CorpusFileError, "binary"),
        (b'{"text": "ok"}\n{broken', "x.jsonl", CorpusFileError, "Line 2 of x.jsonl is not valid"),
        (b'{"sentence": "no text field"}', "x.jsonl", CorpusFileError, 'no "text" field'),
        (b'["a list"]', "x.jsonl", CorpusFileError, 'no "text" field'),
        # Issue 24: these raised RecursionError and ValueError.
        pytest.param(OK + DEEP, "x.jsonl", CorpusFileError, "Line 2.*too deeply", id="deep"),
        pytest.param(HUGE, "x.jsonl", CorpusFileError, "5000 digits", id="huge-number"),
        pytest.param(DEEP_TEXT, "x.jsonl", CorpusFileError, "too deeply", id="deep-text"),
        (b"", "x.csv", CorpusFileError, "no header row"),
        (b"\n\n  \n", "x.txt", EmptyCorpusError, "holds no sentences"),
        (b"text\n", "x.csv", EmptyCorpusError, "holds no sentences"),
    ],
)
def test_bad_files_raise_typed_errors_for_people(data, name, error, message):
    with pytest.raises(error, match=message) as caught:
        read_sentences(data, name)
    assert isinstance(caught.value, AtlasError)
    assert "/" not in str(caught.value)  # no server paths


def test_reading_from_disk(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("A.\nB.\n", encoding="utf-8")
    assert read_corpus_file(path) == ["A.", "B."]
    with pytest.raises(CorpusFileError, match="cannot be read"):
        read_corpus_file(tmp_path / "missing.txt")
