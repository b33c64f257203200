"""Before/after comparison of replacing one word, aligned word by word."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from core.attention import AttentionResult, run_attention
from core.display_matrix import merge_groups, without_first_token
from core.errors import EmptyReplacementError, PositionOutOfRangeError
from core.layer_views import select_heads
from core.models import LoadedModel
from core.predictions import Prediction
from core.tokens import Token


@dataclass(frozen=True)
class WordAlignment:
    """Units shared by two tokenizations: each word or special token, matched before/after.

    `before[u]` and `after[u]` are the token positions of unit `u` in each input. The replaced
    word (and anything whose tokenization changed with it) forms the single unit `replaced`.
    """

    labels: list[str]
    before: list[list[int]]
    after: list[list[int]]
    replaced: int


@dataclass(frozen=True)
class MaskPair:
    """One mask's predictions before and after a replacement, matched through the alignment.

    `before` and `after` are the mask's token positions in each text; a side is None where the
    replacement removed the mask (or typed a new one), and its predictions are then empty.
    """

    before: int | None
    after: int | None
    before_predictions: list[Prediction]
    after_predictions: list[Prediction]


@dataclass(frozen=True, eq=False)
class Comparison:
    """Attention and predictions before and after replacing one word."""

    before: AttentionResult
    after: AttentionResult
    word_index: int
    original_word: str
    replacement: str
    alignment: WordAlignment

    # Merging a whole [layers, heads, n, n] stack takes about a second at 512 tokens, so each
    # word-level stack is computed once per object. `cached_property` stores the value in the
    # instance's `__dict__` directly, which a frozen dataclass (without slots) allows.
    @cached_property
    def before_words(self) -> np.ndarray:
        """Word-level attention before, `[layers, heads, units, units]`."""
        return _merge(self.before.attentions, self.alignment.before)

    @cached_property
    def after_words(self) -> np.ndarray:
        """Word-level attention after, `[layers, heads, units, units]`."""
        return _merge(self.after.attentions, self.alignment.after)

    @cached_property
    def difference(self) -> np.ndarray:
        """After minus before on the word alignment, `[layers, heads, units, units]`."""
        return self.after_words - self.before_words

    def difference_for(
        self, layer: int, head: int | None, *, without_first: bool = False
    ) -> np.ndarray:
        """After minus before for one layer and one head (None: mean of heads), `[units, units]`.

        Equal to `difference[layer, head]` (or `difference[layer].mean(0)`), but merges only the
        chosen `[n, n]` slices, so a page showing one head never pays for the whole stack.
        Averaging the heads before merging is the same as after: merging is linear.

        `without_first`: the difference of `without_first_token` of each side's `[n, n]` matrix
        (after averaging the heads, as the page's before and after charts are), merged to words;
        a unit's cell is NaN when none of its tokens' cells is left (the first token's column).
        """
        heads = None if head is None else [head]
        before = select_heads(self.before.attentions, layer, heads).mean(axis=0)
        after = select_heads(self.after.attentions, layer, heads).mean(axis=0)
        merge = _merged_without_first if without_first else _merge
        return merge(after, self.alignment.after) - merge(before, self.alignment.before)

    def layer_difference(self, layer: int, *, without_first: bool = False) -> np.ndarray:
        """After minus before for every head of one layer, `[heads, units, units]`.

        Head `h` equals `difference_for(layer, h, without_first=without_first)`; all heads are
        merged in one batch (the Compare explorer ships the whole layer, and the export of
        every layer without the first token is built layer by layer from this).
        """
        before = select_heads(self.before.attentions, layer, None)
        after = select_heads(self.after.attentions, layer, None)
        merge = _merged_without_first if without_first else _merge
        return merge(after, self.alignment.after) - merge(before, self.alignment.before)

    def shown_difference(self, *, without_first: bool = False) -> np.ndarray:
        """`difference` as the page draws it, `[layers, heads, units, units]`: with
        `without_first`, of each head's matrices without the first token (`layer_difference`),
        else `difference` itself."""
        if not without_first:
            return self.difference
        layers = self.before.attentions.shape[0]
        return np.stack(
            [self.layer_difference(layer, without_first=True) for layer in range(layers)]
        )

    @property
    def before_predictions(self) -> list[list[Prediction]]:
        return self.before.predictions

    @property
    def after_predictions(self) -> list[list[Prediction]]:
        return self.after.predictions

    @property
    def mask_pairs(self) -> list[MaskPair]:
        """The masks of both texts in text order, each matched to its word unit's mask.

        Masks of one unit of `alignment` pair in order; a mask the replacement removed or
        added has no partner. Empty for models that predict no masks.
        """
        before = dict(zip(self.before.mask_positions, self.before.predictions, strict=False))
        after = dict(zip(self.after.mask_positions, self.after.predictions, strict=False))
        pairs = []
        for old, new in zip(self.alignment.before, self.alignment.after, strict=True):
            old_masks = [p for p in old if p in before]
            new_masks = [p for p in new if p in after]
            for i in range(max(len(old_masks), len(new_masks))):
                b = old_masks[i] if i < len(old_masks) else None
                a = new_masks[i] if i < len(new_masks) else None
                pairs.append(MaskPair(b, a, before.get(b, []), after.get(a, [])))
        return pairs


def _merge(attentions: np.ndarray, groups: list[list[int]]) -> np.ndarray:
    """`merge_groups` of `[..., n, n]`, by sums over runs: where the groups share out the
    positions 0..n-1 (each once, as an alignment's do), the positions are put in group order
    and each group's run summed; a layer's 12 heads at 512 tokens take milliseconds instead
    of two dense products of 0.3 s. Other groups go to `merge_groups`."""
    n = attentions.shape[-1]
    order = [p for group in groups for p in group]
    if not all(groups) or sorted(order) != list(range(n)):
        return merge_groups(attentions, groups)
    sizes = np.array([len(group) for group in groups])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    ordered = attentions[..., order][..., order, :].astype(np.float64)
    keys = np.add.reduceat(ordered, starts, axis=-1)
    merged = np.add.reduceat(keys, starts, axis=-2) / sizes[:, None]
    return merged.astype(attentions.dtype, copy=False)


def _merged_without_first(matrix: np.ndarray, groups: list[list[int]]) -> np.ndarray:
    """`merge_groups` of `without_first_token(matrix)` `[n, n]` -> `[units, units]`.

    Left-out cells (NaN) count as 0 inside a unit that has others, since NaN would spread to
    every unit through the merge; a unit with no cell left is NaN.
    """
    shown = without_first_token(matrix)
    kept = np.isfinite(shown)
    merged = _merge(np.where(kept, shown, 0.0), groups)
    merged[_merge(kept.astype(np.float64), groups) == 0] = np.nan
    return merged


def word_span(tokens: list[Token], word_index: int) -> tuple[int, int]:
    """Character span `[start, end)` of a word in the first segment's text."""
    pieces = [t for t in tokens if t.word_index == word_index]
    if not pieces:
        words = max((t.word_index for t in tokens if t.word_index is not None), default=-1) + 1
        raise PositionOutOfRangeError(
            f"Word {word_index} does not exist: the text has words 0 to {words - 1}."
        )
    if any(t.segment != 0 for t in pieces):
        raise PositionOutOfRangeError("Only words of the first sentence can be replaced.")
    return min(t.start for t in pieces), max(t.end for t in pieces)


def align_words(
    before: list[Token], after: list[Token], span: tuple[int, int], new_length: int
) -> WordAlignment:
    """Match words of two tokenizations of a text where `span` was replaced.

    Words outside the span are matched by their character span (shifted by the length
    change); special tokens by their order. Whatever does not match joins the replaced unit.
    """
    start, end = span
    shift = new_length - (end - start)

    def key_before(group: list[Token]) -> tuple | None:
        s, e = group[0].start, group[-1].end
        if e <= start:
            return ("word", s, e)
        if s >= end:
            return ("word", s + shift, e + shift)
        return None

    def key_after(group: list[Token]) -> tuple | None:
        s, e = group[0].start, group[-1].end
        return None if start <= s < start + new_length or s < start < e else ("word", s, e)

    before_units = _units(before, key_before)
    after_units = _units(after, key_after)
    after_by_key = {key: positions for key, positions, _ in after_units if key is not None}
    matched_after = set()
    labels: list[str] = []
    before_groups: list[list[int]] = []
    after_groups: list[list[int]] = []
    replaced = -1
    replaced_before: list[int] = []
    for key, positions, label in before_units:
        if key is not None and key in after_by_key:
            matched_after.add(key)
            labels.append(label)
            before_groups.append(positions)
            after_groups.append(after_by_key[key])
        elif replaced < 0:
            replaced = len(labels)
            labels.append(label)
            before_groups.append(positions)
            after_groups.append([])
            replaced_before = positions
        else:
            replaced_before.extend(positions)
    if replaced < 0:
        raise PositionOutOfRangeError("The replaced word was not found in the text.")
    replaced_after = [
        p for key, positions, _ in after_units if key not in matched_after for p in positions
    ]
    after_groups[replaced] = sorted(replaced_after)
    before_groups[replaced] = sorted(replaced_before)
    labels[replaced] = "→".join(
        [_label(before, before_groups[replaced]), _label(after, after_groups[replaced])]
    )
    return WordAlignment(labels, before_groups, after_groups, replaced)


def _units(tokens: list[Token], key_of) -> list[tuple[tuple | None, list[int], str]]:
    units: list[tuple[tuple | None, list[int], str]] = []
    specials = 0
    current: list[Token] = []

    def close() -> None:
        if current:
            positions = [t.index for t in current]
            units.append((key_of(current), positions, _label(tokens, positions)))
            current.clear()

    for token in tokens:
        if token.word_index is None:
            close()
            units.append((("special", specials), [token.index], token.text))
            specials += 1
        elif current and current[-1].word_index != token.word_index:
            close()
            current.append(token)
        else:
            current.append(token)
    close()
    return units


def _label(tokens: list[Token], positions: list[int]) -> str:
    """Pieces of one word glued together, separate words separated by a space."""
    words: list[str] = []
    previous: int | None = None
    for i in positions:
        token = tokens[i]
        if words and token.word_index is not None and token.word_index == previous:
            words[-1] += token.text
        else:
            words.append(token.text)
        previous = token.word_index
    return " ".join(words) or "∅"


def compare_replacement(
    model: LoadedModel, text: str, word_index: int, replacement: str, *, top_k: int = 5
) -> Comparison:
    """Attention and predictions before and after replacing word `word_index` of `text`.

    Words are numbered as `Token.word_index` of `run_attention(model, text)`. The replacement
    may be several words or tokenize into a different number of pieces; `alignment` maps both
    inputs onto shared word units so a difference can be drawn.
    """
    if replacement is None or not replacement.strip():
        raise EmptyReplacementError("Type a replacement word (it is empty).")
    replacement = replacement.strip()
    if not isinstance(word_index, int) or word_index < 0:
        raise PositionOutOfRangeError(f"Word index must be 0 or more, not {word_index!r}.")
    before = run_attention(model, text, top_k=top_k)
    span = word_span(before.tokens, word_index)
    new_text = before.text[: span[0]] + replacement + before.text[span[1] :]
    after = run_attention(model, new_text, top_k=top_k)
    # Truncation may have cut different amounts; alignment works on the kept tokens.
    alignment = align_words(before.tokens, after.tokens, span, len(replacement))
    if not alignment.after[alignment.replaced]:
        # The tokenizer dropped every character (NUL, zero-width space, …), so the replaced
        # word has no tokens after and no word-level difference exists. (Truncation cannot
        # cause this: the replacement starts where the kept original word started.) Refused
        # here rather than when `.difference` is first read, so callers get the message at once.
        # repr() shows the invisible characters as escapes.
        raise EmptyReplacementError(
            f"{replacement[:40]!r} has no characters the model's tokenizer can read; type a word."
        )
    return Comparison(
        before=before,
        after=after,
        word_index=word_index,
        original_word=before.text[span[0] : span[1]],
        replacement=replacement,
        alignment=alignment,
    )
