"""The process-wide admission limit (issue 12, fair CPU): at most N at once, first come first
served, queue positions reported, a typed error instead of waiting for ever, released on errors."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch

from core.errors import AtlasError
from server import admission
from server.admission import AdmissionLimiter, available_cores, limit_torch_threads
from server.errors import ServerBusyError

WAIT = 10.0
"""Upper bound on any wait in these tests; they normally take milliseconds."""


def _until(condition, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.002)


def _holder(limiter: AdmissionLimiter) -> tuple[threading.Thread, threading.Event]:
    """A thread holding one slot until the returned event is set."""
    release, entered = threading.Event(), threading.Event()

    def hold() -> None:
        with limiter.slot("holder"):
            entered.set()
            release.wait(WAIT)

    thread = threading.Thread(target=hold)
    thread.start()
    assert entered.wait(WAIT)
    return thread, release


def test_at_most_n_run_at_once_across_threads():
    limiter = AdmissionLimiter(slots=2, timeout=WAIT)
    lock = threading.Lock()
    running, peak, done = [0], [0], []

    def work(number: int) -> None:
        with limiter.slot():
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.02)
            with lock:
                running[0] -= 1
        done.append(number)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert sorted(done) == list(range(10))
    assert peak[0] == 2
    assert limiter.running == 0 and limiter.waiting == 0


def test_waiters_are_told_their_place_and_served_in_order():
    limiter = AdmissionLimiter(slots=1, timeout=WAIT)
    holder, release = _holder(limiter)
    positions: dict[str, list[int]] = {"first": [], "second": []}
    order: list[str] = []
    first_may_finish = threading.Event()

    def wait(name: str) -> None:
        with limiter.slot(on_queued=positions[name].append):
            order.append(name)
            if name == "first":
                first_may_finish.wait(WAIT)

    first = threading.Thread(target=wait, args=("first",))
    first.start()
    _until(lambda: positions["first"] == [1])
    second = threading.Thread(target=wait, args=("second",))
    second.start()
    _until(lambda: positions["second"] == [2])
    assert limiter.waiting == 2
    release.set()
    _until(lambda: order == ["first"] and positions["second"] == [2, 1])
    first_may_finish.set()
    for thread in (holder, first, second):
        thread.join(WAIT)
    assert order == ["first", "second"]
    assert positions == {"first": [1], "second": [2, 1]}


def test_no_callback_when_a_slot_is_free():
    limiter = AdmissionLimiter(slots=1)
    calls: list[int] = []
    with limiter.slot(on_queued=calls.append):
        assert limiter.running == 1
    assert calls == [] and limiter.running == 0


def test_waiting_too_long_raises_a_typed_error_for_people():
    limiter = AdmissionLimiter(slots=1, timeout=WAIT)
    holder, release = _holder(limiter)
    try:
        busy = pytest.raises(ServerBusyError, match=r"The server is busy: your attention flow")
        with busy, limiter.slot("attention flow", timeout=0.05):
            raise AssertionError("must not be admitted")
        assert issubclass(ServerBusyError, AtlasError)
        assert limiter.waiting == 0  # the caller left the line
    finally:
        release.set()
        holder.join(WAIT)
    with limiter.slot(timeout=0.05):  # and the slot is free again
        pass


def test_a_slot_is_released_when_the_work_fails():
    limiter = AdmissionLimiter(slots=1, timeout=0.5)
    with pytest.raises(ZeroDivisionError), limiter.slot():
        _ = 1 / 0
    assert limiter.running == 0
    with limiter.slot():
        assert limiter.running == 1


def test_a_failing_callback_leaves_the_line():
    limiter = AdmissionLimiter(slots=1, timeout=WAIT)
    holder, release = _holder(limiter)

    def visitor_left(position: int) -> None:
        raise RuntimeError("stopped")

    try:
        with pytest.raises(RuntimeError, match="stopped"), limiter.slot(on_queued=visitor_left):
            raise AssertionError("must not be admitted")
        assert limiter.waiting == 0
    finally:
        release.set()
        holder.join(WAIT)
    assert limiter.running == 0


def test_slots_are_reentrant_per_thread():
    limiter = AdmissionLimiter(slots=1, timeout=0.5)
    with limiter.slot("page"):
        with limiter.slot("forward pass"):  # would time out if counted twice
            assert limiter.running == 1
        assert limiter.running == 1
    assert limiter.running == 0


def test_invalid_sizes_are_refused():
    with pytest.raises(ValueError):
        AdmissionLimiter(slots=0)
    with pytest.raises(ValueError):
        AdmissionLimiter(slots=1, timeout=0)


def test_cores_follow_the_affinity_mask_and_the_cgroup_quota(tmp_path: Path):
    cpu_max = tmp_path / "cpu.max"
    assert available_cores(tmp_path / "missing") >= 1
    unlimited = available_cores(tmp_path / "missing")
    cpu_max.write_text("max 100000\n")
    assert available_cores(cpu_max) == unlimited
    cpu_max.write_text("100000 100000\n")
    assert available_cores(cpu_max) == 1
    cpu_max.write_text("50000 100000\n")  # half a core still admits one at a time
    assert available_cores(cpu_max) == 1


def test_torch_threads_are_cores_per_slot():
    before = torch.get_num_threads()
    try:
        assert limit_torch_threads(slots=available_cores()) == 1
        assert torch.get_num_threads() == 1
        assert limit_torch_threads(slots=1) == available_cores()
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_slot():
    """The process-wide limiter with one slot and a short wait, restored afterwards."""
    admission.configure(slots=1, timeout=0.2)
    yield admission.limiter()
    admission.configure()


def test_core_takes_no_slot_itself(one_slot, loaded_tiny):
    """`core` is a library: a notebook's forward pass never lines up behind the server's queue,
    even when the process-wide limiter is full; the app wraps its calls instead."""
    from core import run_attention

    model = loaded_tiny("bert")
    holder, release = _holder(one_slot)
    try:
        assert run_attention(model, "The cat sat on the mat.").num_layers == 2
        assert one_slot.running == 1  # only the holder
    finally:
        release.set()
        holder.join(WAIT)
