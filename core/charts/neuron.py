"""BertViz-style neuron view: one query vector against every key vector of one head."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from core.charts._common import (
    PAD,
    add_params,
    check_labels,
    color_scale,
    heat_size,
    labels_param,
    position_axis,
    position_dtype,
    round_sig,
)

DIM_PX = 5
"""Width of one vector dimension in the vector heatmaps (64 dims -> 320 px)."""


def neuron_view_chart(
    query_vector: np.ndarray,
    key_vectors: np.ndarray,
    products: np.ndarray,
    scores: np.ndarray,
    weights: np.ndarray,
    labels: Sequence[str],
    *,
    query: int,
    masked: np.ndarray | None = None,
    title: str = "",
) -> alt.VConcatChart:
    """How query `query` meets every key: vectors, elementwise products, scores, softmax.

    Args:
        query_vector: float `[d]`, the head's query vector of token `query`.
        key_vectors: float `[n, d]`, the head's key vector of every token.
        products: float `[n, d]`, `query_vector * key_vectors` (row sums are q·k).
        scores: float `[n]`, the logits the softmax saw; -inf (or NaN) where masked.
        weights: float `[n]`, softmax of `scores`.
        labels: `n` token texts.
        query: position of the query token (its label is bold).
        masked: bool `[n]`, keys hidden from this query (a causal model's later tokens). Their
            products, scores and weights are left out: the model never used them, and a bar of
            0 would look like a measured "no attention".

    Layout: the query vector as a 1 × d strip on top; below, side by side and row-aligned by
    key, the key vectors and the products as `[n, d]` heatmaps (diverging, 0 in the middle),
    then bars of the scores and of the softmax weights.

    Data (one table per panel): query ``d``, ``query``; keys ``k``, ``d``, ``key``; products
    ``k``, ``d``, ``product``; bars ``k``, ``score``, ``weight`` (visible keys only).
    """
    q = np.asarray(query_vector, dtype=np.float64).ravel()
    keys = np.asarray(key_vectors, dtype=np.float64)
    prod = np.asarray(products, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64).ravel()
    w = np.asarray(weights, dtype=np.float64).ravel()
    d = q.shape[0]
    if keys.ndim != 2 or keys.shape[1] != d:
        raise ValueError(f"key_vectors must be [n, {d}], got shape {keys.shape}")
    n = keys.shape[0]
    if prod.shape != (n, d):
        raise ValueError(f"products must be [{n}, {d}], got shape {prod.shape}")
    if s.shape != (n,) or w.shape != (n,):
        raise ValueError(f"scores and weights must be [{n}], got {s.shape} and {w.shape}")
    tokens = check_labels(labels, n, "labels")
    if not 0 <= query < n:
        raise ValueError(f"query={query} outside 0..{n - 1}")
    hidden = np.zeros(n, dtype=bool) if masked is None else np.asarray(masked, dtype=bool)
    if hidden.shape != (n,):
        raise ValueError(f"masked must be [{n}], got shape {hidden.shape}")
    visible = ~hidden & np.isfinite(s)

    tok_param = labels_param(tokens)
    k_type = position_dtype(n)
    dims = np.arange(d, dtype=np.int16)
    # Tiny heads (tests, toy models) still get a readable strip.
    width, height = max(96, DIM_PX * d), heat_size(n)
    bold = f"datum.value === {int(query)} ? 'bold' : 'normal'"
    y_labelled = alt.Y(
        "k:O",
        scale=alt.Scale(domain=list(range(n))),
        axis=position_axis(tok_param, title="key", font_weight_expr=bold),
    )
    y_plain = alt.Y("k:O", scale=alt.Scale(domain=list(range(n))), axis=None)
    x_dim = alt.X("d:O", scale=alt.Scale(domain=dims.tolist()), axis=None)

    def vector_heatmap(values: np.ndarray, rows: np.ndarray, field: str, y: alt.Y) -> alt.Chart:
        k_idx, d_idx = np.nonzero(np.isfinite(values) & rows[:, None])
        data = pd.DataFrame(
            {
                "k": k_idx.astype(k_type),
                "d": d_idx.astype(np.int16),
                field: round_sig(values[k_idx, d_idx]),
            }
        )
        return (
            alt.Chart(data, title=f"{field} vectors" if field == "key" else "query × key")
            .mark_rect()
            .transform_calculate(token=f"{tok_param.name}[datum.k]")
            .encode(
                x=x_dim,
                y=y,
                color=alt.Color(
                    f"{field}:Q",
                    scale=color_scale(
                        data[field].to_numpy(), diverging=True, domain=None, scheme=None
                    ),
                    title=field,
                ),
                tooltip=[
                    alt.Tooltip("k:O", title="key #"),
                    alt.Tooltip("token:N", title="key"),
                    alt.Tooltip("d:O", title="dimension"),
                    alt.Tooltip(f"{field}:Q", title=field, format=".4f"),
                ],
            )
            .properties(width=width, height=height)
        )

    query_data = pd.DataFrame({"d": dims, "query": round_sig(q)})
    query_strip = (
        alt.Chart(query_data, title=f"query vector of '{tokens[query]}' ({d} dimensions)")
        .mark_rect()
        .encode(
            x=x_dim,
            color=alt.Color(
                "query:Q",
                scale=color_scale(
                    query_data["query"].to_numpy(), diverging=True, domain=None, scheme=None
                ),
                title="query",
            ),
            tooltip=[
                alt.Tooltip("d:O", title="dimension"),
                alt.Tooltip("query:Q", title="query", format=".4f"),
            ],
        )
        .properties(width=width, height=16)
    )
    keys_chart = vector_heatmap(keys, np.ones(n, dtype=bool), "key", y_labelled)
    products_chart = vector_heatmap(prod, visible, "product", y_plain)

    positions = np.nonzero(visible)[0]
    bar_data = pd.DataFrame(
        {
            "k": positions.astype(k_type),
            "score": round_sig(s[visible]),
            "weight": round_sig(w[visible]),
        }
    )

    def bars(field: str, bar_title: str) -> alt.Chart:
        return (
            alt.Chart(bar_data, title=bar_title)
            .mark_bar()
            .transform_calculate(token=f"{tok_param.name}[datum.k]")
            .encode(
                y=y_plain,
                x=alt.X(f"{field}:Q", title=field),
                tooltip=[
                    alt.Tooltip("k:O", title="key #"),
                    alt.Tooltip("token:N", title="key"),
                    alt.Tooltip("score:Q", title="score", format=".4f"),
                    alt.Tooltip("weight:Q", title="softmax", format=".4f"),
                ],
            )
            .properties(width=140, height=height)
        )

    row = alt.hconcat(
        keys_chart,
        products_chart,
        bars("score", "score = q·k × scale"),
        bars("weight", "softmax"),
        spacing=8,
    ).resolve_scale(color="independent")
    chart = (
        alt.vconcat(query_strip, row, spacing=6)
        .resolve_scale(color="independent")
        .properties(autosize=PAD)
    )
    if title:
        chart = chart.properties(title=title)
    return add_params(chart, [tok_param])
