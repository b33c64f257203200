"""Process tuning and Streamlit workarounds, each in one place for the app, tests and bench."""

from __future__ import annotations

import functools
from typing import Any


def tune_process() -> None:
    """Everything the server process needs once, before any page allocates: idempotent."""
    _disable_altair_debug_mode()
    limit_memory_fragmentation()
    _limit_torch_threads()
    _freeze_startup_objects()
    _warm_up_flow_solver()
    _keep_downloads_for_a_while()


@functools.cache
def _limit_torch_threads() -> None:
    # The server admits one computation per slot at once; each gets cores // slots threads
    # (server.admission explains why). `core` never does this: a notebook keeps its threads.
    from server import admission

    admission.limit_torch_threads()


@functools.cache
def _freeze_startup_objects() -> None:
    # A full garbage collection walks every object the process tracks: with torch,
    # transformers, Altair and pandas imported that is ≈0.5 M objects and 0.3–0.5 s of CPU on
    # this VM. Streamlit runs one after every script run unless `runner.postScriptGC` is off
    # (it is in .streamlit/config.toml, which a server started from another directory does not
    # read), and Python runs its own now and then. What is alive at the first run is the
    # imported libraries, which live as long as the process: frozen, the collector skips them
    # (8 ms instead of 400 ms with a 12 × 12 model loaded) and still frees everything made
    # after. Models and results come later and stay collectable.
    import gc

    gc.collect()
    gc.freeze()


DOWNLOAD_GRACE_SECONDS = 30.0
"""How long a generated download outlives the last run that still referenced it."""


@functools.cache
def _keep_downloads_for_a_while() -> None:
    # A download button with a callable builds its file when clicked and answers with a URL
    # the browser fetches next. Streamlit deletes an unreferenced downloadable file at the
    # second orphan sweep after it appeared, and *every* session's run ends with a sweep: on a
    # shared server with several runs a second, the file was sometimes gone before the
    # browser asked for it (bench/soak.py --heavy: "download Layer 0 as JSON: HTTP Error 404").
    # Here a file marked for deletion is only deleted once it has been marked for
    # `DOWNLOAD_GRACE_SECONDS`; media files (images, audio) are not affected.
    import time

    from streamlit.runtime import media_file_manager

    metadata = getattr(media_file_manager, "MediaFileMetadata", None)
    if metadata is None or not isinstance(
        getattr(metadata, "is_marked_for_delete", None), property
    ):
        return  # another Streamlit version: leave it as it is

    def mark_for_delete(self) -> None:
        if getattr(self, "_atlas_marked_at", None) is None:
            self._atlas_marked_at = time.monotonic()

    def is_marked_for_delete(self) -> bool:
        marked_at = getattr(self, "_atlas_marked_at", None)
        return marked_at is not None and time.monotonic() - marked_at >= DOWNLOAD_GRACE_SECONDS

    metadata.mark_for_delete = mark_for_delete
    metadata.is_marked_for_delete = property(is_marked_for_delete)


@functools.cache
def _warm_up_flow_solver() -> None:
    # The flow solver is compiled by numba on first use (4.5-10 s on a fresh machine,
    # 0.2 s from its on-disk cache): do it in the background while the first page renders,
    # not when a visitor first asks for attention flow.
    import threading

    import core

    threading.Thread(target=core.flow.warm_up, name="flow-warm-up", daemon=True).start()


@functools.cache
def _disable_altair_debug_mode() -> None:
    # Altair validates every schema object as it is created ("debug mode"), which costs a
    # quarter of the Attention page's run at 512 tokens. The builders' specs are validated in
    # full by the unit tests (tests/core/test_charts.py) and the page tests.
    from altair.utils.schemapi import disable_debug_mode

    disable_debug_mode()


@functools.cache
def limit_memory_fragmentation() -> None:
    """Make glibc give freed memory back to the system; once per process, Linux only.

    Every script run is a thread, and a run allocates tens of MB for a moment (activations,
    chart data). With glibc's defaults each thread may get its own heap arena and freed large
    blocks stay in them, so under many concurrent visitors the server's RSS climbs although
    nothing leaks (bench/soak.py, "Many users at once" in bench/RESULTS.md). Two arenas and a
    fixed mmap threshold (large blocks mapped and unmapped on their own) keep it in check.
    MALLOC_ARENA_MAX and MALLOC_MMAP_THRESHOLD_ in the environment do the same, but Community
    Cloud cannot set them before Python starts; when MALLOC_ARENA_MAX is set, it wins.
    """
    import ctypes
    import os
    import sys

    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
    mallopt(m_arena_max, 2)
    mallopt(m_mmap_threshold, 128 * 1024)
    mallopt(m_trim_threshold, 128 * 1024)


def skip_final_validation(chart: Any) -> Any:
    """`chart` whose `to_dict()` skips Altair's validation of the finished spec; returns it.

    Altair checks every chart against the whole Vega-Lite JSON schema when Streamlit converts
    it: 0.13 s of the 0.40 s the Attention page's four charts take at 512 tokens
    (bench/bench_server.py). The specs every builder makes are validated in full by
    tests/core/test_charts.py, and those the pages send by tests/pages/test_chart_specs.py.
    """
    # Streamlit calls `chart.to_dict()`; an instance attribute takes precedence over the
    # method (SchemaBase would store a normal assignment as a chart property).
    object.__setattr__(chart, "to_dict", functools.partial(chart.to_dict, validate=False))
    return chart


def leave_legacy_pages_mode() -> None:
    """Tell Streamlit this app routes with `st.navigation`, not a `pages/` folder.

    A folder named `pages/` makes Streamlit start in its legacy multipage mode, in which the
    first request of a fresh server for a page URL (a shared link to /overview, say) runs the
    page file alone, and AppTest re-detects the folder before every run. The real server leaves
    that mode for good on its first `st.navigation` call; this does it at once.
    """
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False


def patch_pages_manager() -> None:
    """Leave legacy mode whenever Streamlit makes a pages manager (AppTest, bench).

    `leave_legacy_pages_mode` for drivers that build a fresh manager per run; undo with
    `unpatch_pages_manager`.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager.__init__, "_atlas_original", None) is not None:
        return
    original = PagesManager.__init__

    def init(self, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        leave_legacy_pages_mode()

    init._atlas_original = original  # type: ignore[attr-defined]
    PagesManager.__init__ = init  # type: ignore[method-assign]


def unpatch_pages_manager() -> None:
    from streamlit.runtime.pages_manager import PagesManager

    original = getattr(PagesManager.__init__, "_atlas_original", None)
    if original is not None:
        PagesManager.__init__ = original  # type: ignore[method-assign]
