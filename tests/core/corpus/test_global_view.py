"""Global view: the hooked query/key vectors are the model's, the sample is bounded."""

from __future__ import annotations

import numpy as np
import pytest

from core import neuron_view
from core.corpus import (
    available_projections,
    embed_2d,
    global_view,
    normalise_queries_keys,
    query_key_vectors,
)
from core.errors import PositionOutOfRangeError, ProjectionUnavailableError
from tests.core.corpus.conftest import SENTENCES


@pytest.mark.parametrize("family", ["bert", "gpt2", "albert"])
def test_vectors_are_the_ones_the_neuron_view_reads(loaded_tiny, family):
    model = loaded_tiny(family)
    layer, head = model.num_layers - 1, 1
    tokens, queries, keys = query_key_vectors(
        model, SENTENCES, layer, head, max_points=10_000, batch_size=4
    )
    first = tokens["sentence_index"].iloc[0]
    rows = np.flatnonzero(tokens["sentence_index"].to_numpy() == first)
    for query in (0, len(rows) - 1):
        view = neuron_view(model, SENTENCES[first], layer, head, query)
        np.testing.assert_allclose(queries[rows[query]], view.query_vector, atol=1e-5)
        np.testing.assert_allclose(keys[rows], view.key_vectors, atol=1e-5)
    assert len(tokens) == len(queries) == len(keys)
    assert set(tokens["sentence_index"]) == set(range(len(SENTENCES)))


def test_sample_is_bounded_and_rows_describe_tokens(loaded_tiny):
    model = loaded_tiny("bert")
    view = global_view(model, SENTENCES, 0, 0, max_points=40)
    assert len(view) == 40
    assert (view["role"] == "query").sum() == (view["role"] == "key").sum() == 20
    assert set(view.columns) >= {
        "x",
        "y",
        "role",
        "token",
        "position",
        "relative_position",
        "sentence_index",
        "sentence",
        "is_special",
    }
    assert view["relative_position"].between(0, 1).all()
    for row in view.itertuples():
        assert row.sentence == SENTENCES[row.sentence_index]
    assert np.isfinite(view[["x", "y"]].to_numpy()).all()


def test_normalisation_keeps_every_attention_weight():
    rng = np.random.default_rng(0)
    queries, keys = rng.normal(size=(7, 4)) + 3, rng.normal(size=(7, 4)) * 5 - 2
    new_queries, new_keys = normalise_queries_keys(queries, keys)

    def softmax(scores):
        e = np.exp(scores - scores.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    np.testing.assert_allclose(softmax(new_queries @ new_keys.T), softmax(queries @ keys.T))
    np.testing.assert_allclose(new_keys.mean(0), new_queries.mean(0), atol=1e-12)
    # The scale step equalised the norms before the keys moved: c² = |k| / |q| on average.
    ratio = np.linalg.norm(new_queries, axis=1).mean() / np.linalg.norm(queries, axis=1).mean()
    expected = np.linalg.norm(keys, axis=1).mean() / np.linalg.norm(queries, axis=1).mean()
    assert ratio**2 == pytest.approx(expected)


def test_pca_keeps_the_two_main_directions():
    rng = np.random.default_rng(1)
    points = np.zeros((50, 5))
    points[:, 2] = rng.normal(size=50) * 10
    points[:, 4] = rng.normal(size=50) * 3
    xy = embed_2d(points, "pca")
    assert xy.shape == (50, 2)
    # Distances are kept exactly when the data lie in a plane.
    original = np.linalg.norm(points[:, None] - points[None], axis=-1)
    embedded = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    np.testing.assert_allclose(embedded, original, atol=1e-9)


def test_unknown_or_missing_methods_and_bad_heads_are_refused(loaded_tiny):
    assert available_projections()[0] == "pca"
    with pytest.raises(ProjectionUnavailableError, match="Unknown embedding"):
        embed_2d(np.zeros((3, 2)), "mds")
    if "umap" not in available_projections():
        with pytest.raises(ProjectionUnavailableError, match="not installed"):
            embed_2d(np.zeros((3, 2)), "umap")
    with pytest.raises(PositionOutOfRangeError):
        query_key_vectors(loaded_tiny("bert"), SENTENCES, 5, 0)


@pytest.mark.parametrize("family", ["llama", "gemma2", "phi3"])
def test_modern_vectors_reproduce_the_heads_attention(loaded_tiny, family):
    """After rotary and q/k norms, with the key-value group's keys: the adapter's scale,
    soft-cap and mask turn one sentence's vectors into the model's attention row by row."""
    import torch

    from core import run_attention

    model = loaded_tiny(family)
    layer_index, head = 0, 3  # a windowed layer for Gemma; head 3 reads key-value group 1
    sentence = SENTENCES[1]
    tokens, queries, keys = query_key_vectors(
        model, [sentence], layer_index, head, max_points=10_000
    )
    layer = model.architecture.layers[layer_index]
    n = len(tokens)
    scores = torch.from_numpy(queries @ keys.T).double() * layer.scale
    if layer.softcap is not None:
        scores = layer.softcap * torch.tanh(scores / layer.softcap)
    scores = scores.masked_fill(~layer.mask(n), float("-inf"))
    attention = run_attention(model, sentence).attentions[layer_index, head]
    np.testing.assert_allclose(scores.softmax(-1).numpy(), attention, atol=1e-5)
