"""The progress / cancel / limiter convention of `core.work`, on the agreement table's passes."""

from __future__ import annotations

import contextlib

import pytest

from core.agreement import explanation_agreement, leave_one_out
from core.errors import ComputationCancelled
from core.work import checkpoint, no_limit

TEXT = "The cat sat on the [MASK] because it was tired."


def counting_limiter(entered: list[str]):
    @contextlib.contextmanager
    def limiter(what: str):
        entered.append(what)
        yield

    return limiter


def test_a_limiter_is_held_around_every_forward_pass(loaded_tiny):
    model = loaded_tiny("bert")
    entered: list[str] = []
    table = leave_one_out(model, TEXT, 6, limiter=counting_limiter(entered))
    # The text's own pass, then one batch of variants (fewer than 32).
    assert entered == ["leave-one-out", "leave-one-out"] and len(table) > 5
    entered.clear()
    agreement = explanation_agreement(
        model, TEXT, 6, methods=["raw", "alti"], limiter=counting_limiter(entered)
    )
    assert entered[:2] == ["leave-one-out", "leave-one-out"] and entered[2:] == ["raw", "alti"]
    assert list(agreement["method"]) == ["raw", "alti"]


def test_cancel_stops_between_passes(loaded_tiny):
    model = loaded_tiny("bert")
    with pytest.raises(ComputationCancelled, match="Leave-one-out was stopped"):
        leave_one_out(model, TEXT, 6, cancel=lambda: True)
    asked: list[int] = []

    def after_leave_one_out() -> bool:
        asked.append(1)
        return len(asked) > 1  # let leave-one-out's own batch finish, then stop

    with pytest.raises(ComputationCancelled, match="agreement table was stopped"):
        explanation_agreement(model, TEXT, 6, methods=["raw"], cancel=after_leave_one_out)


def test_checkpoint_and_the_default_limiter():
    seen: list[tuple[int, int]] = []
    checkpoint(1, 2, "work", lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2)]
    with pytest.raises(ComputationCancelled):
        checkpoint(1, 2, "work", lambda done, total: False)
    with no_limit("anything") as held:
        assert held is None
