"""Per-row statistics of attention weights, for any block of rows (torch, float32).

`block_values` takes a block of rows of all heads of a layer, `weights` float32 `[heads, rows,
keys]` over a contiguous span of keys (0 where the model computes no weight), and returns one
value per head and row `[heads, rows]` for each statistic asked for. Blocks come from a dense
array or are recomputed a few rows at a time from a capture (`core.exact`), so whole-head
summaries of long inputs never hold n². A statistic a row does not define (the entropy off the
first token of a query that sees only the first token, the previous token of query 0) is NaN.

Sums over keys are float32 (torch's CPU sums are cascaded: their error grows with log n, not
n); means over rows are taken in float64 by the callers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

ROW_STATISTICS = {
    "to_first": "Share of attention a query puts on the first token.",
    "entropy": "Entropy of a query's attention in bits (0 = all on one token).",
    "mean_distance": "Mean |query − key| distance in tokens, weighted by attention.",
    "local_share": "Share of attention on keys within the local window of the query.",
}
"""What `AttentionResult.statistics()` averages by default."""
STATISTICS = {
    **ROW_STATISTICS,
    "recent_share": (
        "Share of attention on the query and the window − 1 keys before it (a causal, "
        "streaming window)."
    ),
    "entropy_without_first": (
        "Entropy in bits of the weights off the first token, renormalised to sum to 1 "
        "(undefined where a query puts no weight there)."
    ),
    "to_self": "Share of attention a token puts on itself.",
    "to_previous": "Share of attention going to the previous token (undefined for the first).",
    "to_next": "Share of attention going to the next token (undefined for the last).",
}
"""Every statistic `block_values` computes by name; shares of chosen key sets come on top."""
NEAR_STATISTICS = frozenset(
    {"to_first", "local_share", "recent_share", "to_self", "to_previous", "to_next"}
)
"""Statistics that read only key 0 and the keys within the window of the query."""
DEFAULT_LOCAL_WINDOW = 8
"""Keys with |query − key| < this count as local for `local_share`."""
LN2 = math.log(2.0)


def block_values(
    weights: torch.Tensor,
    log_weights: torch.Tensor | None,
    rows: torch.Tensor,
    first: int,
    keys: int,
    names: Sequence[str],
    window: int = DEFAULT_LOCAL_WINDOW,
    key_sets: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Each statistic of `names` (and each share of `key_sets`) per head and row, `[heads, rows]`.

    `weights` float32 `[heads, rows, span]` are the weights of query positions `rows` on keys
    `first … first + span − 1` of `keys`, 0 where the model computes none; every key a
    statistic reads must lie in the span (keys outside it count as weight 0: a causal or
    windowed row's unseen keys). `log_weights`, the natural logarithm of the weights as the
    model forms them (score − log-sum-exp), finite everywhere (any value where the weight is
    0), spares computing it; None computes `w log w` from the weights. `key_sets[name]` is a
    bool `[keys]`: the share of each row's attention on those keys.
    """
    unknown = sorted(set(names) - set(STATISTICS))
    if unknown:
        raise ValueError(f"Unknown row statistics {unknown}; choose from {sorted(STATISTICS)}.")
    span = weights.shape[-1]
    cols = torch.arange(first, first + span, device=weights.device)
    values: dict[str, torch.Tensor] = {}
    plogp: torch.Tensor | None = None
    if {"entropy", "entropy_without_first"} & set(names):
        plogp = weights * log_weights if log_weights is not None else torch.xlogy(weights, weights)
    # Key 0 outside the span means the block's rows put no weight on it.
    rest = slice(1, None) if first == 0 else slice(None)
    for name in names:
        if name == "to_first":
            values[name] = weights[..., 0] if first == 0 else weights.new_zeros(weights.shape[:2])
        elif name == "entropy":
            assert plogp is not None
            values[name] = plogp.sum(-1).div_(-LN2)
        elif name == "entropy_without_first":
            assert plogp is not None
            # With s = Σ_{j≥1} w_j: −Σ (w_j/s) log(w_j/s) = −(Σ w_j log w_j) / s + log s, a sum
            # of same-signed terms divided by another (no cancellation however small s is).
            total = weights[..., rest].sum(-1)
            spread = plogp[..., rest].sum(-1)
            entropy = (total.log() - spread / total).div_(LN2)
            values[name] = entropy.masked_fill_(~(total > 0), math.nan)
        elif name == "mean_distance":
            distance = (rows[:, None] - cols[None, :]).abs_().to(weights.dtype)
            values[name] = torch.einsum("hrk,rk->hr", weights, distance)
        elif name in ("local_share", "recent_share"):
            behind = rows[:, None] - cols[None, :]
            if name == "local_share":
                near = behind.abs() < window
            else:
                near = (behind >= 0) & (behind < window)
            values[name] = torch.where(near, weights, 0.0).sum(-1)
        else:  # to_self, to_previous, to_next: one key per row, at an offset
            offset = {"to_self": 0, "to_previous": -1, "to_next": 1}[name]
            values[name] = _at_offset(weights, rows, first, keys, offset)
    if key_sets:
        # One product for every set: `[heads, rows, span] @ [span, sets]`.
        chosen = torch.stack([keys_in[first : first + span] for keys_in in key_sets.values()], -1)
        shares = weights @ chosen.to(weights.dtype)
        values.update({name: shares[..., index] for index, name in enumerate(key_sets)})
    return values


def _at_offset(weights: torch.Tensor, rows: torch.Tensor, first: int, keys: int, offset: int):
    """`[heads, rows]`: the weight of each row `i` on key `i + offset` (NaN where that key does
    not exist; 0 where it lies outside the span)."""
    targets = rows + offset
    inside = (targets >= first) & (targets < first + weights.shape[-1])
    index = (targets - first).clamp_(0, weights.shape[-1] - 1)
    picked = weights.gather(-1, index.expand(weights.shape[0], -1)[..., None])[..., 0]
    picked = torch.where(inside, picked, 0.0)
    return picked.masked_fill_(~((targets >= 0) & (targets < keys)), math.nan)


def row_statistics(
    weights: np.ndarray, positions: np.ndarray, window: int = DEFAULT_LOCAL_WINDOW
) -> dict[str, np.ndarray]:
    """Every statistic of `ROW_STATISTICS` per row: `[..., rows, keys]` -> `[..., rows]` each.

    `weights` are whole rows (keys 0 … keys − 1, NaN or 0 where not computed) of the query
    `positions`; float64 results.
    """
    array = np.nan_to_num(np.asarray(weights, dtype=np.float32), nan=0.0)
    *lead, count, keys = array.shape
    block = torch.from_numpy(array.reshape(-1, count, keys))
    rows = torch.as_tensor(np.asarray(positions), dtype=torch.int64)
    with torch.inference_mode():
        values = block_values(block, None, rows, 0, keys, tuple(ROW_STATISTICS), window)
    return {name: value.double().numpy().reshape(*lead, count) for name, value in values.items()}
