"""A fair share per visitor in the real app (issue 24): a heavy view waits as a whole in the
heavy line, says where it waits, and gives up with a message; ordinary views do not wait."""

from __future__ import annotations

import threading

import pytest

from server import admission
from tests.pages.conftest import assert_clean, explorer_drawn, start

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
