"""`core.ablate_heads` against forward pre-hooks on each architecture's output projection, and
the three control head sets of `core.ablation_controls`."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
import torch

from core import (
    EmptyTextError,
    InvalidSelectionError,
    PositionOutOfRangeError,
    UnsupportedModelError,
    ablate_answer,
    ablate_heads,
    ablation_controls,
    needle_input,
    predict_next,
)
from tests.core.long_context_reference import eager_model
from tests.tiny_models import CAUSAL_FAMILIES, MODERN_FAMILIES, NUM_HEADS, NUM_LAYERS

CAUSAL = CAUSAL_FAMILIES + MODERN_FAMILIES
TEXT = "The researchers visualized attention patterns in the quiet garden near the river"
RTOL = 1e-6
"""Probabilities of a fast pass and an eager pass of a float32 model agree to float32 noise
(measured: at most 9e-8 apart, relatively, on these checkpoints)."""


def output_projections(network: torch.nn.Module, family: str) -> list[torch.nn.Module]:
    """Each layer's attention output projection: its input is the heads' outputs side by side."""
    if family == "gpt2":
        return [block.attn.c_proj for block in network.transformer.h]
    return [layer.self_attn.o_proj for layer in network.model.layers]


def hooked_probabilities(path, family: str, ids: list[int], heads) -> np.ndarray:
    """Float64 `[n, vocab]` next-token probabilities of the eager model, with the listed heads'
    slices of the output projections' inputs zeroed by forward pre-hooks."""
    network = eager_model(path, family)
    width = network.config.hidden_size // network.config.num_attention_heads
    if family != "gpt2":
        width = getattr(network.config, "head_dim", None) or width

    def zeroing(zeroed):
        def hook(module, args):
            (inputs,) = args
            inputs = inputs.clone()
            for head in zeroed:
                inputs[..., head * width : (head + 1) * width] = 0
            return (inputs,)

        return hook

    handles = [
        projection.register_forward_pre_hook(zeroing([h for at, h in heads if at == layer]))
        for layer, projection in enumerate(output_projections(network, family))
    ]
    try:
        with torch.inference_mode():
            logits = network(input_ids=torch.tensor([ids])).logits[0].double()
    finally:
        for handle in handles:
            handle.remove()
    return torch.softmax(logits, -1).numpy()


@pytest.mark.parametrize("family", CAUSAL)
@pytest.mark.parametrize(
    "heads",
    [[], [(0, 1)], [(0, 0), (1, 3), (1, 1)], [(layer, 2) for layer in range(NUM_LAYERS)]],
    ids=["none", "one", "three", "a head of every layer"],
)
def test_ablation_equals_zeroing_the_output_projection_input(
    loaded_tiny, tiny_model_path, family, heads
):
    model = loaded_tiny(family)
    ids = model.tokenizer(TEXT)["input_ids"]
    n = len(ids)
    for position in (None, 3):
        row = ablate_heads(model, TEXT, heads=heads, position=position)
        assert len(row) == 1 and list(row.columns) == [
            "position",
            "token",
            "token_id",
            "probability",
            "probability_ablated",
        ]
        where = n - 1 if position is None else position
        plain = hooked_probabilities(tiny_model_path(family), family, ids, [])[where]
        ablated = hooked_probabilities(tiny_model_path(family), family, ids, heads)[where]
        token = int(plain.argmax())
        assert row["position"][0] == where and row["token_id"][0] == token
        assert row["token"][0] == model.tokenizer.decode([token])
        assert row["probability"][0] == pytest.approx(plain[token], rel=RTOL)
        assert row["probability_ablated"][0] == pytest.approx(ablated[token], rel=RTOL)
        if not heads:
            assert row["probability_ablated"][0] == row["probability"][0]
        else:
            # The ablation moves the probability by far more than the tolerance: a no-op fails.
            assert abs(ablated[token] / plain[token] - 1) > 10 * RTOL
        assert row.attrs["heads"] == sorted(set(heads))


@pytest.mark.parametrize("family", CAUSAL)
def test_answer_ablation_equals_the_hooked_reference(loaded_tiny, tiny_model_path, family):
    model = loaded_tiny(family)
    haystack = "The garden is quiet. The river is wide. The gate is old. " * 3
    entries = [
        needle_input(model, haystack, "The word is lantern.", "What is the word?", depth)
        for depth in (0.2, 0.8)
    ]
    heads = [(0, 1), (1, 2)]
    table = ablate_answer(model, entries, heads)
    assert list(table["depth"]) == [0.2, 0.8] and table.attrs["heads"] == heads
    for entry, (_, row) in zip(entries, table.iterrows(), strict=True):
        ids, answer = entry["input_ids"], range(*entry["answer"])
        for zeroed, column in (([], "answer_logprob"), (heads, "answer_logprob_ablated")):
            probabilities = hooked_probabilities(tiny_model_path(family), family, ids, zeroed)
            expected = np.mean([np.log(probabilities[t - 1, ids[t]]) for t in answer])
            assert row[column] == pytest.approx(expected, abs=1e-6)
        assert row["answer_probability"] == pytest.approx(np.exp(row["answer_logprob"]))
        assert abs(row["answer_logprob_ablated"] - row["answer_logprob"]) > 1e-5
    same = ablate_answer(model, entries[:1], [])
    assert same["answer_logprob_ablated"][0] == same["answer_logprob"][0]
    with pytest.raises(InvalidSelectionError, match="answer"):
        ablate_answer(model, [{**entries[0], "answer": (0, 3)}], heads)
    with pytest.raises(PositionOutOfRangeError):
        ablate_answer(model, entries, [(0, NUM_HEADS)])


def test_an_ablation_in_one_thread_leaves_another_threads_passes_alone(loaded_tiny):
    model = loaded_tiny("llama")
    every_head = [(layer, h) for layer in range(NUM_LAYERS) for h in range(NUM_HEADS)]
    plain = predict_next(model, TEXT)
    ablated = ablate_heads(model, TEXT, every_head)["probability_ablated"][0]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def ablating() -> None:
        try:
            start.wait()
            for _ in range(4):
                row = ablate_heads(model, TEXT, every_head)
                assert row["probability_ablated"][0] == pytest.approx(ablated, rel=RTOL)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    def predicting() -> None:
        try:
            start.wait()
            for _ in range(4):
                assert predict_next(model, TEXT) == plain
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for work in (ablating, predicting)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors


def test_ablation_leaves_the_shared_model_as_it_was(loaded_tiny):
    model = loaded_tiny("qwen2")
    before = predict_next(model, TEXT)
    ablate_heads(model, TEXT, heads=[(layer, h) for layer in range(2) for h in range(NUM_HEADS)])
    assert predict_next(model, TEXT) == before


@pytest.mark.parametrize(
    ("heads", "position", "error", "match"),
    [
        ([(NUM_LAYERS, 0)], None, PositionOutOfRangeError, "Layer 2"),
        ([(-1, 0)], None, PositionOutOfRangeError, "Layer -1"),
        ([(0, NUM_HEADS)], None, PositionOutOfRangeError, "Head 4"),
        ([(0,)], None, InvalidSelectionError, "pairs"),
        ([("0", 1)], None, InvalidSelectionError, "pairs"),
        ([(0.5, 1)], None, InvalidSelectionError, "pairs"),
        (5, None, InvalidSelectionError, "pairs"),
        ([], 500, PositionOutOfRangeError, "Position 500"),
        ([], -1, PositionOutOfRangeError, "Position -1"),
    ],
)
def test_bad_heads_and_positions_are_refused(loaded_tiny, heads, position, error, match):
    with pytest.raises(error, match=match):
        ablate_heads(loaded_tiny("llama"), TEXT, heads=heads, position=position)


def test_models_without_a_next_token_and_empty_texts_are_refused(loaded_tiny):
    with pytest.raises(UnsupportedModelError, match="causal"):
        ablate_heads(loaded_tiny("bert"), TEXT, heads=[(0, 0)])
    with pytest.raises(EmptyTextError):
        ablate_heads(loaded_tiny("gpt2"), "   ", heads=[(0, 0)])


def control_tables():
    """Retrieval scores of 3 layers × 4 heads at two depths, and a sink profile."""
    heads = [(layer, head) for layer in range(3) for head in range(4)]
    mean = {(0, 1): 0.9, (0, 2): 0.5, (2, 3): 0.7, (1, 0): 0.2}
    rows = [
        {
            "layer": layer,
            "head": head,
            "depth": depth,
            "score": mean.get((layer, head), 0.0) + shift,
        }
        for depth, shift in ((0.1, 0.05), (0.9, -0.05))
        for layer, head in heads
    ]
    profile = pd.DataFrame(
        [
            {"layer": layer, "head": head, "is_sink": head == 0 and layer > 0}
            for layer, head in heads
        ]
    )
    return pd.DataFrame(rows), profile


def test_controls_are_the_top_heads_random_heads_of_their_layers_and_the_sinks():
    retrieval, profile = control_tables()
    controls = ablation_controls(retrieval, profile, k=3, seed=7)
    assert controls["retrieval"] == [(0, 1), (2, 3), (0, 2)]
    random = controls["random"]
    assert sorted(layer for layer, _ in random) == [0, 0, 2]
    assert len(set(random)) == 3 and not set(random) & set(controls["retrieval"])
    assert controls["sinks"] == [(1, 0), (2, 0)]
    assert ablation_controls(retrieval, profile, k=3, seed=7) == controls  # seeded
    draws = {tuple(ablation_controls(retrieval, profile, k=3, seed=s)["random"]) for s in range(20)}
    assert len(draws) > 1  # the seed matters


def test_controls_draw_from_the_other_chosen_layers_when_a_layer_runs_out():
    # 2 layers × 2 heads; the top 3 leave layer 0 no other head, and only (1, 1) is left at all.
    retrieval = pd.DataFrame(
        {"layer": [0, 0, 1, 1], "head": [0, 1, 0, 1], "depth": 0.5, "score": [0.9, 0.8, 0.7, 0]}
    )
    profile = retrieval.assign(is_sink=False)
    controls = ablation_controls(retrieval, profile, k=3)
    assert controls == {"retrieval": [(0, 0), (0, 1), (1, 0)], "random": [(1, 1)], "sinks": []}
    with pytest.raises(InvalidSelectionError):
        ablation_controls(retrieval, profile, k=0)


def test_answer_ablation_unembeds_only_the_answer_rows(loaded_tiny):
    """Each pass hands the output layer the rows that predict the answer, not all n."""
    model = loaded_tiny("qwen2")
    haystack = "The garden is quiet. The river is wide. " * 4
    entry = needle_input(model, haystack, "The word is lantern.", "What is the word?", 0.5)
    seen: list[int] = []
    head = model.model.get_output_embeddings()
    hook = head.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[-2]))
    try:
        ablate_answer(model, [entry], [(0, 1)])
        ablate_heads(model, haystack, [(0, 1)])
    finally:
        hook.remove()
    start, end = entry["answer"]
    assert len(entry["input_ids"]) > 2 * (end - start)
    assert seen == [end - start, end - start, 1, 1]
