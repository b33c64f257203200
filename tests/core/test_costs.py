"""Costs in the registry (issue 20, item 3): each method declares its work as data."""

from __future__ import annotations

import pytest
from transformers import BertConfig, LlamaConfig

from core import list_methods
from core.agreement import LEAVE_ONE_OUT, part_passes
from core.costs import ATTENTION, FREE, LONGEST, Budget, Cost, forward_multiply_adds
from core.methods import get_method, method_names


def test_a_formula_is_arithmetic_on_the_request_shape():
    cost = Cost("1 + 0.4 * n * layers / L")
    assert cost.passes(100, 10) == pytest.approx(41)
    assert cost.passes(100, 10, layers=1) == pytest.approx(5)
    assert Cost("0.05 * rows * layers * n").passes(128, 6, rows=8, layers=1) == pytest.approx(51.2)
    assert Cost("heads ** 2 - 1").passes(1, 1, heads=3) == 8
    assert Cost("-5").passes(10, 2) == 0  # never negative
    assert FREE.passes(512, 12) == 0 and ATTENTION.passes(512, 12) == 1


@pytest.mark.parametrize(
    "formula", ["__import__('os').system('true')", "n.bit_length()", "open", "[n]", "n if L else 1"]
)
def test_anything_but_arithmetic_is_refused_when_declared(formula):
    with pytest.raises(ValueError, match="cost formula"):
        Cost(formula)


def test_every_method_declares_its_cost_and_budget():
    n, layers = 128, 12
    passes = {name: get_method(name).cost.passes(n, layers) for name in method_names()}
    # Methods that need the model do work beyond the text's own pass; raw and rollout do not.
    for name in method_names():
        entry = get_method(name)
        assert (passes[name] > 0) == (entry.needs.value != "attentions" or name == "flow")
    # The costly ones are bounded by a budget of their kind, read from the entry.
    assert get_method("flow").cost.budget is Budget.ROWS
    assert get_method("value_zeroing").cost.budget is Budget.TOKENS
    budgets = {name: get_method(name).cost.budget for name in method_names()}
    assert [name for name, budget in budgets.items() if budget is Budget.NONE] == [
        "raw",
        "rollout",
        "attention_norm",
        "alti",
        "grad_attention",
    ]
    # Measured ordering at 128 tokens (bench/RESULTS.md, Methods): value zeroing ≫ alti > norm.
    assert passes["value_zeroing"] > 10 * passes["alti"] > 10 * passes["attention_norm"] / 2


def test_agreement_parts_cost_from_the_registry(loaded_tiny):
    model = loaded_tiny("bert")
    n = 40
    assert part_passes(model, LEAVE_ONE_OUT, n) == pytest.approx(30)
    for name in list_methods(model):
        assert part_passes(model, name, n) >= 1  # every method runs the text once itself
    # Flow computes the one row and layer the table reads, not the whole matrix.
    whole = get_method("flow").cost.passes(n, model.num_layers)
    assert part_passes(model, "flow", n) < whole / n


def test_forward_multiply_adds_from_the_config():
    base = BertConfig()  # 12 layers, hidden 768, inner 3072
    per_token = 4 * 768**2 + 2 * 768 * 3072 + 2 * 128 * 768
    assert forward_multiply_adds(base, 128) == 12 * 128 * per_token
    gated = LlamaConfig(
        num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=4
    )
    assert forward_multiply_adds(gated, 10) == 2 * 10 * (4 * 64**2 + 3 * 64 * 128 + 2 * 10 * 64)
    assert forward_multiply_adds(base, 0) == 0


def test_max_tokens_is_the_longest_text_within_a_memory_budget():
    quadratic = Cost("0", memory="8 * L * n**2")
    assert quadratic.nbytes(100, 2) == 8 * 2 * 100**2
    assert quadratic.max_tokens(8 * 2 * 100**2, 2) == 100
    assert quadratic.max_tokens(8 * 2 * 100**2 - 1, 2) == 99
    assert Cost("0").max_tokens(0, 12) == LONGEST  # no memory that grows with the text
    assert Cost("0", memory="2**30 + n").max_tokens(2**20, 1) == 0
    assert Cost("0", memory="8 * n**2", longest=64).max_tokens(8 * 100**2, 1) == 64
    with pytest.raises(ValueError, match="only numbers"):
        Cost("0", memory="open('x')")
