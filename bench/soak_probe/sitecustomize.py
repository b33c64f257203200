"""A memory probe inside a soak's server (`python bench/soak.py --probe`); bench only.

Python imports `sitecustomize` at start-up from any folder on PYTHONPATH: `bench/soak.py
--probe` puts this folder there and names a directory in ATLAS_SOAK_PROBE. Without that
variable this file does nothing. With it, a daemon thread waits for a file named `request` in
that directory and answers with `report.json`: what the server holds after the visitors left,
attributed by taking it apart step by step and reading, after each step, the process's RSS and
glibc's own count of bytes in use (`mallinfo2`: `uordblks` in the heap arenas + `hblkhd` in
mmapped blocks) and free in its arenas (`fordblks`, what `malloc_trim` can hand back):

1. as it is (the soak's "after leaving" state);
2. after `gc.collect()` (cyclic garbage nobody freed yet);
3. after dropping the disconnected sessions Streamlit keeps for reconnection
   (`server.disconnectedSessionTTL`), then `gc.collect()`;
4. after clearing the app's result store (`ui.cache.result_store()`);
5. after clearing `st.cache_data`;
6. after `malloc_trim(0)` (the allocator's free blocks handed back).

Before taking anything apart it also lists every session, connected or kept, with the bytes
of the arrays, bytes and strings reachable from its `st.session_state` and widget states, and
the media files (downloads) Streamlit holds. The steps are destructive: ask once, at the end.
Nothing here is imported by the app, the tests or `core`.
"""

from __future__ import annotations

import os

_PROBE_DIR = os.environ.get("ATLAS_SOAK_PROBE")


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _mallinfo() -> dict[str, float]:
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in (
                "arena",
                "ordblks",
                "smblks",
                "hblks",
                "hblkhd",
                "usmblks",
                "fsmblks",
                "uordblks",
                "fordblks",
                "keepcost",
            )
        ]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    mb = 2**20
    return {
        "heap_in_use_mb": info.uordblks / mb,
        "mmapped_mb": info.hblkhd / mb,
        "heap_free_mb": info.fordblks / mb,
        "heap_total_mb": info.arena / mb,
    }


def _state(label: str) -> dict[str, object]:
    return {"step": label, "rss_mb": _rss_mb(), **_mallinfo()}


def _payload_bytes(value: object, seen: set[int], depth: int = 0) -> int:
    """Bytes of the arrays, tensors, bytes and strings reachable from `value` through
    containers, dataclasses and plain objects (`__dict__`), each counted once."""
    import numpy as np

    if id(value) in seen or depth > 8:
        return 0
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        base = value.base if isinstance(value.base, np.ndarray) else None
        return value.nbytes if base is None else _payload_bytes(base, seen, depth + 1)
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    if isinstance(value, str):
        return len(value)
    torch = __import__("sys").modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return value.element_size() * value.nelement()
    if isinstance(value, dict):
        children = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple | set | frozenset):
        children = list(value)
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        children = list(vars(value).values())
    elif hasattr(value, "__slots__"):
        children = [getattr(value, s, None) for s in value.__slots__]
    else:
        return 0
    return sum(_payload_bytes(child, seen, depth + 1) for child in children)


def _session_report(session: object, kept: bool) -> dict[str, object]:
    state = session._session_state  # type: ignore[attr-defined]
    seen: set[int] = set()
    per_key: dict[str, int] = {}
    for where in ("_new_session_state", "_new_widget_state", "_old_state"):
        layer = getattr(state, where, None)
        store = getattr(layer, "states", layer)
        if not isinstance(store, dict):
            continue
        for key, value in store.items():
            size = _payload_bytes(value, seen)
            if size:
                per_key[f"{where}:{key}"] = per_key.get(f"{where}:{key}", 0) + size
    queue = getattr(session, "_browser_queue", None)
    queued = getattr(queue, "_queue", [])
    return {
        "kept": kept,
        "state_mb": sum(per_key.values()) / 2**20,
        "largest": sorted(per_key.items(), key=lambda item: -item[1])[:4],
        "queued_messages": len(queued),
        "queued_mb": sum(m.ByteSize() for m in queued) / 2**20,
        "script_running": getattr(session, "_scriptrunner", None) is not None,
    }


def _in_use() -> float:
    info = _mallinfo()
    return info["heap_in_use_mb"] + info["mmapped_mb"]


def _dismantle(store: object) -> list[dict[str, object]]:
    """Drop the store's entries one by one, oldest first: per entry its kind, the bytes the
    store counted for it (`ui.store.blocks_of`), the arrays and tensors reachable from it, and
    the bytes the allocator got back when it went (what it really held)."""
    import gc

    entries = []
    with store._lock:  # type: ignore[attr-defined]
        keys = list(store._entries)  # type: ignore[attr-defined]
    for key in keys:
        with store._lock:  # type: ignore[attr-defined]
            entry = store._entries[key]  # type: ignore[attr-defined]
        value, counted = entry.value, sum(entry.blocks.values())
        reachable, kind_of = _payload_bytes(value, set()) / 2**20, type(value).__name__
        before = _in_use()
        with store._lock:  # type: ignore[attr-defined]
            del store._entries[key]  # type: ignore[attr-defined]
        del value, entry
        gc.collect()
        entries.append(
            {
                "kind": str(key[0]),
                "settings": repr(key[2:])[:80],
                "tokens_text_chars": len(getattr(key[1], "text", "")),
                "type": kind_of,
                "counted_mb": counted / 2**20,
                "reachable_mb": reachable,
                "freed_mb": before - _in_use(),
            }
        )
    store.clear()  # type: ignore[attr-defined]
    return entries


def _garbage() -> dict[str, object]:
    """Collect the cyclic garbage, keeping it (`gc.DEBUG_SAVEALL`) to say what it was: object
    counts by type, and the large payloads in it with the types of the objects around them."""
    import collections
    import gc
    import time

    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        collected = gc.collect()
        garbage = list(gc.garbage)
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
    kinds = collections.Counter(type(item).__qualname__ for item in garbage)
    heavy = {"AttentionResult", "MethodResult", "ndarray", "Tensor", "DataFrame"}
    payloads = [
        (type(item).__qualname__, _payload_bytes(item, set()) / 2**20)
        for item in garbage
        if type(item).__qualname__ in heavy
    ]
    exceptions = [
        f"{type(item).__qualname__}: {str(item)[:80]}"
        for item in garbage
        if isinstance(item, BaseException)
    ]
    frames = collections.Counter(
        f"{item.f_code.co_filename.rsplit('/', 2)[-1]}:{item.f_code.co_name}"
        for item in garbage
        if type(item).__name__ == "frame"
    )
    del garbage
    gc.collect()
    started = time.perf_counter()
    gc.collect()  # nothing left to free: what a full collection costs in this process
    seconds = time.perf_counter() - started
    return {
        "collected": collected,
        "full_collection_ms": seconds * 1000,
        "tracked_objects": len(gc.get_objects()),
        "frozen_objects": gc.get_freeze_count(),
        "by_type": kinds.most_common(25),
        "payloads_mb": sorted(payloads, key=lambda p: -p[1])[:12],
        "exceptions": exceptions[:12],
        "frames": frames.most_common(25),
    }


def _report() -> dict[str, object]:
    import ctypes
    import gc
    import sys

    from streamlit.runtime import Runtime

    runtime = Runtime.instance()
    manager = runtime._session_mgr
    storage = manager._session_storage
    active = [info.session for info in manager.list_active_sessions()]
    kept = [info.session for info in storage.list()]
    media = runtime.media_file_mgr._storage
    files = getattr(media, "_files_by_id", {})
    sessions = [_session_report(s, False) for s in active] + [
        _session_report(s, True) for s in kept
    ]
    report: dict[str, object] = {
        "sessions_connected": len(active),
        "sessions_kept": len(kept),
        "sessions_state_mb": sum(s["state_mb"] for s in sessions),
        "sessions_queued_mb": sum(s["queued_mb"] for s in sessions),
        "sessions": sessions,
        "media_files": len(files),
        "media_mb": sum(len(getattr(f, "content", b"") or b"") for f in files.values()) / 2**20,
        "gc_tracked_objects": len(gc.get_objects()),
    }
    cache_module = sys.modules.get("ui.cache")
    store = cache_module.result_store() if cache_module is not None else None
    report["result_store_mb"] = store.bytes_held / 2**20 if store is not None else None
    report["result_store_entries"] = len(store) if store is not None else None
    steps = [_state("as left")]
    report["garbage"] = _garbage()
    steps.append(_state("gc.collect()"))
    # What the TTL's expiry does: the stored SessionInfo goes, nothing else.
    for session_id in [s.id for s in kept]:
        storage.delete(session_id)
    del kept, sessions
    gc.collect()
    steps.append(_state("kept sessions dropped"))
    if store is not None:
        report["result_store"] = _dismantle(store)
    gc.collect()
    steps.append(_state("result store cleared"))
    import streamlit as st

    st.cache_data.clear()
    gc.collect()
    steps.append(_state("st.cache_data cleared"))
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    steps.append(_state("malloc_trim(0)"))
    report["steps"] = steps
    return report


def _serve(directory: str) -> None:
    import json
    import time
    import traceback
    from pathlib import Path

    folder = Path(directory)
    request = folder / "request"
    while True:
        time.sleep(0.5)
        if not request.exists():
            continue
        what = request.read_text().strip()
        request.unlink()
        try:
            answer = _report() if what != "look" else {"steps": [_state("look")]}
        except Exception:  # a diagnostic: say what failed instead of dying silently
            answer = {"error": traceback.format_exc()}
        (folder / "report.tmp").write_text(json.dumps(answer, indent=1, default=str))
        (folder / "report.tmp").rename(folder / "report.json")


if _PROBE_DIR:
    import threading

    threading.Thread(target=_serve, args=(_PROBE_DIR,), name="soak-probe", daemon=True).start()
