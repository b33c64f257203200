"""Tokens as people see them: cleaned text, word grouping, special-token flags."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

# Markers tokenizers put on word pieces: WordPiece continuation, byte-level BPE space,
# SentencePiece space. They are shown stripped.
SENTENCEPIECE_SPACE = "▁"
_SPACE_MARKERS = ("Ġ", SENTENCEPIECE_SPACE, "Ċ")
_MASK_SPELLINGS = re.compile(r"\[mask\]|<mask>", re.IGNORECASE)
VISIBLE_SPACE = "␣"
_TOKENIZER_LOCK = threading.Lock()


def tokenize(tokenizer: Any, *args: Any, **kwargs: Any) -> Any:
    """`tokenizer(*args, **kwargs)`, one call at a time in the whole process.

    A fast tokenizer keeps its truncation and padding settings on the shared Rust object and
    every call sets them before it encodes, so two threads (two visitors of one server, one
    model) can swap them: a call without truncation landing between another's "truncate to
    256" and its encode returned that text whole (issue 12: a stored result had 308 queries
    beside the page's 256 tokens). A call takes milliseconds, so serialising them costs little.
    Every tokenizer call in `core` goes through here.
    """
    with _TOKENIZER_LOCK:
        return tokenizer(*args, **kwargs)


@dataclass(frozen=True)
class Token:
    """One position of the model's input.

    `word_index` numbers the words of the whole input (both segments of a pair, counted on);
    pieces of one word share it; special tokens have `None`.
    `start`/`end` are character offsets into the segment's text (`segment` 0 or 1).
    """

    text: str
    index: int
    word_index: int | None
    is_special: bool
    raw: str = ""
    token_id: int = -1
    segment: int | None = 0
    start: int = 0
    end: int = 0
    is_mask: bool = False


def normalize_masks(text: str, mask_token: str | None) -> str:
    """Rewrite `[MASK]` / `<mask>` (any case) to the model's own mask token.

    Both spellings have six characters, so character offsets stay valid.
    """
    if not mask_token:
        return text
    return _MASK_SPELLINGS.sub(mask_token, text)


def count_masks(text: str) -> int:
    """How many `[MASK]` / `<mask>` spellings a text holds."""
    return len(_MASK_SPELLINGS.findall(text))


_BYTE_TOKENS = re.compile(r"(?:<0x[0-9A-Fa-f]{2}>)+")
"""SentencePiece's byte fallback pieces (``<0xE2>``): shown as they are, never decoded alone."""
REPLACEMENT = "\ufffd"
"""What decoding an incomplete UTF-8 sequence gives (�): a byte, not a character."""


def _byte_level_alphabet() -> dict[str, int]:
    """Byte-level BPE's alphabet (GPT-2, RoBERTa, BART…): the character standing for each byte.

    Printable Latin-1 bytes stand for themselves; the others (controls, space, soft hyphen)
    are mapped, in byte order, to the characters from U+0100 on (Radford et al.'s table).
    """
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars = {byte: chr(byte) for byte in printable}
    for extra, byte in enumerate(b for b in range(256) if b not in chars):
        chars[byte] = chr(0x100 + extra)
    return {char: byte for byte, char in chars.items()}


_BYTE_LEVEL = _byte_level_alphabet()


def byte_label(data: bytes) -> str:
    """`data` as text, each byte that is not part of a whole UTF-8 character as ``<0xNN>``
    (a token holding part of a character, e.g. the first byte of "’", decodes to � otherwise)."""
    out: list[str] = []
    i = 0
    while i < len(data):
        for size in (1, 2, 3, 4):
            try:
                out.append(data[i : i + size].decode("utf-8"))
            except UnicodeDecodeError:
                continue
            i += size
            break
        else:
            out.append(f"<0x{data[i]:02X}>")
            i += 1
    return "".join(out)


def bytes_shown(raw: str, decoded: str) -> str:
    """`decoded` (a tokenizer's text of piece `raw`), or, when it holds �, the piece's bytes
    with the partial ones as ``<0xNN>`` (byte-level BPE and SentencePiece byte fallback)."""
    if REPLACEMENT not in decoded or REPLACEMENT in raw:
        return decoded
    if _BYTE_TOKENS.fullmatch(raw):
        return raw.upper().replace("<0X", "<0x")
    if raw and all(char in _BYTE_LEVEL for char in raw):
        return byte_label(bytes(_BYTE_LEVEL[char] for char in raw))
    return decoded


def token_text(tokenizer: Any, token_id: int) -> str:
    """One token id as text, as `tokenizer.decode` spells it, but a token that is part of a
    character as its bytes (``<0xE2>``) instead of �."""
    decoded = tokenizer.decode([int(token_id)])
    if REPLACEMENT not in decoded:
        return decoded
    return bytes_shown(tokenizer.convert_ids_to_tokens(int(token_id)), decoded)


def clean_token_text(raw: str, tokenizer: Any) -> str:
    """Token text for display: `##`, `Ġ`, `▁` removed, byte-level bytes decoded (a piece that
    is part of a character shown as ``<0xNN>``)."""
    text = raw
    try:
        text = tokenizer.convert_tokens_to_string([raw])
    except Exception:
        text = raw
    text = bytes_shown(raw, text).strip()
    if text.startswith("##") and len(text) > 2:
        text = text[2:]
    for marker in _SPACE_MARKERS:
        text = text.replace(marker, " ")
    text = text.strip()
    if not text:
        # A token that is only a space marker or whitespace still occupies a position.
        return VISIBLE_SPACE if raw.strip() == "" or raw in _SPACE_MARKERS else raw
    return text


def build_tokens(encoding: Any, tokenizer: Any) -> list[Token]:
    """Tokens of one encoded input (a fast tokenizer's `BatchEncoding`, batch of one)."""
    ids: list[int] = encoding["input_ids"][0].tolist()
    raws: list[str] = tokenizer.convert_ids_to_tokens(ids)
    special_ids = set(tokenizer.all_special_ids)
    content_specials = {tokenizer.mask_token_id, tokenizer.unk_token_id} - {None}
    offsets = encoding.get("offset_mapping")
    offsets = offsets[0].tolist() if offsets is not None else [(0, 0)] * len(ids)
    word_ids, sequence_ids = _word_and_sequence_ids(
        encoding, raws, special_ids - content_specials, ids
    )

    segment_a_words = max(
        (w for w, s in zip(word_ids, sequence_ids, strict=True) if w is not None and s == 0),
        default=-1,
    )
    tokens = []
    for index, (token_id, raw) in enumerate(zip(ids, raws, strict=True)):
        is_special = token_id in special_ids and token_id not in content_specials
        word = word_ids[index]
        segment = sequence_ids[index]
        if is_special:
            word = None
        elif word is not None and segment == 1:
            word += segment_a_words + 1
        start, end = offsets[index]
        tokens.append(
            Token(
                text=raw
                if is_special or token_id in content_specials
                else clean_token_text(raw, tokenizer),
                index=index,
                word_index=word,
                is_special=is_special,
                raw=raw,
                token_id=token_id,
                segment=segment,
                start=int(start),
                end=int(end),
                is_mask=token_id == tokenizer.mask_token_id,
            )
        )
    return _renumber_words(tokens)


def _word_and_sequence_ids(
    encoding: Any, raws: list[str], special_ids: set[int], ids: list[int]
) -> tuple[list[int | None], list[int | None]]:
    try:
        word_ids, sequence_ids = encoding.word_ids(0), encoding.sequence_ids(0)
    except (ValueError, AttributeError):
        # Slow tokenizers keep no alignment: rebuild words from the piece markers.
        return _words_from_markers(raws, special_ids, ids)
    if any(raw.startswith(SENTENCEPIECE_SPACE) for raw in raws):
        # Llama-2, Mistral and Gemma tokenizers replace spaces with "▁" in a normalizer and
        # have no pre-tokenizer, so their word ids call the whole text one word (every piece
        # then read as a continuation, "##cat"): the "▁" that starts each word says better.
        word_ids = _words_from_markers(raws, special_ids, ids)[0]
    return word_ids, sequence_ids


def _words_from_markers(
    raws: list[str], special_ids: set[int], ids: list[int]
) -> tuple[list[int | None], list[int | None]]:
    """Word ids from piece markers: WordPiece continues a word with `##`, BPE and
    SentencePiece start one with `Ġ` / `▁`."""
    wordpiece = any(raw.startswith("##") for raw in raws)
    words: list[int | None] = []
    current = -1
    for token_id, raw in zip(ids, raws, strict=True):
        if token_id in special_ids:
            words.append(None)
            continue
        starts_word = not raw.startswith("##") if wordpiece else raw[:1] in _SPACE_MARKERS
        if current < 0 or starts_word:
            current += 1
        words.append(current)
    sequence = [None if w is None else 0 for w in words]
    return words, sequence


def _renumber_words(tokens: list[Token]) -> list[Token]:
    """Make word indices 0..W-1 in order of appearance (typed masks and gaps included)."""
    mapping: dict[int, int] = {}
    result = []
    for token in tokens:
        word = token.word_index
        if word is not None:
            word = mapping.setdefault(word, len(mapping))
        result.append(token if word == token.word_index else _replace_word(token, word))
    return result


def _replace_word(token: Token, word: int | None) -> Token:
    from dataclasses import replace

    return replace(token, word_index=word)


def word_groups(tokens: list[Token]) -> list[list[int]]:
    """Positions grouped into display units: one group per word, one per special token."""
    groups: list[list[int]] = []
    by_word: dict[int, int] = {}
    for token in tokens:
        if token.word_index is None:
            groups.append([token.index])
        elif token.word_index in by_word:
            groups[by_word[token.word_index]].append(token.index)
        else:
            by_word[token.word_index] = len(groups)
            groups.append([token.index])
    return groups


def tokens_from_ids(ids: list[int], tokenizer: Any) -> list[Token]:
    """Tokens of a sequence the model produced itself (no source text, so no offsets).

    Words are rebuilt from the piece markers (`##`, `Ġ`, `▁`).
    """
    raws: list[str] = tokenizer.convert_ids_to_tokens(ids)
    special_ids = set(tokenizer.all_special_ids)
    content_specials = {tokenizer.mask_token_id, tokenizer.unk_token_id} - {None}
    words, _ = _words_from_markers(raws, special_ids - content_specials, ids)
    tokens = [
        Token(
            text=raw
            if token_id in special_ids and token_id not in content_specials
            else clean_token_text(raw, tokenizer),
            index=index,
            word_index=word,
            is_special=token_id in special_ids and token_id not in content_specials,
            raw=raw,
            token_id=token_id,
            is_mask=token_id == tokenizer.mask_token_id,
        )
        for index, (token_id, raw, word) in enumerate(zip(ids, raws, words, strict=True))
    ]
    return _renumber_words(tokens)


# --------------------------------------------------------------------------- display labels

PIECE_MARKER = "##"
"""Prefix of a word piece that continues the word before it, for every tokenizer.

One convention for WordPiece, byte-level BPE and SentencePiece alike: BERT's own ``##``,
which most readers of attention maps already know, in plain ASCII so it survives any font and
the CSV exports. "embeddings" reads ``em ##bed ##ding ##s`` and GPT-2's "sat" split as
``s ##at``. Word-initial pieces, whole words and special tokens are never marked.
"""

LabelStyle = Literal["clean", "marked", "raw"]


def is_continuation(tokens: Sequence[Token], i: int) -> bool:
    """Whether `tokens[i]` continues the word of `tokens[i - 1]` (same word, not special)."""
    token = tokens[i]
    return (
        i > 0
        and not token.is_special
        and token.word_index is not None
        and tokens[i - 1].word_index == token.word_index
    )


def token_labels(tokens: Sequence[Token], style: LabelStyle = "marked") -> list[str]:
    """One label per token: ``"clean"`` text, ``"marked"`` (`PIECE_MARKER` on continuation
    pieces) or ``"raw"`` (the tokenizer's own piece, e.g. ``Ġsat`` / ``▁the`` / ``##ding``)."""
    tokens = list(tokens)
    if style == "raw":
        return [t.raw or t.text for t in tokens]
    if style == "clean":
        return [t.text for t in tokens]
    if style != "marked":
        raise ValueError(f"style must be 'clean', 'marked' or 'raw', got {style!r}")
    return [
        PIECE_MARKER + t.text if is_continuation(tokens, i) else t.text
        for i, t in enumerate(tokens)
    ]


def unit_labels(
    tokens: Sequence[Token], groups: Sequence[Sequence[int]], style: LabelStyle = "marked"
) -> list[str]:
    """Labels of display units (``DisplayMatrix.groups``): a one-token unit gets its token's
    label in `style`; a merged word is its pieces joined, with no marker (it is whole)."""
    tokens = list(tokens)
    per_token = token_labels(tokens, style)
    labels = []
    for group in groups:
        if len(group) == 1:
            labels.append(per_token[group[0]])
        elif style == "raw":
            labels.append(" ".join(per_token[i] for i in group))
        else:
            joined = "".join(tokens[i].text for i in group).replace(VISIBLE_SPACE, "")
            if "<0x" in joined:  # pieces of one character, whole again in the merged word
                joined = _whole_bytes([tokens[i].raw for i in group], joined)
            labels.append(joined or tokens[group[0]].text)
    return labels


def _whole_bytes(raws: Sequence[str], joined: str) -> str:
    """The text of byte pieces `raws` decoded together (`joined` when they are not bytes)."""
    pieces = "".join(raws)
    if pieces and all(char in _BYTE_LEVEL for char in pieces):
        return byte_label(bytes(_BYTE_LEVEL[char] for char in pieces)).strip()
    fallback = [p.replace("▁", "") for p in raws]
    if all(_BYTE_TOKENS.fullmatch(p) or not p.startswith("<0x") for p in fallback):
        data = b"".join(
            bytes(int(h, 16) for h in re.findall(r"<0x([0-9A-Fa-f]{2})>", p))
            if _BYTE_TOKENS.fullmatch(p)
            else p.encode("utf-8")
            for p in fallback
        )
        return byte_label(data).strip()
    return joined
