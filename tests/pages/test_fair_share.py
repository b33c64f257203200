"""A fair share per visitor in the real app (issue 24): a heavy view waits as a whole in the
heavy line, says where it waits, and gives up with a message; ordinary views do not wait."""

from __future__ import annotations

import threading

import pytest

import core.costs
from server import admission
from tests.pages.conftest import assert_clean, explorer_drawn, start
from ui.session import VIEW_KEY

WAIT = 10.0


@pytest.fixture
def heavy_line_held_by_another_visitor():
    """One ordinary and one heavy slot, short waits; the heavy one held by another visitor."""
    admission.configure(slots=1, timeout=0.2, heavy_slots=1)
    held, release = threading.Event(), threading.Event()

    def other_visitor() -> None:
        with admission.slot("flow", heavy=True, visitor=(("session", "other"),)):
            held.set()
            release.wait(60)

    holder = threading.Thread(target=other_visitor)
    holder.start()
    assert held.wait(WAIT)
    yield
    release.set()
    holder.join(WAIT)
    admission.configure()


def test_a_heavy_view_waits_its_turn_and_says_so(tiny_model_path, monkeypatch, request):
    at = start(model=tiny_model_path("bert"))  # loads the model: a first load is never held up
    assert_clean(at)
    monkeypatch.setattr(admission, "HEAVY_ATTENTION_CELLS", 1)  # every view is heavy now
    request.getfixturevalue("heavy_line_held_by_another_visitor")
    at.run()
    errors = " ".join(error.value for error in at.error)
    assert "The server is busy: your page waited" in errors and "heavy requests" in errors
    assert not at.exception


def test_an_ordinary_view_does_not_wait_behind_heavy_work(
    tiny_model_path, heavy_line_held_by_another_visitor
):
    at = start(model=tiny_model_path("bert"), text="The cat sat on the mat.")
    assert_clean(at)
    assert not at.error
    assert explorer_drawn(at)  # the attention was computed and drawn, not queued


def test_a_heavy_pages_downloads_wait_in_the_heavy_line(tiny_model_path, monkeypatch):
    import ui.cache
    from server.errors import ServerBusyError

    at = start(model=tiny_model_path("bert"))
    monkeypatch.setattr(admission, "HEAVY_ATTENTION_CELLS", 1)  # every view is heavy now
    offered: list[bool] = []

    def marked() -> bool:
        offered.append(ui.cache.in_heavy_page())
        return offered[-1]

    monkeypatch.setattr("ui.widgets.in_heavy_page", marked)
    at.run()
    assert_clean(at)
    assert offered and all(offered)  # every download button of the heavy page is marked
    admission.configure(slots=1, timeout=0.05, heavy_slots=1)
    outcome: list[object] = []

    def download() -> None:  # Streamlit builds a clicked file in a worker thread
        try:
            outcome.append(ui.cache.admitted_export(lambda: "file", 10, True))
        except ServerBusyError as error:
            outcome.append(error)

    try:
        with admission.slot("other", heavy=True, visitor=(("session", "other"),)):
            thread = threading.Thread(target=download)
            thread.start()
            thread.join(WAIT)
        assert isinstance(outcome[0], ServerBusyError)  # it waited in the heavy line
        assert ui.cache.admitted_export(lambda: "file", 10, True) == "file"  # free again
    finally:
        admission.configure()


def _recording_compare_payloads(monkeypatch) -> list[tuple[int, int]]:
    """(ordinary work in flight, heavy slots held) at each explorer payload Compare builds."""
    import ui.compare

    seen: list[tuple[int, int]] = []
    real = ui.compare.replacement_payload

    def replacement_payload(*args, **kwargs):
        limiter = admission.limiter()
        seen.append((limiter.ordinary_in_flight, limiter.running_heavy))
        return real(*args, **kwargs)

    monkeypatch.setattr(ui.compare, "replacement_payload", replacement_payload)
    return seen


def test_compare_matrices_are_ordinary_work_or_in_the_heavy_pages_slot(
    tiny_model_path, monkeypatch
):
    """Compare's before, after and difference (one explorer payload) are built inside the
    page's admission: as ordinary work (heavy work gives way to it) or, for a heavy view, in
    its heavy slot."""
    admission.configure(slots=2, timeout=WAIT, heavy_slots=1)
    try:
        seen = _recording_compare_payloads(monkeypatch)
        path = tiny_model_path("bert")
        at = start("pages/compare.py", model=path, text="The cat sat on the mat.")
        at.text_input(key="w_replacement").set_value("dog").run()
        assert_clean(at)
        assert len(seen) == 1 and all(ordinary >= 1 and heavy == 0 for ordinary, heavy in seen)
        seen.clear()
        monkeypatch.setattr(admission, "HEAVY_ATTENTION_CELLS", 1)  # every view is heavy now
        at.run()
        assert_clean(at)
        assert len(seen) == 1 and all(ordinary == 0 and heavy == 1 for ordinary, heavy in seen)
    finally:
        admission.configure()


def test_the_contribution_graph_waits_in_the_heavy_line(
    tiny_model_path, monkeypatch, heavy_line_held_by_another_visitor
):
    """`route_contributions` is weighed by its declared cost (heads × ALTI's work): with the
    heavy line held by another visitor, the graph waits there and says so; nothing else on
    the Explain page does."""
    import ui.cache

    path = str(tiny_model_path("bert"))
    text = "The cat sat on the [MASK]."
    at = start("pages/explain.py", model=path, text=text)
    assert_clean(at)
    ui.cache.result_store().clear()
    inputs = ui.cache.Inputs(path, text)
    position = at.selectbox(key="w_token").value
    ui.cache.attention(inputs)  # stored: the page's own pass and logit lens are not weighed
    ui.cache.logit_lens(inputs, position, at.session_state[VIEW_KEY].top_k)
    model = ui.cache.cached_model(path)
    n = len(ui.cache.attention(inputs).tokens)
    one_pass = core.costs.forward_multiply_adds(model.model.config, n)
    # The line between heavy and ordinary, put between a forward pass and the routes' work.
    monkeypatch.setattr(admission, "HEAVY_MULTIPLY_ADDS", 2 * one_pass)
    at.run()
    errors = [error.value for error in at.error]
    assert len(errors) == 1 and "heavy requests" in errors[0]
    assert not ui.cache.is_route_contributions_stored(inputs)
