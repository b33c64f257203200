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
from server.admission import (
    AdmissionLimiter,
    Place,
    available_cores,
    is_heavy,
    limit_torch_threads,
)
from server.errors import ServerBusyError

WAIT = 10.0
"""Upper bound on any wait in these tests; they normally take milliseconds."""


def _until(condition, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.002)


def _holder(
    limiter: AdmissionLimiter, heavy: bool = False, visitor: tuple = ()
) -> tuple[threading.Thread, threading.Event]:
    """A thread holding one slot (a heavy one for `visitor`) until the returned event is set."""
    release, entered = threading.Event(), threading.Event()

    def hold() -> None:
        with limiter.slot("holder", heavy=heavy, visitor=visitor):
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
        with limiter.slot(on_queued=lambda place: positions[name].append(place.position)):
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

    def visitor_left(place: Place) -> None:
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


# ---------------------------------------------------------------- a fair share (issue 24)
class _Waiter:
    """A thread asking for a slot; records its places and when it got in."""

    def __init__(self, limiter: AdmissionLimiter, heavy: bool, visitor: tuple = ()) -> None:
        self.places: list[Place] = []
        self.admitted, self.release = threading.Event(), threading.Event()

        def run() -> None:
            with limiter.slot(on_queued=self.places.append, heavy=heavy, visitor=visitor):
                self.admitted.set()
                self.release.wait(WAIT)

        self.thread = threading.Thread(target=run)
        self.thread.start()

    def finish(self) -> None:
        self.release.set()
        self.thread.join(WAIT)


def test_ordinary_work_never_waits_behind_heavy_work():
    limiter = AdmissionLimiter(slots=1, heavy_slots=1, timeout=WAIT)
    heavy, release = _holder(limiter, heavy=True, visitor=("a",))
    try:
        ordinary = _Waiter(limiter, heavy=False)
        assert ordinary.admitted.wait(WAIT)
        assert ordinary.places == []  # never queued
        assert limiter.running == 2 and limiter.running_heavy == 1
        ordinary.finish()
    finally:
        release.set()
        heavy.join(WAIT)


def test_heavy_work_gets_at_most_its_share_of_slots():
    limiter = AdmissionLimiter(slots=4, timeout=WAIT)
    assert limiter.heavy_slots == 2
    first, second = _Waiter(limiter, True, ("a",)), _Waiter(limiter, True, ("b",))
    assert first.admitted.wait(WAIT) and second.admitted.wait(WAIT)
    third = _Waiter(limiter, True, ("c",))
    _until(lambda: third.places == [Place(1, heavy=True)])
    assert not third.admitted.is_set() and limiter.running_heavy == 2
    # Ordinary work still gets every ordinary slot meanwhile.
    ordinary = [_Waiter(limiter, False) for _ in range(4)]
    for waiter in ordinary:
        assert waiter.admitted.wait(WAIT)
        assert waiter.places == []
    first.finish()
    assert third.admitted.wait(WAIT)
    for waiter in (second, third, *ordinary):
        waiter.finish()
    assert limiter.running == 0 and limiter.waiting == 0


def test_one_heavy_request_in_flight_per_session_others_go_ahead():
    limiter = AdmissionLimiter(slots=4, heavy_slots=2, timeout=WAIT)
    running = _Waiter(limiter, True, ("session-1",))
    assert running.admitted.wait(WAIT)
    second_tab = _Waiter(limiter, True, ("session-1",))
    _until(lambda: second_tab.places == [Place(1, heavy=True, own_in_flight=True)])
    # Another visitor, arriving later, takes the free heavy slot ahead of it.
    other = _Waiter(limiter, True, ("session-2",))
    assert other.admitted.wait(WAIT)
    assert not second_tab.admitted.is_set()
    running.finish()
    assert second_tab.admitted.wait(WAIT)
    for waiter in (second_tab, other):
        waiter.finish()
    assert limiter.running == 0


def test_one_heavy_request_in_flight_per_client_address():
    limiter = AdmissionLimiter(slots=4, heavy_slots=2, timeout=WAIT)
    first = _Waiter(limiter, True, ("session-1", "address-1"))
    assert first.admitted.wait(WAIT)
    # Another tab (a new session) from the same address waits like the same session would.
    other_tab = _Waiter(limiter, True, ("session-2", "address-1"))
    _until(lambda: other_tab.places == [Place(1, heavy=True, own_in_flight=True)])
    first.finish()
    assert other_tab.admitted.wait(WAIT)
    other_tab.finish()


def test_nested_heavy_work_inside_a_slot_passes_through():
    limiter = AdmissionLimiter(slots=1, heavy_slots=1, timeout=0.5)
    outer = limiter.slot(heavy=True, visitor=("a",))
    inner = limiter.slot(heavy=True, visitor=("a",))  # would wait for itself if counted
    with outer, inner:
        assert limiter.running_heavy == 1


def test_a_busy_heavy_line_says_so():
    limiter = AdmissionLimiter(slots=2, heavy_slots=1, timeout=WAIT)
    holder, release = _holder(limiter, heavy=True, visitor=("a",))
    try:
        busy = pytest.raises(ServerBusyError, match="heavy requests")
        with busy, limiter.slot("flow", timeout=0.05, heavy=True, visitor=("b",)):
            raise AssertionError("must not be admitted")
    finally:
        release.set()
        holder.join(WAIT)


def test_heavy_is_judged_by_multiply_adds():
    from transformers import BertConfig

    from core.costs import forward_multiply_adds
    from core.methods import get_method

    minilm = BertConfig(num_hidden_layers=6, hidden_size=384, intermediate_size=1536)
    bert_base = BertConfig()
    assert not is_heavy(forward_multiply_adds(minilm, 60))  # an ordinary page's pass
    assert not is_heavy(forward_multiply_adds(minilm, 512))  # even a long text's
    flow_chunk = get_method("flow").cost.passes(512, 6, rows=8, layers=1)
    assert is_heavy(flow_chunk * forward_multiply_adds(minilm, 512))
    zeroing = get_method("value_zeroing").cost.passes(128, 12, layers=1)
    assert is_heavy(zeroing * forward_multiply_adds(bert_base, 128))


# ---------------------------------------------------------------- heavy work gives way (issue 24)
def _heavy_worker(limiter: AdmissionLimiter, steps: list[int], go: threading.Event):
    """A thread that takes a heavy slot, waits for `go`, then records two steps (each a call
    of this file's code: a safe point)."""

    def record(step: int) -> None:
        steps.append(step)

    def work() -> None:
        with limiter.slot("flow", heavy=True, visitor=(("session", "heavy"),)):
            record(1)
            go.wait(WAIT)
            record(2)

    thread = threading.Thread(target=work)
    thread.start()
    _until(lambda: steps == [1])
    return thread


def test_heavy_work_pauses_while_an_ordinary_page_runs():
    limiter = AdmissionLimiter(slots=2, timeout=WAIT, pause=WAIT)
    steps: list[int] = []
    go = threading.Event()
    heavy = _heavy_worker(limiter, steps, go)
    with limiter.ordinary_work():
        assert limiter.ordinary_in_flight == 1
        go.set()
        _until(lambda: limiter.paused_now == 1)  # at its next call, not after its work
        assert steps == [1]
    heavy.join(WAIT)  # the page is done: the heavy work goes on at once
    assert steps == [1, 2]
    assert limiter.paused_now == 0 and limiter.ordinary_in_flight == 0


def test_heavy_work_pauses_for_ordinary_slots_and_ordinary_work_in_line():
    limiter = AdmissionLimiter(slots=1, timeout=WAIT, pause=WAIT)
    steps: list[int] = []
    go = threading.Event()
    heavy = _heavy_worker(limiter, steps, go)
    holder, release = _holder(limiter)  # an ordinary computation running
    waiter_done = threading.Event()

    def wait_in_line() -> None:
        with limiter.slot():
            pass
        waiter_done.set()

    waiter = threading.Thread(target=wait_in_line)
    waiter.start()
    _until(lambda: limiter.waiting == 1)
    go.set()
    _until(lambda: limiter.paused_now == 1)
    release.set()  # the running one ends, then the one in line runs
    holder.join(WAIT)
    waiter.join(WAIT)
    assert waiter_done.is_set()
    heavy.join(WAIT)
    assert steps == [1, 2] and limiter.paused_now == 0


def test_a_pause_is_bounded_so_heavy_work_is_never_starved():
    limiter = AdmissionLimiter(slots=2, timeout=WAIT, pause=0.01)
    steps: list[int] = []
    go = threading.Event()
    with limiter.ordinary_work():  # ordinary work that never ends while the heavy one runs
        heavy = _heavy_worker(limiter, steps, go)
        go.set()
        heavy.join(WAIT)
        assert steps == [1, 2]


def test_an_ordinary_page_that_starts_heavy_work_does_not_wait_for_itself():
    limiter = AdmissionLimiter(slots=2, timeout=WAIT, pause=WAIT)
    with limiter.ordinary_work():
        with limiter.slot("flow", heavy=True):
            assert limiter.ordinary_in_flight == 0
            limiter.give_way()
            sum(range(10))  # a call: a safe point
        assert limiter.ordinary_in_flight == 1
    assert limiter.paused_seconds() == 0.0


def test_give_way_pauses_only_a_thread_holding_a_heavy_slot():
    limiter = AdmissionLimiter(slots=2, timeout=WAIT, pause=WAIT)
    paused = threading.Event()

    def other_page() -> None:
        with limiter.ordinary_work():
            paused.wait(WAIT)

    page = threading.Thread(target=other_page)
    page.start()
    _until(lambda: limiter.ordinary_in_flight == 1)
    with limiter.slot("forward"):  # ordinary work: never paused
        limiter.give_way()
    assert limiter.paused_seconds() == 0.0
    paused.set()
    page.join(WAIT)


def test_no_pause_where_a_lock_other_visitors_need_may_be_held():
    import sys

    from core.loading_lock import LOADING_LOCK
    from server.admission import _safe_to_pause

    here = sys._getframe()
    assert _safe_to_pause(here)
    namespace: dict = {"sys": sys}
    streamlit_file = str(Path(threading.__file__).parent / "site-packages/streamlit/runtime.py")
    exec(compile("def inner():\n    return sys._getframe()\n", streamlit_file, "exec"), namespace)
    assert not _safe_to_pause(namespace["inner"]())  # Streamlit's code, called from here
    with LOADING_LOCK:
        assert not _safe_to_pause(here)


def test_the_profile_function_is_removed_when_the_heavy_slot_is_released():
    import sys

    limiter = AdmissionLimiter(slots=2, timeout=WAIT)
    assert sys.getprofile() is None
    with limiter.slot("flow", heavy=True):
        assert sys.getprofile() is not None
        with limiter.slot("inner", heavy=True):  # reentrant: the same one
            pass
        assert sys.getprofile() is not None
    assert sys.getprofile() is None

    def profiler(frame, event, arg) -> None:  # someone else's profiler is left alone
        return None

    sys.setprofile(profiler)
    try:
        with limiter.slot("flow", heavy=True):
            assert sys.getprofile() is profiler
    finally:
        sys.setprofile(None)


def test_route_contributions_is_heavy_and_its_forward_pass_is_not():
    from transformers import BertConfig

    from core.costs import ATTENTION, ROUTE_CONTRIBUTIONS, forward_multiply_adds

    minilm = BertConfig(
        hidden_size=384, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=12
    )
    n = 128
    one_pass = forward_multiply_adds(minilm, n)
    assert not is_heavy(ATTENTION.passes(n, 6, 12) * one_pass)
    assert is_heavy((1 + ROUTE_CONTRIBUTIONS.passes(n, 6, 12)) * one_pass)
