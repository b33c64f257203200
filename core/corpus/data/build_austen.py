"""Rebuild `austen.txt` from Debian's `r-cran-janeaustenr` package (run by hand, not imported).

    apt-get download r-cran-janeaustenr && dpkg-deb -x r-cran-janeaustenr_*.deb pkg
    python core/corpus/data/build_austen.py pkg/usr/lib/R/site-library/janeaustenr/data

The package keeps the six novels as R character vectors (one line of the Project Gutenberg text
each) in R's lazy-load database: `Rdata.rdx` is a gzip-compressed index and `Rdata.rdb` a run
of objects, each a 4-byte length followed by a zlib stream of R's XDR serialisation. A
character vector serialises as a type word (16), a length, then one (flags, length, bytes)
record per string, which is all this reader needs.
"""

from __future__ import annotations

import re
import struct
import sys
import zlib
from pathlib import Path

# Order of the objects in Rdata.rdb (alphabetical, as R writes them; checked against Rdata.rdx).
NOVELS = (
    "emma",
    "mansfieldpark",
    "northangerabbey",
    "persuasion",
    "prideprejudice",
    "sensesensibility",
)
PER_NOVEL = 500
MIN_WORDS, MAX_WORDS = 6, 35
_ABBREVIATIONS = re.compile(r"\b(Mr|Mrs|Dr|St|Messrs|Mme|Col|Rev)\.")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"']?\s+(?=[\"'A-Z])")


def _objects(rdb: bytes) -> list[bytes]:
    objects, position = [], 0
    while position < len(rdb):
        stream = zlib.decompressobj()
        objects.append(stream.decompress(rdb[position + 4 :]))
        position = len(rdb) - len(stream.unused_data)
    return objects


def _strings(serialised: bytes) -> list[str]:
    position = 2 + 12  # "X\n", then format version, R version, minimal R version
    (encoding_length,) = struct.unpack(">i", serialised[position : position + 4])
    position += 4 + encoding_length
    flags, count = struct.unpack(">Ii", serialised[position : position + 8])
    if flags & 0xFF != 16:
        raise ValueError("not a character vector")
    position += 8
    lines = []
    for _ in range(count):
        _flags, length = struct.unpack(">Ii", serialised[position : position + 8])
        position += 8
        if length < 0:  # NA
            lines.append("")
            continue
        lines.append(serialised[position : position + length].decode("utf-8"))
        position += length
    return lines


def _sentences(lines: list[str]) -> list[str]:
    paragraphs, current = [], []
    for line in [*lines, ""]:
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    sentences = []
    for paragraph in paragraphs:
        if paragraph.isupper() or paragraph.lower().startswith("chapter"):
            continue  # titles and chapter headings
        protected = _ABBREVIATIONS.sub(r"\1<DOT>", paragraph.replace("_", ""))  # _ = italics
        for piece in _SENTENCE_END.split(protected):
            sentence = piece.replace("<DOT>", ".").strip()
            words = len(sentence.split())
            if (
                MIN_WORDS <= words <= MAX_WORDS
                and sentence[0].isupper()
                and sentence[-1] in ".!?\"'"
            ):
                sentences.append(sentence)
    return sentences


def main(data_directory: str) -> None:
    objects = _objects((Path(data_directory) / "Rdata.rdb").read_bytes())
    chosen = []
    for name, serialised in zip(NOVELS, objects, strict=True):
        sentences = _sentences(_strings(serialised))
        step = len(sentences) / PER_NOVEL  # evenly spread over the whole novel
        chosen += [sentences[int(i * step)] for i in range(PER_NOVEL)]
        print(f"{name}: {len(sentences)} sentences, kept {PER_NOVEL}", file=sys.stderr)
    out = Path(__file__).with_name("austen.txt")
    out.write_text("\n".join(chosen) + "\n", encoding="utf-8")
    print(f"wrote {len(chosen)} sentences to {out}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1])
