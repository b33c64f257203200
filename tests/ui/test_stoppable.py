"""The progress text of long computations (`ui.stoppable`)."""

from __future__ import annotations

from ui.stoppable import progress_text


def test_the_count_and_the_time_left_scale_with_the_work_done():
    assert progress_text("value zeroing", 0, 40, 0.0) == "value zeroing: 0 of 40 tokens done"
    # 10 tokens in 5 s: 30 more take about 15 s.
    assert progress_text("flow", 10, 40, 5.0) == "flow: 10 of 40 tokens done, about 15 s left"
    assert progress_text("flow", 40, 40, 9.0) == "flow: 40 of 40 tokens done, about 0 s left"


def test_a_step_replaces_the_count():
    text = progress_text("ALTI", 3.0, 12.0, 6.0, unit="passes", step="step 3 of 8")
    assert text == "ALTI (step 3 of 8), about 18 s left"


def test_seconds_paused_for_other_visitors_are_said_from_one_second():
    assert progress_text("flow", 10, 40, 5.0, paused=0.4) == (
        "flow: 10 of 40 tokens done, about 15 s left"
    )
    assert progress_text("flow", 10, 40, 5.0, paused=3.2) == (
        "flow: 10 of 40 tokens done, about 15 s left (paused 3 s so far while other visitors' "
        "pages ran)"
    )
