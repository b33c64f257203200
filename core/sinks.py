"""Attention sinks and local heads: one row of measures per head, read blockwise.

Most heads of a trained decoder park much of their weight on the first token (an attention
sink, Xiao et al. 2024); others read only a recent window (DuoAttention's streaming heads). The
measures follow Gu et al. 2024 ("When Attention Sink Emerges"): a head's first-token share is
α₁ = the mean over every query position t of A[t, 0], and it is a sink head when α₁ > ε
(their ε = 0.3). Conventions and departures are in docs/long-context.md.

Everything is averaged over query rows recomputed a block at a time from the result
(`core.exact`), so a long input never holds the layers × heads × n² tensor.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.attention import AttentionResult
from core.errors import InvalidSelectionError
from core.families import SELF

DEFAULT_SINK_EPSILON = 0.3
"""Gu et al. 2024's threshold: a head whose mean first-token share exceeds it is a sink."""
DEFAULT_SINK_WINDOW = 64
"""Keys t − 63 … t count as local to query t (the window of StreamingLLM-style caches)."""

SINK_COLUMNS = {
    "first_token_share": "Mean over query positions t of the weight on the first token, A[t, 0].",
    "is_sink": "Whether the first-token share exceeds ε (Gu et al. 2024's sink head).",
    "local_share": "Mean over t of the weight on the window of keys t − window + 1 … t.",
    "entropy_without_first": (
        "Mean entropy in bits of the weights off the first token, renormalised to sum to 1 "
        "(over the query positions that put any weight there)."
    ),
}


SINK_STATISTICS = {
    "first_token_share": "to_first",
    "local_share": "recent_share",
    "entropy_without_first": "entropy_without_first",
}
"""Each measure of `SINK_COLUMNS` but `is_sink` as the row statistic (`core.row_stats`) whose
mean over query rows it is."""


def sink_profile(
    result: AttentionResult,
    epsilon: float = DEFAULT_SINK_EPSILON,
    window: int = DEFAULT_SINK_WINDOW,
    *,
    stack: str = SELF,
) -> pd.DataFrame:
    """One row per (layer, head) of `stack`: layer, head and the measures of `SINK_COLUMNS`.

    `first_token_share` is Gu et al.'s α₁ (mean over all query positions t of A[t, 0], t = 0
    included); `is_sink` is `first_token_share > epsilon`; `local_share` is the mean over t of
    the weight on keys t − window + 1 … t (the query itself and the window − 1 keys before
    it, for every architecture, encoders included); `entropy_without_first` the mean entropy
    (bits) of each row's weights off the first token, renormalised, over the rows that have any.
    Works on captured (long) and dense (short, hand-built) results alike, blockwise.
    """
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not 0 <= epsilon < 1:
        raise InvalidSelectionError(f"The sink threshold ε must be in [0, 1), not {epsilon!r}.")
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
        raise InvalidSelectionError(f"The local window must be a whole number ≥ 1, not {window!r}.")
    means = result.pieces(stack).statistics(int(window), tuple(SINK_STATISTICS.values()))
    stats = {column: means[name] for column, name in SINK_STATISTICS.items()}
    layers, heads = stats["first_token_share"].shape
    layer_ids, head_ids = np.meshgrid(np.arange(layers), np.arange(heads), indexing="ij")
    frame = pd.DataFrame(
        {
            "layer": layer_ids.ravel(),
            "head": head_ids.ravel(),
            "first_token_share": stats["first_token_share"].ravel(),
            "is_sink": stats["first_token_share"].ravel() > epsilon,
            "local_share": stats["local_share"].ravel(),
            "entropy_without_first": stats["entropy_without_first"].ravel(),
        }
    )
    frame.attrs.update({"epsilon": float(epsilon), "window": int(window), "stack": stack})
    return frame
