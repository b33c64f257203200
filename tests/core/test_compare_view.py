"""Link units between matrices drawn side by side, and the signed pooling of a difference."""

from core import compare_replacement, run_attention
from core import compare_view as links


def test_unit_rows_fill_units_without_a_row_from_their_neighbours():
    assert links.unit_rows([0, 1, 1, 3], 5) == [0, 1, 1, 3, 3]  # units 2 and 4: the rows before
    assert links.unit_rows([2, 3], 4) == [0, 0, 0, 1]  # before the first row: the first row
    assert links.unit_rows([-1, -1], 2) == [-1, -1]
    assert links.pooled_row_units([0, 0, 1, 2, 2, 3], 3) == [0, 1, 2]


def test_before_and_after_rows_meet_through_the_word_units(embedded):
    comparison = compare_replacement(embedded, "The cat sat on the mat.", 1, "hippopotamus")
    alignment = comparison.alignment
    n_before, n_after = len(comparison.before.tokens), len(comparison.after.tokens)
    before = links.row_units(
        [[i] for i in range(n_before)], links.token_units(alignment.before, n_before)
    )
    after = links.row_units(
        [[i] for i in range(n_after)], links.token_units(alignment.after, n_after)
    )
    # Every piece of "hippopotamus" is the replaced unit; "sat" is one unit on both sides.
    pieces = alignment.after[alignment.replaced]
    assert len(pieces) > 1 and {after[p] for p in pieces} == {alignment.replaced}
    sat_before = comparison.before.labels.index("sat")
    sat_after = comparison.after.labels.index("sat")
    assert links.unit_rows(after, len(alignment.labels))[before[sat_before]] == sat_after


def test_two_tokenizers_meet_at_the_characters_they_share(embedded, loaded_tiny):
    text = "the cat sat on the mat"
    bert = run_attention(embedded, text)
    gpt2 = run_attention(loaded_tiny("gpt2"), text)
    units_bert, total_bert = links.character_units(bert.tokens)
    units_gpt2, total_gpt2 = links.character_units(gpt2.tokens)
    total = max(total_bert, total_gpt2)
    gpt2_rows = links.unit_rows(
        links.row_units([[i] for i in range(len(gpt2.tokens))], units_gpt2), total
    )
    for i, token in enumerate(bert.tokens):
        if token.is_special:
            continue
        other = gpt2.tokens[gpt2_rows[units_bert[i]]]
        # The other model's token covering this token's first character.
        assert other.start <= token.start < max(other.end, other.start + 1)
    # [CLS] takes the first word's character; [SEP] the end of the text.
    assert units_bert[0] == 0 and units_bert[-1] == total_bert - 1
