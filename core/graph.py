"""Contribution graphs: the information-flow routes of Ferrando & Voita (2024).

Nodes are (layer, token) pairs: layer 0 holds the input tokens, layer l the residual stream
after layer l. An edge (l − 1, j) → (l, i) carries token j's share in position i's
representation at layer l, read from a method's per-layer contributions. Starting from the
chosen output position at the last layer, only edges whose share is at least `threshold`
are followed back towards the input, so the graph holds the routes that matter for that
position and nothing else.

Shares are each row of the per-layer matrix divided by its sum: ALTI and value zeroing rows
sum to 1 already; attention norms and gradient relevance are rescaled so one threshold
means the same thing for every method.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from core.errors import InvalidSelectionError
from core.lens import check_position
from core.methods import MethodResult


def contribution_graph(
    method_result: MethodResult, position: int, threshold: float = 0.04
) -> nx.DiGraph:
    """The routes into `position` at the last layer with shares ≥ `threshold`.

    Node keys are `(layer, token)` tuples with attributes layer, token (position), text; the
    output node has `output=True`. Edge attributes: weight (the share, float) and layer (the
    layer whose contribution it is, 1-based like the node layers). Raises
    `InvalidSelectionError` for accumulated methods (rollout, flow: their layers are not
    per-layer contributions), non-square stacks, missing layers or a bad threshold.
    """
    if method_result.accumulated:
        raise InvalidSelectionError(
            f"{method_result.method} is accumulated through the layers; a contribution graph "
            "needs per-layer contributions (ALTI, value zeroing, attention norms, raw …)."
        )
    per_layer = np.asarray(method_result.per_layer, dtype=np.float64)
    layer_count, rows, columns = per_layer.shape
    if rows != columns:
        raise InvalidSelectionError("A contribution graph needs a square (self-attention) stack.")
    if np.isnan(per_layer).any():
        raise InvalidSelectionError("Compute every layer before drawing the contribution graph.")
    if not 0.0 <= float(threshold) <= 1.0:
        raise InvalidSelectionError("The threshold is a share between 0 and 1.")
    position = check_position(position, rows)
    totals = per_layer.sum(axis=-1, keepdims=True)
    shares = np.divide(per_layer, totals, out=np.zeros_like(per_layer), where=totals > 0)
    texts = [token.text for token in method_result.tokens]

    graph = nx.DiGraph(method=method_result.method, position=position, threshold=threshold)

    def add_node(layer: int, token: int) -> tuple[int, int]:
        key = (layer, token)
        if key not in graph:
            graph.add_node(key, layer=layer, token=token, text=texts[token])
        return key

    graph.nodes[add_node(layer_count, position)]["output"] = True
    frontier = {position}
    for layer in range(layer_count, 0, -1):
        reached = set()
        for receiver in sorted(frontier):
            for source in np.flatnonzero(shares[layer - 1, receiver] >= threshold):
                source = int(source)
                graph.add_edge(
                    add_node(layer - 1, source),
                    add_node(layer, receiver),
                    weight=float(shares[layer - 1, receiver, source]),
                    layer=layer,
                )
                reached.add(source)
        frontier = reached
        if not frontier:
            break
    return graph
