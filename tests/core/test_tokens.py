import pytest

from core import run_attention, word_groups
from core.tokens import (
    PIECE_MARKER,
    Token,
    byte_label,
    bytes_shown,
    clean_token_text,
    count_masks,
    normalize_masks,
    token_labels,
    token_text,
    unit_labels,
)

# Words that the tiny tokenizers (and real ones) split into several pieces.
SENTENCE = "the hippopotamus was extraordinarily unbelievable and the cat slept"
WORDS = SENTENCE.split()


@pytest.mark.parametrize(
    "family",
    ["bert", "roberta", "distilbert", "albert", "gpt2", "llama", "mistral", "qwen2", "gemma2"],
)
def test_word_pieces_are_grouped_into_words(loaded_tiny, family):
    result = run_attention(loaded_tiny(family), SENTENCE)
    content = [t for t in result.tokens if not t.is_special]
    assert {t.word_index for t in content} == set(range(len(WORDS)))
    assert len(content) > len(WORDS), "the test sentence must split some word into pieces"
    for word_index, word in enumerate(WORDS):
        pieces = [t.text for t in content if t.word_index == word_index]
        # SentencePiece may emit the space marker as a piece of its own, shown as "␣".
        assert "".join(pieces).replace("␣", "").lower() == word


@pytest.mark.parametrize("family", ["bert", "roberta", "albert", "gpt2"])
def test_display_text_has_no_tokenizer_markers(loaded_tiny, family):
    result = run_attention(loaded_tiny(family), SENTENCE)
    for token in result.tokens:
        if not token.is_special:
            assert not token.text.startswith(("##", "Ġ", "▁")), token
            assert token.text.strip() == token.text and token.text


@pytest.mark.parametrize("family", ["bert", "roberta", "albert", "gpt2"])
def test_repeated_words_stay_separate_entries(loaded_tiny, family):
    result = run_attention(loaded_tiny(family), "I saw the cat and the cat saw me")
    words = [
        "".join(result.tokens[i].text for i in group).replace("␣", "").lower()
        for group in word_groups(result.tokens)
        if not result.tokens[group[0]].is_special
    ]
    assert words == ["i", "saw", "the", "cat", "and", "the", "cat", "saw", "me"]
    the = [t for t in result.tokens if t.text == "the"]
    assert len(the) == 2 and the[0].index != the[1].index
    assert the[0].word_index != the[1].word_index
    assert [t.index for t in result.tokens] == list(range(len(result.tokens)))


def test_special_tokens_are_flagged_but_masks_are_content(embedded):
    result = run_attention(embedded, "The [MASK] sat.")
    flags = [(t.text, t.is_special, t.is_mask) for t in result.tokens]
    assert flags[0] == ("[CLS]", True, False)
    assert flags[-1] == ("[SEP]", True, False)
    assert ("[MASK]", False, True) in flags
    assert result.mask_positions == [2]
    assert result.special_positions == [0, len(flags) - 1]


def test_word_groups_keep_specials_alone(embedded):
    result = run_attention(embedded, "unbelievably good")
    groups = word_groups(result.tokens)
    assert groups[0] == [0] and groups[-1] == [len(result.tokens) - 1]
    assert len(groups) == 4
    assert sum(len(g) for g in groups) == len(result.tokens)


def test_mask_spellings_are_normalised():
    assert normalize_masks("a [mask] b <MASK> c", "<mask>") == "a <mask> b <mask> c"
    assert normalize_masks("a <mask> b", "[MASK]") == "a [MASK] b"
    assert normalize_masks("a <mask> b", None) == "a <mask> b"
    assert count_masks("[MASK][mask]<mask> mask") == 3


def test_clean_token_text_without_decoder():
    class NoDecode:
        def convert_tokens_to_string(self, tokens):
            raise ValueError

    assert clean_token_text("##ing", NoDecode()) == "ing"
    assert clean_token_text("Ġcat", NoDecode()) == "cat"
    assert clean_token_text("▁cat", NoDecode()) == "cat"
    assert clean_token_text("▁", NoDecode()) == "␣"


# --- display labels ---------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["bert", "roberta", "albert", "gpt2"])
def test_marked_labels_flag_continuation_pieces_the_same_way_for_every_tokenizer(
    loaded_tiny, family
):
    result = run_attention(loaded_tiny(family), SENTENCE)
    marked = token_labels(result.tokens, "marked")
    for i, token in enumerate(result.tokens):
        continues = (
            i > 0 and not token.is_special and result.tokens[i - 1].word_index == token.word_index
        )
        assert marked[i] == (PIECE_MARKER + token.text if continues else token.text)
    # The sentence splits some words, so some labels are marked, and marking loses no text.
    assert any(label.startswith(PIECE_MARKER) for label in marked)
    assert [m.removeprefix(PIECE_MARKER) for m in marked] == [t.text for t in result.tokens]


def test_raw_labels_are_the_tokenizers_own_pieces(loaded_tiny):
    result = run_attention(loaded_tiny("gpt2"), "the cat sat")
    raw = token_labels(result.tokens, "raw")
    assert raw == [t.raw for t in result.tokens]
    assert any(label.startswith("Ġ") for label in raw)
    with pytest.raises(ValueError, match="style"):
        token_labels(result.tokens, "fancy")  # type: ignore[arg-type]


def test_unit_labels_mark_single_pieces_and_join_merged_words():
    tokens = [
        Token(text="[CLS]", index=0, word_index=None, is_special=True),
        Token(text="play", index=1, word_index=0, is_special=False, raw="play"),
        Token(text="ing", index=2, word_index=0, is_special=False, raw="##ing"),
        Token(text="[SEP]", index=3, word_index=None, is_special=True),
    ]
    assert unit_labels(tokens, [[0], [1], [2], [3]]) == ["[CLS]", "play", "##ing", "[SEP]"]
    assert unit_labels(tokens, [[0], [1, 2], [3]]) == ["[CLS]", "playing", "[SEP]"]
    assert unit_labels(tokens, [[1, 2]], "raw") == ["play ##ing"]


# --- byte tokens -------------------------------------------------------------------------------


def test_byte_pieces_show_as_hex_not_replacement_characters(loaded_tiny):
    # The tiny byte-level BPE has no merges for "’" (E2 80 99) or "é" (C3 A9): each of their
    # bytes is a token of its own, which decodes to "�" alone.
    result = run_attention(loaded_tiny("gpt2"), "It’s a café")
    texts = [t.text for t in result.tokens]
    assert "\ufffd" not in "".join(texts)
    assert texts[2:5] == ["<0xE2>", "<0x80>", "<0x99>"]
    assert "<0xC3>" in texts and "<0xA9>" in texts
    # Merged into words, the bytes are one character again.
    words = unit_labels(result.tokens, word_groups(result.tokens))
    assert "’" in words and "café" in words


def test_byte_labels_keep_whole_characters_and_sentencepiece_byte_pieces():
    assert byte_label("naïve ’".encode()) == "naïve ’"
    assert byte_label(b"a\xe2\x80") == "a<0xE2><0x80>"
    assert bytes_shown("<0xe2>", "\ufffd") == "<0xE2>"
    assert bytes_shown("Ġcat", " cat") == " cat"  # nothing to show when nothing was lost


def test_token_text_spells_a_byte_token_as_hex(loaded_tiny):
    tokenizer = loaded_tiny("gpt2").tokenizer
    [first_byte] = tokenizer.convert_tokens_to_ids(["â"])
    assert tokenizer.decode([first_byte]) == "\ufffd"
    assert token_text(tokenizer, first_byte) == "<0xE2>"
    [cat] = tokenizer("cat")["input_ids"][:1]
    assert token_text(tokenizer, cat) == tokenizer.decode([cat])
