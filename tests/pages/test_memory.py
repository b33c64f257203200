"""Issue 12, item 1: a session kept after its visitor left must not keep results alive.

The server keeps a disconnected session (its widget metadata, callbacks and download
callables) until a new connection arrives after a timeout. Functions a page script defines at
its top level hold the script's globals, so a page that kept `result` there pinned every
visitor's last result. Here each page runs in a session that stays alive; once the shared
store lets go of its entries, every result must be collectable.
"""

from __future__ import annotations

import gc
import weakref

import pytest

from tests.pages.conftest import assert_clean, on_page
from ui.cache import result_store

PAGE_STEPS = {
    "pages/attention.py": [],
    "pages/overview.py": [],
    "pages/masked.py": [],
    "pages/compare.py": [("text_input", "w_replacement", "dog")],
}


@pytest.mark.parametrize("page", list(PAGE_STEPS), ids=lambda p: p.split("/")[-1])
def test_results_are_collectable_while_the_session_lives(page):
    store = result_store()
    store.clear()
    at = on_page(page, text="The cat sat on the [MASK] because it was tired.", head=1)
    for kind, key, value in PAGE_STEPS[page]:
        getattr(at, kind)(key=key).set_value(value).run()
    assert_clean(at)
    held = [weakref.ref(value) for value in store.values() if _weakrefable(value)]
    assert held, "the page stored nothing: the test would prove nothing"
    store.clear()
    gc.collect()
    alive = [type(ref()).__name__ for ref in held if ref() is not None]
    assert not alive, f"still reachable from the kept session: {alive}"
    assert at.session_state  # the session itself is still there


def _weakrefable(value: object) -> bool:
    try:
        weakref.ref(value)
    except TypeError:  # bytes, tuples: not results
        return False
    return True


def test_a_text_beyond_the_memory_is_refused_saying_what_to_lower(
    tiny_model_path, tmp_path, monkeypatch
):
    """Issue 21: a private install judges each text by what its result keeps (queries, keys,
    normalisers) and its forward pass, and names what to lower when it does not fit."""
    import json
    import shutil

    import server.memory
    from core.models import load_config
    from tests.pages.conftest import start

    directory = tmp_path / "long-llama"
    shutil.copytree(tiny_model_path("llama"), directory)
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 8192}))
    tokenizer = json.loads((directory / "tokenizer_config.json").read_text())
    (directory / "tokenizer_config.json").write_text(
        json.dumps({**tokenizer, "model_max_length": 8192})
    )
    # Room for the weights and a 2,000-token text: the model loads, a 7,000-token one does not fit.
    room = server.memory.text_memory_bytes(load_config(str(directory)), 2_000) + 1_000_000
    monkeypatch.setattr(server.memory, "available_memory_bytes", lambda *a, **k: room)
    at = start(model=str(directory), text="the cat sat on the mat . " * 800)
    assert_clean(at)
    errors = [e.value for e in at.error]
    assert len(errors) == 1, errors
    assert "fewer tokens" in errors[0] and "tokens fit" in errors[0]
    assert "bfloat16" in errors[0]  # a float32 model: half the memory per token in bfloat16
    for wrong in ("may not be a text model", "public deployment", str(directory)):
        assert wrong not in errors[0]
