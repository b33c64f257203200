"""Which tokens a view shows, and a selection that never lands on a hidden token: the
display options (`hide_special`, `merge_words`) applied to positions rather than to a matrix,
plus where a sentence pair's second sentence starts."""

from __future__ import annotations

from collections.abc import Sequence

from core.tokens import Token, word_groups


def segment_b_start(tokens: Sequence[Token], groups: Sequence[Sequence[int]]) -> int | None:
    """Display unit where the second sentence (segment B) of a pair starts, or None.

    `groups` are the input positions of each display unit (``DisplayMatrix.groups``); special
    tokens without a segment do not count, so B starts at its first word, not at a separator.
    """
    for unit, group in enumerate(groups):
        if any(tokens[i].segment == 1 and not tokens[i].is_special for i in group):
            return unit
    return None


def is_shown(token: Token, *, hide_special: bool) -> bool:
    """Whether `token` has a display unit of its own under the display options.

    Merging words keeps every position inside some unit, so only hiding can hide a token.
    """
    return not (hide_special and token.is_special)


def first_shown_token(
    tokens: Sequence[Token], hide_special: bool, merge_words: bool = False
) -> int:
    """Input position of the first token the view shows: the default selection.

    With `merge_words` it is the first position of that word. When every token is special,
    hiding is not applied (as in `core.display_matrix.prepare_display`), so 0.
    """
    tokens = list(tokens)
    if not tokens:
        raise ValueError("no tokens")
    shown = [t.index for t in tokens if is_shown(t, hide_special=hide_special)]
    if not shown:
        return tokens[0].index
    first = shown[0]
    if merge_words:
        group = next(g for g in word_groups(tokens) if first in g)
        return group[0]
    return first


def shown_selection(
    tokens: Sequence[Token], position: int, *, hide_special: bool, merge_words: bool = False
) -> int:
    """`position` if the view shows it, else the nearest shown token after it (or before it).

    Keeps a selection (from the URL or a click) on a token the charts draw, so the bars panel
    never turns into "pick a token that is shown".
    """
    tokens = list(tokens)
    if not 0 <= position < len(tokens):
        return first_shown_token(tokens, hide_special, merge_words)
    if is_shown(tokens[position], hide_special=hide_special) or all(
        not is_shown(t, hide_special=hide_special) for t in tokens
    ):
        return position
    after = [t.index for t in tokens[position + 1 :] if is_shown(t, hide_special=hide_special)]
    before = [t.index for t in tokens[:position] if is_shown(t, hide_special=hide_special)]
    return after[0] if after else before[-1]
