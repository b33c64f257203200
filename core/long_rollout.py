"""Attention rollout of chosen rows at any length, streamed from an `AttentionResult`.

`core.rollout.attention_rollout` multiplies whole `[n, n]` matrices and needs the whole
`[layers, heads, n, n]` attention; at thousands of tokens a result holds only what recomputes
it (`core.exact.CapturedStack`). Row `i` of the rollout after layer `l` is
``e_i · A_l · A_{l-1} ⋯ A_1`` (conventions of `core.rollout`: head mean, residual mixed in as
``A = (W + I) / rowsum(W + I)``), so a few rows need only vector × matrix products, newest
layer first: ``r ← r · A_l``. Each product reads `A_l` one block of rows at a time, recomputed
exactly from the capture, so memory stays at `O(n · block)` whatever the length.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from core.attention import AttentionResult
from core.capture import BLOCK_ELEMENTS
from core.errors import InvalidSelectionError
from core.exact import check_index
from core.families import SELF
from core.rollout import check_indices
from core.work import Cancel, Progress, checkpoint

__all__ = ["rollout_rows"]


def rollout_rows(
    result: AttentionResult,
    rows: Sequence[int],
    layer: int = -1,
    *,
    heads: Sequence[int] | None = None,
    ignore_tokens: Sequence[int] | None = None,
    stack: str = SELF,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> np.ndarray:
    """Rows of the attention rollout after `layer`, exact, without the whole attention array.

    Equal to ``core.attention_rollout(attentions, heads, ignore_tokens)[layer][rows]`` (up to
    float rounding) for every input, read in blocks of rows per layer.

    Args:
        result: one input's attention (`core.run_attention`), whole or captured.
        rows: query positions whose rollout rows are wanted (distinct, in `0..n-1`).
        layer: 0-based layer (negative counts from the end); the rollout through layers
            `0..layer`.
        heads: heads averaged per layer (default: all).
        ignore_tokens: positions whose key columns are removed before the residual is mixed
            in (the rule of `core.rollout.residual_attention`).
        stack: a square stack of `result` (default the self-attention).
        progress: `progress(done, total)` in query rows of the layers read (core.work).
        cancel: `cancel()` true stops the work (core.work).

    Returns:
        float64 `[len(rows), n]`: row `k` is position `sorted(rows)[k]`'s share from each
        input token after `layer`; each row sums to 1.

    Raises:
        InvalidSelectionError: bad `rows`, `layer`, `heads` or `ignore_tokens`, or a stack whose
            queries are not its keys.
        ComputationCancelled: `progress` returned False or `cancel()` was true.
    """
    pieces = result.pieces(stack)
    layers, n_heads, n, keys = pieces.shape
    if n != keys:
        raise InvalidSelectionError(
            "Rollout chains token-to-token maps through the layers and needs a square stack; "
            f"this one maps {n} queries to {keys} keys."
        )
    if not -layers <= int(layer) < layers:
        check_index(layer, layers, "layer")  # its message names the valid layers
    top = int(layer) % layers
    chosen = check_indices(rows, n, "rows")
    if chosen.size == 0:
        raise InvalidSelectionError("Choose at least one row for the rollout.")
    head_idx = np.arange(n_heads) if heads is None else check_indices(heads, n_heads, "heads")
    if head_idx.size == 0:
        raise InvalidSelectionError("heads must select at least one head.")
    ignored = np.zeros(n, dtype=bool)
    if ignore_tokens is not None:
        ignored[check_indices(ignore_tokens, n, "ignore_tokens")] = True
    # Rows per block: every head's float32 weights of a block (and a temporary) stay near one
    # capture block, whatever the length.
    step = max(1, BLOCK_ELEMENTS // ((n_heads + 2) * n))
    head_list = None if head_idx.size == n_heads else head_idx.tolist()

    shares = torch.zeros((chosen.size, n), dtype=torch.float64)
    shares[torch.arange(chosen.size), torch.from_numpy(chosen)] = 1.0
    total, done = (top + 1) * n, 0
    checkpoint(0, total, "The rollout", progress, cancel)
    for current in range(top, -1, -1):
        # Only rows that hold a share move it on: with a causal model none past the last one.
        held = torch.nonzero(shares.any(dim=0)).flatten()
        reached = int(held[-1]) + 1
        moved = torch.zeros_like(shares)
        for start in range(0, reached, step):
            stop = min(reached, start + step)
            # The rows of this block that hold a share (the top layer: the chosen rows only).
            inside = held[(held >= start) & (held < stop)]
            if inside.numel():
                block = range(int(inside[0]), int(inside[-1]) + 1)
                first, mean = pieces.head_mean_block(current, block, head_list)
                mixed = _residual(mean.double(), block, first, ignored)
                moved[:, first : first + mixed.shape[1]] += (
                    shares[:, block.start : block.stop] @ mixed
                )
            done += stop - start
            checkpoint(done, total, "The rollout", progress, cancel)
        done += n - reached
        shares = moved
    checkpoint(total, total, "The rollout", progress, cancel)
    return shares.numpy()


def _residual(mean: torch.Tensor, rows: range, first: int, ignored: np.ndarray) -> torch.Tensor:
    """Float64 `[len(rows), keys]`: rows of `A_layer` (`core.rollout.residual_attention`) from
    the head mean of the same rows over keys `first …` (`mean`, changed in place)."""
    dropped = torch.from_numpy(ignored[first : first + mean.shape[1]])
    if bool(dropped.any()):
        mean[:, dropped] = 0.0
        totals = mean.sum(dim=1, keepdim=True)
        mean = torch.where(totals > 0, mean / totals, mean)
    diagonal = torch.arange(rows.start, rows.stop)
    mean[diagonal - rows.start, diagonal - first] += 1.0
    return mean.div_(mean.sum(dim=1, keepdim=True))
