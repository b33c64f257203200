"""AttentionViz-style global view: queries and keys of many tokens in one 2-D embedding.

Yeh et al. (2023) embed a head's query and key vectors jointly, so that a query lands near the
keys it attends to. Two transformations leave every attention weight unchanged and make the
joint picture meaningful (their "normalisation"): scaling queries by c and keys by 1/c, with c
chosen so both clouds have the same mean norm; then adding one vector to every key (a query's
scores all shift by the same amount, which softmax ignores) so the keys' centroid is the
queries'.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from core.architectures import require_architecture
from core.corpus.run import effective_max_tokens, encode_sentence, padded_inputs, run_network
from core.errors import PositionOutOfRangeError, ProjectionUnavailableError
from core.models import LoadedModel

DEFAULT_MAX_POINTS = 2000
"""Points drawn (queries plus keys); the tokens are sampled to stay under it."""


def available_projections() -> tuple[str, ...]:
    """2-D embedding methods usable here: "pca" always, "umap" and "tsne" when installed."""
    methods = ["pca"]
    try:
        import umap  # noqa: F401

        methods.append("umap")
    except ImportError:
        pass
    try:
        from sklearn.manifold import TSNE  # noqa: F401

        methods.append("tsne")
    except ImportError:
        pass
    return tuple(methods)


def query_key_vectors(
    model: LoadedModel,
    sentences: Sequence[str],
    layer: int,
    head: int,
    *,
    max_tokens: int = 128,
    max_points: int = DEFAULT_MAX_POINTS,
    seed: int = 0,
    batch_size: int = 16,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Query and key vectors of one head for a sample of the corpus's tokens.

    The vectors are the ones the head's dot product sees, as the model's architecture adapter
    computes them from the layer's input (`Layer.queries_keys`: after q/k norms and rotary
    positions; a grouped-query head's keys are its key-value group's), in float32. Sentences
    are visited in a seeded random order until `max_points // 2` tokens are taken. Returns
    `(tokens, queries [m, d_h], keys [m, d_h])`, `tokens` having one row per token:
    `sentence_index, position, token, is_special, relative_position` (position / (n - 1)).
    """
    if not 0 <= layer < model.num_layers or not 0 <= head < model.num_heads:
        raise PositionOutOfRangeError(
            f"Layer {layer}, head {head} is out of range: the model has layers "
            f"0–{model.num_layers - 1} and heads 0–{model.num_heads - 1}."
        )
    reader = require_architecture(model, "The global view").layers[layer]
    tokens_limit = effective_max_tokens(model, max_tokens)
    budget = max(1, int(max_points) // 2)
    order = np.random.default_rng(seed).permutation(len(sentences))

    rows: list[dict[str, Any]] = []
    queries: list[np.ndarray] = []
    keys: list[np.ndarray] = []
    for start in range(0, len(order), batch_size):
        if len(rows) >= budget:
            break
        indices = order[start : start + batch_size]
        encoded = [encode_sentence(model, sentences[i], tokens_limit) for i in indices]
        output = run_network(model, padded_inputs(model, encoded), output_hidden_states=True)
        # hidden_states[l] is layer l's input (right padding: a row's tokens are unchanged).
        hidden = output.hidden_states[layer]
        for b, (index, sentence) in enumerate(zip(indices, encoded, strict=True)):
            n = len(sentence.tokens)
            take = min(n, budget - len(rows))
            if take <= 0:
                break
            with torch.inference_mode():
                query, key = reader.queries_keys(hidden[b, :n].to(reader.dtype))
            query, key = query[head], key[reader.kv_group(head)]
            queries.append(query[:take].to("cpu", torch.float32).numpy())
            keys.append(key[:take].to("cpu", torch.float32).numpy())
            for token in sentence.tokens[:take]:
                rows.append(
                    {
                        "sentence_index": int(index),
                        "position": token.index,
                        "token": token.text,
                        "is_special": token.is_special,
                        "relative_position": token.index / max(n - 1, 1),
                    }
                )
    return pd.DataFrame(rows), np.concatenate(queries), np.concatenate(keys)


def normalise_queries_keys(queries: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weight-preserving normalisation of `[m, d]` queries and keys (see the module docstring).

    First queries × c and keys ÷ c with c² = mean key norm / mean query norm (equal mean norms),
    then keys shifted so their centroid is the queries'.
    """
    query_norm = np.linalg.norm(queries, axis=1).mean()
    key_norm = np.linalg.norm(keys, axis=1).mean()
    if query_norm > 0 and key_norm > 0:
        scale = np.sqrt(key_norm / query_norm)
        queries, keys = queries * scale, keys / scale
    return queries, keys - keys.mean(0) + queries.mean(0)


def embed_2d(points: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """`[m, d]` -> `[m, 2]` by PCA (numpy SVD), UMAP or t-SNE (when installed)."""
    if method not in ("pca", "umap", "tsne"):
        raise ProjectionUnavailableError(
            f"Unknown embedding '{method}': choose {', '.join(available_projections())}."
        )
    if method not in available_projections():
        raise ProjectionUnavailableError(
            f"The {method} embedding is not installed here: use "
            f"{', '.join(available_projections())}."
        )
    points = np.asarray(points, dtype=np.float64)
    if method == "pca":
        centred = points - points.mean(0)
        _, _, components = np.linalg.svd(centred, full_matrices=False)
        projected = centred @ components[:2].T
        if projected.shape[1] < 2:
            projected = np.pad(projected, ((0, 0), (0, 2 - projected.shape[1])))
        return projected
    if method == "umap":
        import umap

        return umap.UMAP(n_components=2, random_state=seed).fit_transform(points)
    from sklearn.manifold import TSNE

    perplexity = min(30.0, max(2.0, (len(points) - 1) / 3))
    return TSNE(n_components=2, random_state=seed, perplexity=perplexity).fit_transform(points)


def global_view(
    model: LoadedModel,
    sentences: Sequence[str],
    layer: int,
    head: int,
    *,
    method: str = "pca",
    max_tokens: int = 128,
    max_points: int = DEFAULT_MAX_POINTS,
    seed: int = 0,
) -> pd.DataFrame:
    """Joint 2-D embedding of one head's queries and keys over a sample of the corpus.

    One row per point: `x, y, role` ("query"/"key"), `sentence_index, sentence, position,
    token, is_special, relative_position` — colour by `role` or `relative_position`, hover
    with `token` and `sentence`.
    """
    tokens, queries, keys = query_key_vectors(
        model, sentences, layer, head, max_tokens=max_tokens, max_points=max_points, seed=seed
    )
    queries, keys = normalise_queries_keys(queries, keys)
    xy = embed_2d(np.concatenate([queries, keys]), method, seed)
    frame = pd.concat([tokens.assign(role="query"), tokens.assign(role="key")], ignore_index=True)
    frame.insert(0, "x", xy[:, 0])
    frame.insert(1, "y", xy[:, 1])
    frame["sentence"] = [sentences[i] for i in frame["sentence_index"]]
    return frame
