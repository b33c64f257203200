"""The idle collector: one collection after each busy spell, never while a page runs, never
before the server has been quiet for its idle time."""

from __future__ import annotations

import gc

import pytest

from server.idle import IdleCollector


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def collector() -> tuple[IdleCollector, Clock, list[str]]:
    clock, calls = Clock(), []
    idle = IdleCollector(
        idle_seconds=10.0,
        collect=lambda: calls.append("collect"),
        trim=lambda: calls.append("trim"),
        clock=clock,
    )
    return idle, clock, calls


def test_collects_once_after_a_busy_spell_when_quiet_long_enough():
    idle, clock, calls = collector()
    clock.now = 100.0
    assert not idle.collect_if_idle()  # nothing ran yet: nothing to collect
    with idle.page_running():
        clock.now = 101.0
    clock.now = 110.9
    assert not idle.collect_if_idle()  # quiet for 9.9 s only
    clock.now = 111.0
    assert idle.collect_if_idle() and calls == ["collect", "trim"]
    clock.now = 200.0
    assert not idle.collect_if_idle() and calls == ["collect", "trim"]  # no run since


def test_never_collects_while_a_page_runs():
    idle, clock, calls = collector()
    with idle.page_running():
        clock.now = 5.0
    with idle.page_running():
        clock.now = 60.0
        assert not idle.collect_if_idle()
    clock.now = 69.0
    assert not idle.collect_if_idle()
    clock.now = 70.0
    assert idle.collect_if_idle() and calls == ["collect", "trim"]


def test_a_run_ended_by_an_exception_still_counts_as_ended():
    idle, clock, calls = collector()
    with pytest.raises(RuntimeError), idle.page_running():
        raise RuntimeError("a rerun or a page switch")
    clock.now = 10.0
    assert idle.collect_if_idle() and calls == ["collect", "trim"]


def test_the_real_collection_frees_a_cycle_that_holds_a_large_array():
    import weakref

    import numpy as np

    idle = IdleCollector(idle_seconds=0.0)

    class Holder:
        pass

    holder = Holder()
    holder.array = np.zeros(1000)
    holder.itself = holder  # a cycle, as an exception's traceback and its frame make
    gone = weakref.ref(holder)
    gc.disable()
    try:
        with idle.page_running():
            del holder
        assert gone() is not None  # only the cyclic collector frees it
        assert idle.collect_if_idle()
        assert gone() is None
    finally:
        gc.enable()
