"""Corpora: the bundled one, and sentences read from `.txt`, `.csv` or `.jsonl` files."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from core.errors import CorpusFileError, EmptyCorpusError

DATA_DIRECTORY = Path(__file__).with_name("data")
BUNDLED_CORPORA = {
    "austen": "3,000 sentences from Jane Austen's six novels (public domain; see data/README.md)",
}
"""Name -> description of each corpus shipped with the package."""
FILE_TYPES = (".txt", ".csv", ".jsonl")
TEXT_COLUMNS = ("text", "sentence")
"""CSV columns read, in order of preference (case-insensitive); else the first column."""
_LONE_SURROGATES = re.compile("[\ud800-\udfff]")


def bundled_corpus(name: str = "austen") -> list[str]:
    """The sentences of a bundled corpus (see `BUNDLED_CORPORA`)."""
    if name not in BUNDLED_CORPORA:
        raise CorpusFileError(
            f"There is no bundled corpus '{name}': choose {', '.join(BUNDLED_CORPORA)}."
        )
    return parse_txt((DATA_DIRECTORY / f"{name}.txt").read_text(encoding="utf-8"))


def _clean(lines: list[str]) -> list[str]:
    # Unpaired surrogates (broken copy-paste) make tokenizers raise; one character for one.
    return [_LONE_SURROGATES.sub("\ufffd", s).strip() for s in lines if s and s.strip()]


def parse_txt(text: str) -> list[str]:
    """One sentence per line; blank lines are skipped."""
    return _clean(text.splitlines())


def parse_csv(text: str, name: str = "the file") -> list[str]:
    """The column named text or sentence (any case), else the first column; header required."""
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise CorpusFileError(f"{name} is not a readable CSV file ({exc}).") from exc
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise CorpusFileError(f"{name} has no header row: the first line must name the columns.")
    header = [cell.strip().lower() for cell in rows[0]]
    column = next((header.index(c) for c in TEXT_COLUMNS if c in header), 0)
    return _clean([row[column] if column < len(row) else "" for row in rows[1:]])


def parse_jsonl(text: str, name: str = "the file") -> list[str]:
    """One JSON object per line with a "text" field; blank lines are skipped."""
    sentences = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusFileError(
                f"Line {number} of {name} is not valid JSON ({exc.msg}): each line must be one "
                'object such as {"text": "A sentence."}.'
            ) from exc
        except RecursionError as exc:  # the decoder recurses once per nested array or object
            raise CorpusFileError(
                f"Line {number} of {name} is nested too deeply to read: each line must be one "
                'object such as {"text": "A sentence."}.'
            ) from exc
        except ValueError as exc:  # Python refuses integers of more than 4,300 digits
            digits = max((len(d) for d in re.findall(r"\d+", line)), default=0)
            raise CorpusFileError(
                f"Line {number} of {name} holds a number of {digits} digits, too long to read: "
                'each line must be one object such as {"text": "A sentence."}.'
            ) from exc
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise CorpusFileError(
                f'Line {number} of {name} has no "text" field holding a string: each line must '
                'be one object such as {"text": "A sentence."}.'
            )
        sentences.append(record["text"])
    return _clean(sentences)


def read_sentences(data: bytes | str, filename: str) -> list[str]:
    """Sentences of an uploaded file, by its extension (`FILE_TYPES`); `data` is its content.

    Raises `CorpusFileError` (unknown type, not UTF-8, malformed) or `EmptyCorpusError`.
    """
    name = Path(filename).name or "the file"
    suffix = Path(filename).suffix.lower()
    if suffix not in FILE_TYPES:
        raise CorpusFileError(
            f"{name}: a corpus file must be {', '.join(FILE_TYPES)} (one sentence per line, a "
            'CSV with a text column, or JSON lines with a "text" field).'
        )
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise CorpusFileError(f"{name} is not UTF-8 text: save it as UTF-8.") from exc
    if "\x00" in data:
        raise CorpusFileError(f"{name} is a binary file, not text.")
    parser = {".txt": parse_txt, ".csv": parse_csv, ".jsonl": parse_jsonl}[suffix]
    sentences = parser(data) if suffix == ".txt" else parser(data, name)
    if not sentences:
        raise EmptyCorpusError(f"{name} holds no sentences.")
    return sentences


def read_corpus_file(path: str | Path) -> list[str]:
    """Sentences of a file on disk (see `read_sentences`)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorpusFileError(f"The corpus file '{path.name}' cannot be read.") from exc
    return read_sentences(data, path.name)
