"""Long computations on a page: a progress bar in units of work, Stop, and Continue.

A long computation is done in parts, each kept in the result store as it finishes. While parts
are missing the page shows Stop: a click on it (or on any other widget) interrupts the run at
its next Streamlit call, the progress bar's next update, and the parts finished stay stored.
The next run of the same request shows what is done and a "Continue computing" button instead
of starting again by itself. The Attention page's costly methods (flow, value zeroing) and the
Explain page's agreement table and contribution graph go through here.

Heavy work gives way to other visitors' ordinary pages (`server.admission`): each progress
report is a point where it pauses while they run, and the bar says how long it paused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

import streamlit as st

from core.methods import Progress
from server import admission

STOPPED_KEY = "atlas_stopped"
"""Session key prefix: `f"{STOPPED_KEY}_{name}"` holds the request stopped on that control."""


def stopped(name: str, request: Hashable) -> bool:
    """True while `request` stays stopped: the page then shows what is done.

    False when it should be computed: it was never stopped, or the visitor clicked "Continue
    computing" (drawn here while it is stopped) in this run.
    """
    key = f"{STOPPED_KEY}_{name}"
    if st.session_state.get(key) != request:
        return False
    if st.button("Continue computing", key=f"{name}_continue"):
        st.session_state.pop(key)
        return False
    return True


def stop_button(name: str, request: Hashable, help: str) -> None:
    """The Stop button of a computation that is about to run (draw it before starting)."""
    st.button("Stop", key=f"{name}_stop", on_click=_mark_stopped, args=(name, request), help=help)


def _mark_stopped(name: str, request: Hashable) -> None:
    st.session_state[f"{STOPPED_KEY}_{name}"] = request


def progress_text(
    what: str,
    done: float,
    total: float,
    elapsed: float,
    unit: str = "tokens",
    step: str | None = None,
    paused: float = 0.0,
) -> str:
    """`"value zeroing: 12 of 40 tokens done, about 7 s left"` (no estimate before any work).

    With `step` (e.g. "step 2 of 8") the step replaces the count: the parts of a computation
    in steps are counted in estimated costs, which mean nothing to a visitor. `paused` seconds
    (a second or more) spent letting other visitors' pages go first are said too.
    """
    left = elapsed / done * (total - done) if done > 0 else None
    estimate = f", about {left:.0f} s left" if left is not None else ""
    if paused >= 1:
        estimate += f" (paused {paused:.0f} s so far while other visitors' pages ran)"
    if step is not None:
        return f"{what} ({step}){estimate}"
    return f"{what}: {done:.0f} of {total} {unit} done{estimate}"


class ProgressBar:
    """One progress bar over the parts of a computation, counted in `unit`s (e.g. tokens).

    `part(size)` gives the `progress(done, total)` callback of the next part, which is `size`
    units of the whole; the parts' own totals may be in any unit (a method counts its own).
    The time left is the elapsed time scaled by the units still to do.
    """

    def __init__(self, what: str, total: float, unit: str = "tokens") -> None:
        self.what = what
        self.total = total if total > 0 else 1
        self.unit = unit
        self.counted = 0.0
        self.started = time.monotonic()
        self.paused_before = admission.paused_seconds()
        self.bar = st.progress(0.0, text=f"Computing {what}…")

    def part(
        self,
        size: float,
        what: str | None = None,
        check: Callable[[int, int], object] | None = None,
        step: str | None = None,
    ) -> Progress:
        """The callback of the next `size` units, labelled `what` (default: the bar's).

        `check(done, total)` runs first on every call (a time budget that raises); `step`
        is shown instead of the count (`progress_text`).
        """
        before = self.counted
        self.counted += size
        label = what or self.what

        def progress(done: int, total: int) -> bool:
            admission.give_way()  # a chunk boundary: other visitors' pages first
            if check is not None:
                check(done, total)
            units = before + size * done / max(total, 1)
            elapsed = time.monotonic() - self.started
            paused = admission.paused_seconds() - self.paused_before
            self.bar.progress(
                min(units / self.total, 1.0),
                text=progress_text(label, units, self.total, elapsed, self.unit, step, paused),
            )
            return True

        progress(0, 1)  # the part's label shows from its start, before its first report
        return progress

    def close(self) -> None:
        self.bar.empty()
