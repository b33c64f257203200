"""Process tuning and the Streamlit workarounds kept in one place."""

import gc
import weakref

import altair as alt
import pandas as pd
import pytest
from altair.utils.schemapi import SchemaValidationError
from streamlit.runtime.pages_manager import PagesManager

from ui.runtime import (
    leave_legacy_pages_mode,
    patch_pages_manager,
    skip_final_validation,
    tune_process,
    unpatch_pages_manager,
)


def test_tuning_twice_is_harmless():
    tune_process()
    tune_process()


def test_startup_objects_are_frozen_and_later_cycles_still_collected():
    tune_process()
    # The libraries imported before the first run are out of the collector's walk...
    assert gc.get_freeze_count() > 10_000

    class Node:
        pass

    # ...and garbage made after it is still found, cycles included.
    first, second = Node(), Node()
    first.other, second.other = second, first
    alive = weakref.ref(first)
    del first, second
    gc.collect()
    assert alive() is None


def test_the_pages_folder_workaround_is_undone_cleanly():
    original = PagesManager.__init__
    patch_pages_manager()
    patch_pages_manager()  # idempotent: one wrapper only
    assert PagesManager.__init__ is not original
    unpatch_pages_manager()
    assert PagesManager.__init__ is original
    leave_legacy_pages_mode()
    assert PagesManager.uses_pages_directory is False


def test_charts_skip_only_the_final_validation():
    data = pd.DataFrame({"x": [1, 2]})
    chart = alt.Chart(data).mark_bar().encode(x="x:Q")
    expected = chart.to_dict()
    assert skip_final_validation(chart).to_dict() == expected
    # An invalid property would fail validation; skipped, the spec is still produced.
    broken = alt.Chart(data).mark_bar()
    broken.mark = "not-a-mark"
    with pytest.raises(SchemaValidationError):
        broken.to_dict()
    assert skip_final_validation(broken).to_dict()["mark"] == {"type": "not-a-mark"}


def test_a_generated_download_survives_other_sessions_sweeps_for_a_while(monkeypatch):
    """Every run of every session sweeps orphaned files; a file a download button just built
    must still be there when the browser fetches its URL."""
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.runtime.media_file_storage import MediaFileStorageError
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    from ui import runtime

    runtime._keep_downloads_for_a_while()
    now = [1000.0]
    monkeypatch.setattr("time.monotonic", lambda: now[0])
    storage = MemoryMediaFileStorage("/media")
    manager = MediaFileManager(storage)
    placeholder = manager.add_deferred(lambda: b"data", "text/csv", "coords", "layer.csv")
    url = manager.execute_deferred(placeholder)
    filename = url.rsplit("/", 1)[-1]
    for _ in range(5):  # five runs of other sessions end within the grace time
        manager.remove_orphaned_files()
    assert storage.get_file(filename).content == b"data"
    now[0] += runtime.DOWNLOAD_GRACE_SECONDS
    manager.remove_orphaned_files()
    with pytest.raises(MediaFileStorageError):
        storage.get_file(filename)
