"""Per-sentence head statistics for a padded batch, in two conventions.

`batch_values` turns one padded batch of attention into one number per sentence, layer, head
and statistic, plus the token pair where the statistic is strongest in that sentence. Each
sentence is read through its own `[n, n]` block only (padding keys are zeroed, padding rows
ignored), so the numbers are those of the sentence run alone, up to the ~1e-6 that padding
moves float32 attention.

Two conventions (`mode`):

* ``"default"``: the statistics of `core.head_statistics` (`STAT_DESCRIPTIONS`): shares averaged
  over content query rows, previous/next over the rows that have one, entropy in bits. The mean
  of a statistic over sentences equals the mean of `head_statistics` over those sentences.
* ``"clark"``: Clark et al. (2019), "What does BERT look at?", as in their General_Analysis
  notebook: every query row counts (so previous/next are divided by n), [CLS] and [SEP] are
  reported apart, only "." and "," are punctuation, [SEP]→[SEP] and rest→[SEP] are averaged
  over [SEP] rows and the other rows, and entropy is in nats of the attention smoothed as
  `0.9999 * a + 0.0001 / n`. Their [SEP]→[SEP] divides by 2 and rest→[SEP] by n − 2 because
  their inputs always held two [SEP]; here the divisors are the number of [SEP] rows and of the
  other rows, which is the same thing for their inputs and stays a share for single sentences.

Both modes add three statistics that the head labels need (`EXTRA_DESCRIPTIONS`) and the sink
measures of `core.sink_profile` (`SINK_DESCRIPTIONS`: first-token share, sink or not, local
share over the window of 64 keys up to the query, entropy off the first token), each a
sentence's value exactly as `sink_profile` gives it for that sentence run alone, so a head's
sink behaviour across a corpus is its mean (and interval) over sentences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from core.head_stats import STAT_DESCRIPTIONS, is_punctuation
from core.sinks import DEFAULT_SINK_EPSILON, DEFAULT_SINK_WINDOW
from core.tokens import Token

MODES = ("default", "clark")

EXTRA_DESCRIPTIONS = {
    "entropy_ratio": "Entropy of a query's attention divided by the entropy of uniform attention "
    "over the keys it can see (1 = uniform). Rows that see one key are left out.",
    "to_same_word": "Share of attention a word piece puts on the other pieces of its word, "
    "averaged over pieces of words split into several tokens.",
    "to_duplicate": "Share of attention a token puts on other occurrences of the same token, "
    "averaged over content tokens that occur more than once.",
}

SINK_DESCRIPTIONS = {
    "first_token_share": (
        "Mean over every query of its weight on the first token (Gu et al.'s α₁; "
        "core.sink_profile)."
    ),
    "is_sink": (
        f"1 where a sentence's first-token share exceeds ε = {DEFAULT_SINK_EPSILON}: the mean "
        "is the share of sentences in which the head is a sink."
    ),
    "local_share": (
        f"Mean over every query of its weight on itself and the {DEFAULT_SINK_WINDOW - 1} keys "
        "before it."
    ),
    "entropy_without_first": (
        "Mean entropy in bits of a query's weights off the first token, renormalised (over the "
        "queries that put weight there)."
    ),
}

CLARK_DESCRIPTIONS = {
    "to_self": "Attention to the token itself, averaged over all query rows (Clark: self).",
    "to_next": "Attention to the next token, summed over rows and divided by n (Clark: right).",
    "to_previous": "Attention to the previous token, summed and divided by n (Clark: left).",
    "to_cls": "Attention to [CLS] (the tokenizer's cls token), averaged over all rows.",
    "to_sep": "Attention to [SEP] (the tokenizer's sep token), averaged over all rows.",
    "sep_to_sep": "Attention from [SEP] rows to [SEP], averaged over the [SEP] rows.",
    "rest_to_sep": "Attention from the other rows to [SEP], averaged over those rows.",
    "to_punctuation": 'Attention to "." and "," tokens, averaged over all rows.',
    "entropy": "Entropy in nats of 0.9999·a + 0.0001/n, averaged over all query rows.",
    "cls_entropy": "Entropy in nats (smoothed as above) of the first row ([CLS] in BERT).",
}


def statistic_descriptions(mode: str) -> dict[str, str]:
    """Name -> meaning of every statistic a run in `mode` measures, in table order."""
    check_mode(mode)
    base = STAT_DESCRIPTIONS if mode == "default" else CLARK_DESCRIPTIONS
    return {**base, **EXTRA_DESCRIPTIONS, **SINK_DESCRIPTIONS}


def check_mode(mode: str) -> str:
    if mode not in MODES:
        from core.errors import CorpusError

        raise CorpusError(f"Unknown statistics mode '{mode}': choose 'default' or 'clark'.")
    return mode


@dataclass(frozen=True)
class TokenBatch:
    """Token facts of a padded batch of B sentences, T = longest sentence.

    Boolean masks are `[B, T]` (False on padding); `same_word` and `duplicate` are `[B, T, T]`
    (query, key) pairs of different positions in one word / with one token id.
    """

    lengths: np.ndarray
    valid: np.ndarray
    special: np.ndarray
    punctuation: np.ndarray
    clark_punctuation: np.ndarray
    cls: np.ndarray
    sep: np.ndarray
    same_word: np.ndarray
    duplicate: np.ndarray
    causal: bool

    @property
    def size(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def width(self) -> int:
        return int(self.valid.shape[1])


def token_batch(
    sentences: Sequence[Sequence[Token]],
    *,
    cls_token: str | None,
    sep_token: str | None,
    causal: bool = False,
) -> TokenBatch:
    """Masks for `sentences` (each a token list as `core.tokens.build_tokens` makes it)."""
    size = len(sentences)
    width = max(len(tokens) for tokens in sentences)
    shape = (size, width)
    valid, special, punctuation, clark_punctuation, cls, sep = (
        np.zeros(shape, dtype=bool) for _ in range(6)
    )
    words = np.full(shape, -1)
    ids = np.full(shape, -1)
    for b, tokens in enumerate(sentences):
        for t, token in enumerate(tokens):
            valid[b, t] = True
            special[b, t] = token.is_special
            punctuation[b, t] = not token.is_special and is_punctuation(token.text)
            clark_punctuation[b, t] = not token.is_special and token.text in (".", ",")
            cls[b, t] = token.is_special and cls_token is not None and token.raw == cls_token
            sep[b, t] = token.is_special and sep_token is not None and token.raw == sep_token
            if token.word_index is not None:
                words[b, t] = token.word_index
            if not token.is_special:
                ids[b, t] = token.token_id
    different = ~np.eye(width, dtype=bool)[None]
    same_word = (words[:, :, None] == words[:, None, :]) & (words[:, :, None] >= 0) & different
    duplicate = (ids[:, :, None] == ids[:, None, :]) & (ids[:, :, None] >= 0) & different
    lengths = valid.sum(1)
    return TokenBatch(
        lengths,
        valid,
        special,
        punctuation,
        clark_punctuation,
        cls,
        sep,
        same_word,
        duplicate,
        causal,
    )


# How the key of a statistic's strongest token pair is found, given its strongest query row.
_PREVIOUS, _NEXT, _SELF, _ROW_MAX, _DISTANCE = "previous", "next", "self", "row_max", "distance"


@dataclass
class _Statistic:
    per_row: np.ndarray
    """`[B, H, T]` the statistic for each query row."""
    rows: np.ndarray
    """`[B, T]` the rows averaged over."""
    key: str | np.ndarray
    """One of the constants above, or a `[B, T]` / `[B, T, T]` mask of the keys it counts."""


def batch_values(
    attentions: Sequence[np.ndarray],
    batch: TokenBatch,
    mode: str,
    windows: Sequence[int | None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Every statistic of `statistic_descriptions(mode)` for each sentence of a padded batch.

    `attentions` holds one `[B, H, T, T]` array per layer (float32 from the model; padding keys
    are set to 0 in place, a copy is made only for other dtypes). Returns
    `values` float64 `[B, layers, H, S]` (NaN where a sentence has no row to average over, e.g.
    no split word) and `pairs` int32 `[B, layers, H, S, 2]`: the (query, key) positions where
    the statistic is strongest in that sentence — the query row with the largest value among
    those averaged, and in that row the counted key with the most attention (-1 when none).
    `windows[l]` is layer l's sliding window (a query sees at most that many keys) or None, as
    the model's architecture adapter says; None for all layers when not given.
    """
    names = list(statistic_descriptions(mode))
    layers = len(attentions)
    heads = attentions[0].shape[1]
    values = np.empty((batch.size, layers, heads, len(names)))
    pairs = np.empty((batch.size, layers, heads, len(names), 2), dtype=np.int32)
    key_masks = _key_masks(batch)
    for layer, weights in enumerate(attentions):
        # Padding keys get (about) zero weight from the attention mask already; zero them
        # exactly so that no model's choice of mask value can leak into a sentence's numbers.
        own = np.array(weights, dtype=np.float32, copy=None)  # the model's array, not copied
        np.multiply(own, batch.valid[:, None, None, :], out=own)
        window = None if windows is None else windows[layer]
        statistics = _layer_statistics(own, batch, key_masks, mode, window)
        for s, name in enumerate(names):
            if name in statistics:
                values[:, layer, :, s], pairs[:, layer, :, s] = _reduce(statistics[name], own)
        # A sink in a sentence: its first-token share there above ε, with that share's pair.
        share, sink = names.index("first_token_share"), names.index("is_sink")
        shares = values[:, layer, :, share]
        values[:, layer, :, sink] = np.where(
            np.isnan(shares), np.nan, shares > DEFAULT_SINK_EPSILON
        )
        pairs[:, layer, :, sink] = pairs[:, layer, :, share]
    return values, pairs


_KEY_MASKS = ("special", "punctuation", "clark_punctuation", "cls", "sep")


def _key_masks(batch: TokenBatch) -> np.ndarray:
    """`[B, 1, T, 5]` float32: the key masks of `_KEY_MASKS`, for one batched matmul."""
    stacked = np.stack([getattr(batch, name) for name in _KEY_MASKS], axis=-1)
    return stacked[:, None].astype(np.float32)


def _layer_statistics(
    weights: np.ndarray,
    batch: TokenBatch,
    key_masks: np.ndarray,
    mode: str,
    window: int | None = None,
) -> dict[str, _Statistic]:
    """Per-row statistics of one layer, `weights` float32 `[B, H, T, T]`, padding keys 0;
    `window` the layer's sliding window (entropy ratios divide by what a row can see).

    Each full pass over the weights costs about as much as the rest together, so there are
    few: one matmul for every key-mask share, one each for entropy, distance and the two
    per-row masks (and the smoothed entropy in Clark mode). Float32 products summed in float64
    keep the means within 1e-7 of a float64 computation.
    """
    valid = batch.valid
    width = batch.width
    positions = np.arange(width)
    distance = np.abs(positions[:, None] - positions[None, :]).astype(np.float32)
    no_row = np.zeros((*weights.shape[:2], 1), dtype=np.float32)
    previous = np.concatenate([no_row, np.diagonal(weights, -1, -2, -1)], axis=-1)
    following = np.concatenate([np.diagonal(weights, 1, -2, -1), no_row], axis=-1)
    self_weight = np.diagonal(weights, 0, -2, -1)
    last = (batch.lengths - 1)[:, None]
    shares = weights @ key_masks  # [B, H, T, 5]
    share = {name: shares[..., i] for i, name in enumerate(_KEY_MASKS)}

    entropy_bits = _entropy_nats(weights) / np.log(2)
    visible = (positions + 1)[None, :] if batch.causal else batch.lengths[:, None]
    visible = np.broadcast_to(visible, valid.shape)
    if window is not None:
        visible = np.minimum(visible, window)
    ratio_rows = valid & (visible > 1)
    entropy_ratio = entropy_bits / np.log2(np.where(ratio_rows, visible, 2))[:, None, :]

    # The sink measures read every query row, as `core.sink_profile` does.
    first_key = np.zeros_like(valid)
    first_key[:, 0] = True
    behind = positions[:, None] - positions[None, :]
    recent = (behind >= 0) & (behind < DEFAULT_SINK_WINDOW)
    rest = weights[..., 1:].sum(-1, dtype=np.float64)
    first = weights[..., 0].astype(np.float64)
    # −Σ_{j≥1} w log w is the whole row's entropy less the first key's term; renormalised by
    # the rest s it is that over s plus log s.
    with np.errstate(divide="ignore", invalid="ignore"):
        first_term = -np.where(first > 0, first * np.log(np.where(first > 0, first, 1.0)), 0.0)
        off_first = ((entropy_bits * np.log(2) - first_term) / rest + np.log(rest)) / np.log(2)
    sinks = {
        "first_token_share": _Statistic(weights[..., 0], valid, first_key),
        "local_share": _Statistic(
            np.einsum("bhqk,qk->bhq", weights, recent.astype(np.float32)),
            valid,
            np.broadcast_to(recent, batch.same_word.shape),
        ),
        "entropy_without_first": _Statistic(np.where(rest > 0, off_first, np.nan), valid, _ROW_MAX),
    }

    content = valid & ~batch.special
    split_word_rows = valid & batch.same_word.any(-1)
    duplicate_rows = valid & batch.duplicate.any(-1)
    extras = {
        "entropy_ratio": _Statistic(entropy_ratio, ratio_rows, _ROW_MAX),
        "to_same_word": _Statistic(
            _row_mass(weights, batch.same_word), split_word_rows, batch.same_word
        ),
        "to_duplicate": _Statistic(
            _row_mass(weights, batch.duplicate), duplicate_rows & content, batch.duplicate
        ),
        **sinks,
    }

    if mode == "default":
        # head_statistics: content rows, unless a sentence has none (then every row).
        has_content = content.any(1, keepdims=True)
        rows = np.where(has_content, content, valid)
        mean_distance = np.einsum("bhqk,qk->bhq", weights, distance).astype(np.float64)
        return {
            "entropy": _Statistic(entropy_bits, rows, _ROW_MAX),
            "mean_distance": _Statistic(mean_distance, rows, _DISTANCE),
            "to_special": _Statistic(share["special"], rows, batch.special),
            "to_self": _Statistic(self_weight, rows, _SELF),
            "to_previous": _Statistic(previous, rows & (positions > 0), _PREVIOUS),
            "to_next": _Statistic(following, rows & (positions < last), _NEXT),
            "to_punctuation": _Statistic(share["punctuation"], rows, batch.punctuation),
            **extras,
        }

    # Clark et al.: every row counts and the last row's "next" is 0 (its key is padding, 0).
    n = batch.lengths[:, None, None, None].astype(np.float32)
    smoothed = 0.9999 * weights + 0.0001 / n
    smoothed *= valid[:, None, None, :]  # entr(0) = 0 on padding keys
    entropy_nats = _entropy_nats(smoothed)
    first_row = valid & (positions == 0)
    not_sep = valid & ~batch.sep
    return {
        "to_self": _Statistic(self_weight, valid, _SELF),
        "to_next": _Statistic(following, valid, _NEXT),
        "to_previous": _Statistic(previous, valid, _PREVIOUS),
        "to_cls": _Statistic(share["cls"], valid, batch.cls),
        "to_sep": _Statistic(share["sep"], valid, batch.sep),
        "sep_to_sep": _Statistic(share["sep"], batch.sep, batch.sep),
        "rest_to_sep": _Statistic(share["sep"], not_sep, batch.sep),
        "to_punctuation": _Statistic(share["clark_punctuation"], valid, batch.clark_punctuation),
        "entropy": _Statistic(entropy_nats, valid, _ROW_MAX),
        "cls_entropy": _Statistic(entropy_nats, first_row, _ROW_MAX),
        **extras,
    }


def _entropy_nats(weights: np.ndarray) -> np.ndarray:
    """`-sum(w log w)` over the last axis (0 log 0 = 0): `[..., T]` float32 -> float64 `[...]`.

    The one logarithm per attention weight is the costliest step of the statistics; torch's
    vectorised log is 2-3x faster than numpy's here (float32 sums of at most 512 terms are
    within 1e-6 of float64).
    """
    tensor = torch.from_numpy(np.ascontiguousarray(weights, dtype=np.float32))
    logs = torch.log(tensor.clamp_min(torch.finfo(torch.float32).tiny))
    return -(logs.mul_(tensor)).sum(-1).numpy().astype(np.float64)


def _row_mass(weights: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Attention each row puts on its own key set `keys` `[B, T, T]`: `[B, H, T]`."""
    if not keys.any():  # common: no split word or no repeated token in the whole batch
        return np.zeros(weights.shape[:3], dtype=np.float32)
    return np.einsum("bhqk,bqk->bhq", weights, keys.astype(np.float32))


def _reduce(statistic: _Statistic, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sentence value `[B, H]` (mean over the statistic's rows, leaving out a head's rows
    where it is NaN: undefined) and strongest pair `[B, H, 2]`."""
    rows = statistic.rows[:, None, :] & ~np.isnan(statistic.per_row)
    count = rows.sum(-1)
    total = np.where(rows, statistic.per_row, 0.0).sum(-1, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(count > 0, total / np.maximum(count, 1), np.nan)

    query = np.where(rows, statistic.per_row, -np.inf).argmax(-1)  # [B, H]
    row = np.take_along_axis(weights, query[:, :, None, None], axis=2)[:, :, 0, :]  # [B, H, T]
    width = row.shape[-1]
    key_kind = statistic.key
    if isinstance(key_kind, np.ndarray):
        if key_kind.ndim == 3:  # per-row key mask: take the strongest row's
            eligible = np.take_along_axis(key_kind[:, None], query[:, :, None, None], axis=2)
            eligible = eligible[:, :, 0, :]
        else:
            eligible = np.broadcast_to(key_kind[:, None, :], row.shape)
        key = np.where(eligible, row, -np.inf).argmax(-1)
        key = np.where(eligible.any(-1), key, -1)
    elif key_kind == _PREVIOUS:
        key = query - 1
    elif key_kind == _NEXT:
        key = query + 1
    elif key_kind == _SELF:
        key = query
    elif key_kind == _DISTANCE:
        positions = np.arange(width)
        key = (row * np.abs(positions[None, None, :] - query[:, :, None])).argmax(-1)
    else:
        key = row.argmax(-1)
    empty = count == 0
    query = np.where(empty, -1, query)
    key = np.where(empty, -1, key)
    return value, np.stack([query, key], axis=-1).astype(np.int32)
