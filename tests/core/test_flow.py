"""Attention flow against networkx max flows built straight from the definition.

The reference builds, for every requested pair, the layered DiGraph with one edge per
(layer, query, key) and calls ``nx.maximum_flow_value``; it is slow, so the oracle cases
are small (n <= 24, every layer, real MiniLM attention among them) and one larger random
input (n = 40, 12 layers) covers one row per case. Everything goes through the public
``attention_flow``, except the documented contract of ``core._maxflow.max_flows``
(unnormalised values within ``FLOW_ATOL`` of exact, never above).
"""

from __future__ import annotations

import threading

import networkx as nx
import numpy as np
import pytest

import core
from core._maxflow import max_flows
from core.flow import (
    FLOW_ATOL,
    FULL_FLOW_DEFAULT_MAX_TOKENS,
    ComputationCancelled,
    FlowCancelled,
    attention_flow,
    full_flow_is_fast,
)
from core.rollout import (
    InvalidAttentionError,
    InvalidSelectionError,
    attention_rollout,
    residual_attention,
)
from tests.core.attention_inputs import dirichlet_attention, softmax_attention

FLOW_TOL = 1e-7  # on the row-normalised output (the contract asks for 1e-6)
RAW_TOL = 2e-9  # on unnormalised max-flow values (certified to 1e-9)


def reference_mixed(attentions, layer, heads=None, ignore_tokens=()):
    """``A_1 .. A_{layer+1}`` ``[layer+1, n, n]`` from the definition, independent of core."""
    att = np.asarray(attentions, dtype=np.float64)[: layer + 1]
    if heads is not None:
        att = att[:, list(heads)]
    w = att.mean(axis=1)
    n = w.shape[-1]
    if len(ignore_tokens):
        w[:, :, list(ignore_tokens)] = 0.0
        totals = w.sum(-1, keepdims=True)
        w = np.where(totals > 0, w / np.where(totals > 0, totals, 1.0), 0.0)
    a = w + np.eye(n)
    return a / a.sum(-1, keepdims=True)


def reference_raw_flow(mixed, rows):
    """Unnormalised max flows ``[len(rows), n]``: one networkx max flow per pair."""
    layers, n, _ = mixed.shape
    graph = nx.DiGraph()
    for layer in range(1, layers + 1):
        for i in range(n):
            for j in range(n):
                graph.add_edge((layer, i), (layer - 1, j), capacity=float(mixed[layer - 1, i, j]))
    return np.array(
        [[nx.maximum_flow_value(graph, (layers, i), (0, j)) for j in range(n)] for i in rows]
    )


def reference_flow(attentions, layer, rows, heads=None, ignore_tokens=()):
    raw = reference_raw_flow(reference_mixed(attentions, layer, heads, ignore_tokens), rows)
    return raw / raw.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------- oracle


RANDOM_CASES = [
    # (seed, layers, n, alpha); alpha=None means softmax of random logits (float32)
    (0, 3, 5, 0.05),
    (1, 4, 6, 0.2),
    (2, 5, 5, 1.0),
    (3, 6, 6, 0.1),
    (4, 6, 7, None),
    (5, 8, 5, 0.5),
    (6, 12, 4, None),
]


@pytest.mark.parametrize(("seed", "layers", "n", "alpha"), RANDOM_CASES)
def test_flow_matches_networkx_on_random_attention(seed, layers, n, alpha):
    rng = np.random.default_rng(seed)
    if alpha is None:
        att = softmax_attention(rng, layers, 3, n)
    else:
        att = dirichlet_attention(rng, layers, 3, n, alpha)
    for layer in range(layers):
        expected = reference_flow(att, layer, range(n))
        got = attention_flow(att, layer=layer)
        assert got.shape == (n, n) and got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=0, atol=FLOW_TOL)
        raw = max_flows(residual_attention(att, n_layers=layer + 1), np.arange(n), np.arange(n))
        raw_expected = reference_raw_flow(reference_mixed(att, layer), range(n))
        np.testing.assert_allclose(raw, raw_expected, rtol=0, atol=RAW_TOL)


def dyadic_attention(rng, layers, heads, n):
    """Rows of multiples of 2**-40 summing exactly to 1.

    Then A = (mean_h W + I) / 2 has 2**-42 granularity, every sum networkx forms is exact
    in float64, and the reference is the exact max flow, not just a float approximation.
    """
    counts = rng.multinomial(2**40, rng.dirichlet(np.full(n, 0.3), size=(layers, heads, n)))
    return counts / 2.0**40


@pytest.mark.parametrize("seed", range(3))
def test_certified_precision_on_exactly_representable_capacities(seed):
    # The documented internal contract of core._maxflow.max_flows: every unnormalised value
    # within FLOW_ATOL of the exact max flow, never above it. With capacities that are
    # binary fractions networkx's own answer is exact, so the comparison is strict.
    rng = np.random.default_rng(100 + seed)
    att = dyadic_attention(rng, layers=6, heads=2, n=7)
    for layer in (2, 3, 5):
        mixed = residual_attention(att, n_layers=layer + 1)
        assert np.array_equal(mixed, reference_mixed(att, layer))
        expected = reference_raw_flow(mixed, range(7))
        got = max_flows(mixed, np.arange(7), np.arange(7))
        assert np.abs(got - expected).max() <= FLOW_ATOL
        assert np.all(got <= expected + 1e-15)  # a feasible flow: never above the max


def test_flow_matches_networkx_on_minilm(minilm_attentions):
    for n, att in minilm_attentions.items():
        layers = att.shape[0]
        for layer in range(layers):
            # All rows for short inputs; a rotating pair of rows for long ones keeps the
            # networkx reference within the time budget.
            rows = list(range(n)) if n <= 7 else sorted({layer % n, (7 * layer + 3) % n})
            if n > 12:
                rows = rows[:1]
            expected = reference_flow(att, layer, rows)
            got = attention_flow(att, layer=layer, rows=rows)
            np.testing.assert_allclose(got[rows], expected, rtol=0, atol=FLOW_TOL)
            others = np.setdiff1d(np.arange(n), rows)
            assert np.all(np.isnan(got[others]))


def test_hub_certified_and_solved_pairs_both_match_networkx():
    # Deep softmax-like stacks: the solver settles a block's pairs through hub
    # certificates first and sends the rest to its per-pair max flow. During the hub stage
    # it reports the pairs settled so far (0 until a hub settles some), so the first
    # non-zero report is the hubs' count: at layer index 4 part of the block (the rest is
    # solved pair by pair), at 8 all of it.
    rng = np.random.default_rng(0)
    att = softmax_attention(rng, 12, 4, 10)
    n = 10
    for layer, all_by_hub in ((4, False), (8, True)):
        mixed = residual_attention(att, n_layers=layer + 1)
        reports = []
        got = max_flows(mixed, np.arange(n), np.arange(n), report=reports.append)
        settled = next(done for done in reports if done > 0)
        assert n <= settled <= n * n
        assert (settled == n * n) == all_by_hub
        assert reports == sorted(reports) and reports[-1] == n * n
        expected = reference_raw_flow(reference_mixed(att, layer), range(n))
        np.testing.assert_allclose(got, expected, rtol=0, atol=RAW_TOL)
        # Fewer sources than a hub needs: every pair solved on its own, same values.
        rows = [1, 6, 9]
        alone = max_flows(mixed, np.array(rows), np.arange(n))
        np.testing.assert_allclose(alone, expected[rows], rtol=0, atol=RAW_TOL)


def test_stop_reaches_the_hub_stage():
    # At layer index 8 the hubs settle every pair (see above); their leg flows report
    # progress too, so Stop works before the whole block is settled.
    att = softmax_attention(np.random.default_rng(0), 12, 4, 10)
    seen = []

    def stop_on_second_call(done, total):
        seen.append(done)
        return len(seen) < 2

    with pytest.raises(FlowCancelled):
        attention_flow(att, layer=8, progress=stop_on_second_call)
    assert len(seen) == 2 and seen[1] < 100


def test_flow_matches_networkx_on_a_larger_random_input():
    """n = 40 with 12 layers (bert-base depth): a few rows against networkx, pair by pair."""
    rng = np.random.default_rng(21)
    att = softmax_attention(rng, 12, 4, 40)
    peaked = dirichlet_attention(rng, 6, 3, 40, 0.1)
    for a, layer, row in [(att, 11, 7), (att, 3, 39), (peaked, 4, 0)]:
        expected = reference_flow(a, layer, [row])
        got = attention_flow(a, layer=layer, rows=[row])
        np.testing.assert_allclose(got[[row]], expected, rtol=0, atol=FLOW_TOL)


# ----------------------------------------------------------------------------- by hand

# Two layers, three tokens, one head (same as in test_rollout).
#   W_1: tokens 0 and 1 attend to token 0, token 2 to itself.
#   W_2: every token attends to token 1.
HAND = np.array(
    [
        [[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]],
        [[[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]],
    ]
)


def test_flow_by_hand_two_layers():
    # A_1 = [[1, 0, 0], [.5, .5, 0], [0, 0, 1]],  A_2 = [[.5, .5, 0], [0, 1, 0], [0, .5, .5]].
    # Layer index 0: the graph is one layer of edges, so F_1 = A_1 (rows already sum to 1).
    np.testing.assert_allclose(
        attention_flow(HAND, layer=0),
        [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]],
        atol=1e-15,
    )
    # Layer index 1: paths (2,i) -> (1,m) -> (0,j) with capacities A_2[i,m], A_1[m,j];
    # different m share no edge, so max flow = sum_m min(A_2[i,m], A_1[m,j]).
    #   columns of A_1: to 0: [1, .5, 0]; to 1: [0, .5, 0]; to 2: [0, 0, 1]
    #   i=0 (A_2 row [.5, .5, 0]): j=0 min(.5,1)+min(.5,.5) = 1;  j=1 min(.5,.5) = .5;  j=2 0
    #        -> [1, .5, 0] / 1.5 = [2/3, 1/3, 0]        (rollout says [.75, .25, 0])
    #   i=1 (row [0, 1, 0]): j=0 min(1,.5) = .5; j=1 min(1,.5) = .5; j=2 0 -> [.5, .5, 0]
    #   i=2 (row [0, .5, .5]): j=0 min(.5,.5) = .5; j=1 min(.5,.5) = .5; j=2 min(.5,1) = .5
    #        -> [1/3, 1/3, 1/3]                           (rollout says [.25, .25, .5])
    expected = np.array([[2 / 3, 1 / 3, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(attention_flow(HAND, layer=1), expected, atol=1e-15)
    np.testing.assert_allclose(attention_flow(HAND), expected, atol=1e-15)  # layer=-1


def test_flow_by_hand_three_layers():
    # Add W_3: every token attends to token 2, so A_3 = [[.5, 0, .5], [0, .5, .5], [0, 0, 1]].
    # Now the general solver runs (three layers of edges).
    # Source (3,0): edges to (2,0) cap .5 and (2,2) cap .5 (total 1).
    #   to (0,0): (2,0)->(1,0)->(0,0) carries .5, (2,2)->(1,1)->(0,0) carries .5 -> 1
    #   to (0,1): only (1,1)->(0,1), cap .5 -> .5 (via (2,0)->(1,1))
    #   to (0,2): only (1,2)->(0,2); (1,2) is fed only by (2,2)->(1,2), cap .5 -> .5
    #   row 0 = [1, .5, .5] / 2 = [.5, .25, .25]
    # Source (3,1): edges to (2,1) .5 and (2,2) .5; (2,1)->(1,1) cap 1; (2,0) unreachable.
    #   to (0,0): only via (1,1)->(0,0), cap .5 -> .5;  to (0,1): (1,1)->(0,1) .5 -> .5
    #   to (0,2): (2,2)->(1,2)->(0,2), cap .5 -> .5;   row 1 = [1/3, 1/3, 1/3]
    # Source (3,2): single edge to (2,2) with cap 1, then as two-layer row 2: [.5, .5, .5]
    #   row 2 = [1/3, 1/3, 1/3]
    third = np.array([[[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]]])
    att = np.concatenate([HAND, third])
    expected = np.array([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(attention_flow(att), expected, atol=1e-12)
    # Rollout differs on row 1: .5 * R_2[1] + .5 * R_2[2] = [.375, .375, .25].
    np.testing.assert_allclose(attention_rollout(att)[2, 1], [0.375, 0.375, 0.25], atol=1e-15)


# ----------------------------------------------------------------------------- options


def test_rows_option_computes_only_the_chosen_rows():
    rng = np.random.default_rng(8)
    att = dirichlet_attention(rng, 5, 2, 8, 0.3)
    full = attention_flow(att)
    part = attention_flow(att, rows=[6, 1])
    np.testing.assert_allclose(part[[1, 6]], full[[1, 6]], rtol=0, atol=1e-9)
    assert np.all(np.isnan(np.delete(part, [1, 6], axis=0)))
    assert np.all(np.isnan(attention_flow(att, rows=[])))


def test_heads_option_matches_reference():
    rng = np.random.default_rng(9)
    att = dirichlet_attention(rng, 4, 5, 6, 0.2)
    heads = [3, 0]
    got = attention_flow(att, layer=3, heads=heads)
    np.testing.assert_allclose(got, reference_flow(att, 3, range(6), heads=heads), atol=FLOW_TOL)
    np.testing.assert_allclose(got, attention_flow(att[:, [0, 3]], layer=3), atol=1e-12)
    assert not np.allclose(got, attention_flow(att, layer=3), atol=1e-3)


def test_ignore_tokens_option_matches_reference():
    rng = np.random.default_rng(10)
    att = dirichlet_attention(rng, 5, 3, 7, 0.3)
    ignored = [0, 6]
    got = attention_flow(att, layer=4, ignore_tokens=ignored)
    expected = reference_flow(att, 4, range(7), ignore_tokens=ignored)
    np.testing.assert_allclose(got, expected, rtol=0, atol=FLOW_TOL)
    # An ignored token can only be reached through its own residual chain.
    for k in ignored:
        others = np.delete(np.arange(7), k)
        assert np.all(got[others, k] == 0.0)
        assert got[k, k] > 0


# ----------------------------------------------------------------------------- progress


def test_progress_reports_monotone_counts_up_to_the_total():
    rng = np.random.default_rng(12)
    att = softmax_attention(rng, 6, 4, 10)
    calls = []
    attention_flow(att, rows=[2, 3, 5], progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 30) and calls[-1] == (30, 30)
    assert all(total == 30 for _, total in calls)
    dones = [done for done, _ in calls]
    assert dones == sorted(dones)


def test_progress_returning_false_cancels():
    rng = np.random.default_rng(13)
    att = softmax_attention(rng, 6, 4, 10)
    with pytest.raises(FlowCancelled):
        attention_flow(att, progress=lambda done, total: False)

    seen = []

    def stop_on_second_call(done, total):
        seen.append(done)
        return len(seen) < 2

    with pytest.raises(ComputationCancelled):
        attention_flow(att, progress=stop_on_second_call)
    assert len(seen) == 2  # nothing ran after the callback said stop


def test_progress_returning_none_or_true_continues():
    rng = np.random.default_rng(14)
    att = softmax_attention(rng, 4, 2, 6)
    expected = attention_flow(att)
    np.testing.assert_array_equal(attention_flow(att, progress=lambda d, t: None), expected)
    np.testing.assert_array_equal(attention_flow(att, progress=lambda d, t: True), expected)


def test_cancel_exception_hierarchy():
    assert issubclass(FlowCancelled, ComputationCancelled)
    # A cancelled computation is shown to people like any other AtlasError.
    assert issubclass(ComputationCancelled, core.AtlasError)


# ----------------------------------------------------------------------------- validation


def _valid(layers=3, heads=2, n=4):
    return np.full((layers, heads, n, n), 1.0 / n)


def test_malformed_attentions_are_rejected():
    with pytest.raises(InvalidAttentionError, match="4 dimensions"):
        attention_flow(np.full((3, 4, 4), 0.25))
    with pytest.raises(InvalidAttentionError, match="square"):
        attention_flow(np.full((3, 2, 4, 5), 0.2))
    with pytest.raises(InvalidAttentionError, match="empty"):
        attention_flow(np.zeros((0, 2, 4, 4)))
    bad = _valid()
    bad[2, 1, 1, 1] = np.nan
    with pytest.raises(InvalidAttentionError, match="NaN"):
        attention_flow(bad)
    bad = _valid()
    bad[0, 0, 0] = [0.5, 0.5, 0.5, -0.5]
    with pytest.raises(InvalidAttentionError, match="non-negative"):
        attention_flow(bad)
    bad = _valid()
    bad[0, 1, 2] = [0.3, 0.3, 0.3, 0.3]
    with pytest.raises(InvalidAttentionError, match="sum to 1"):
        attention_flow(bad)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"layer": 3}, "layer 3 is out of range"),
        ({"layer": -4}, "out of range"),
        ({"layer": 1.0}, "integer"),
        ({"layer": True}, "integer"),
        ({"rows": [4]}, "rows index 4 is out of range"),
        ({"rows": [-1]}, "out of range"),
        ({"rows": [1, 1]}, "duplicate"),
        ({"heads": [2]}, "heads index 2"),
        ({"ignore_tokens": [9]}, "ignore_tokens index 9"),
    ],
)
def test_bad_selections_are_rejected(kwargs, fragment):
    with pytest.raises(InvalidSelectionError, match=fragment):
        attention_flow(_valid(), **kwargs)


def test_negative_layer_counts_from_the_end():
    rng = np.random.default_rng(15)
    att = dirichlet_attention(rng, 4, 2, 5, 0.5)
    np.testing.assert_array_equal(attention_flow(att, layer=-3), attention_flow(att, layer=1))


def test_warm_up_runs_beside_a_flow():
    # A server warms the solver up in a background thread while a page may already ask
    # for a flow: both must finish with the right values.
    expected = np.array([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3], [1 / 3, 1 / 3, 1 / 3]])
    third = np.array([[[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]]])
    att = np.concatenate([HAND, third])
    errors = []

    def warm():
        try:
            core.flow.warm_up()
        except Exception as exc:  # any failure is reported by the assert below
            errors.append(exc)

    thread = threading.Thread(target=warm)
    thread.start()
    got = attention_flow(att)
    thread.join()
    assert errors == []
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_full_flow_default_is_a_token_threshold():
    assert full_flow_is_fast(FULL_FLOW_DEFAULT_MAX_TOKENS)
    assert not full_flow_is_fast(FULL_FLOW_DEFAULT_MAX_TOKENS + 1)
    assert full_flow_is_fast(1)


def test_solver_threads_hold_for_the_block_and_context_only():
    from core._maxflow import SOLVER_THREADS
    from core.flow import solver_threads

    rng = np.random.default_rng(3)
    attentions = rng.random((4, 2, 10, 10))
    attentions /= attentions.sum(-1, keepdims=True)
    full = attention_flow(attentions)
    with solver_threads(1):
        assert SOLVER_THREADS.get() == 1
        one = attention_flow(attentions)
    assert SOLVER_THREADS.get() is None
    np.testing.assert_array_equal(one, full)  # fewer threads, the same certified values
    with pytest.raises(ValueError), solver_threads(0):
        pass
