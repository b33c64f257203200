"""A one-component demo of the head view for the browser test and the benchmark.

Run by ``streamlit run tests/e2e/head_view_app.py`` (see :func:`running_demo`); the query
parameters choose the input:

``n``        tokens (default: a short sentence pair), via :func:`tests.e2e.harness.long_text`
``mode``     ``self`` (default), ``pair`` (sentence pair: A/B bands), ``causal`` or ``cross``
``layer``    layer of the embedded model (default 2)

Attention is the embedded model's (6 layers x 12 heads), so the lines look like real ones.
The page prints the token the component returned, ``selected: <index or None>``, and how many
script runs it has seen, ``runs: <n>``.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve()
SHORT = "The embeddings of the cat sat on the mat."
PAIR = "It was tired."


@contextlib.contextmanager
def running_demo(timeout: float = 120.0) -> Iterator:
    """This demo under ``streamlit run`` on 127.0.0.1; yields a harness ``App``.

    The harness's ``running_app`` always runs the dashboard itself, so this starts the same
    way (offline, headless, no file watcher, own process group) with this script instead.
    """
    from tests.e2e.harness import App, free_port

    port = free_port()
    log = Path(tempfile.mkstemp(prefix="atlas-head-view-", suffix=".log")[1])
    command = [
        sys.executable, "-m", "streamlit", "run", str(SCRIPT),
        "--server.headless", "true",
        "--server.address", "127.0.0.1",
        "--server.port", str(port),
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip
    env = {
        **__import__("os").environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(REPO),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    app = App(process, port, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"demo exited ({process.returncode}):\n{app.log_tail()}")
            with (
                contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
                urllib.request.urlopen(app.url("/_stcore/health"), timeout=2) as response,
            ):
                if response.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"demo did not start in {timeout:.0f} s:\n{app.log_tail()}")
            time.sleep(0.25)
        yield app
    finally:
        if process.poll() is None:
            import os
            import signal

            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)


def main() -> None:
    import numpy as np
    import streamlit as st

    import core
    from tests.e2e.harness import long_text
    from ui.head_view import head_view

    st.set_page_config(page_title="Head view demo", layout="wide")

    @st.cache_resource
    def model():
        return core.load_model(core.EMBEDDED_MODEL)

    @st.cache_resource
    def result(text: str, pair: str | None):
        return core.run_attention(model(), text, pair)

    params = st.query_params
    mode = params.get("mode", "self")
    n = int(params["n"]) if "n" in params else None
    layer = int(params.get("layer", 2))
    text = long_text(n) if n else SHORT
    run = result(text, PAIR if mode == "pair" else None)
    attention = run.attentions[layer]
    tokens = [token.text for token in run.tokens]
    pieces = [
        index > 0
        and not token.is_special
        and token.word_index is not None
        and token.word_index == run.tokens[index - 1].word_index
        for index, token in enumerate(run.tokens)
    ]
    st.session_state.setdefault("runs", 0)
    st.session_state.runs += 1
    st.session_state.setdefault("selected", None)

    left, main_column = st.columns([1, 2]) if params.get("narrow") else (None, st.container())
    if left is not None:
        left.write("A side column, to check the head view keeps to its own.")
    with main_column:
        st.subheader("Head view demo")
        right_tokens = None
        if mode == "cross":
            # Cross attention from the model's own rows: the first half's tokens (target)
            # attend to the second half's (source), renormalised per row.
            half = len(tokens) // 2
            block = attention[:, :half, half:]
            attention = block / np.maximum(block.sum(axis=2, keepdims=True), 1e-9)
            right_tokens, tokens = tokens[half:], tokens[:half]
            pieces = (pieces[:half], pieces[half:])
        elif mode == "causal":
            lower = np.tril(attention)
            attention = lower / lower.sum(axis=2, keepdims=True)
        selected = head_view(
            attention,
            tokens,
            right_tokens,
            selected=st.session_state.selected,
            key="demo",
            causal=mode == "causal",
            segment_b_start=run.segment_b_start if mode == "pair" else None,
            piece_marks=pieces,
        )
        st.session_state.selected = selected
        st.markdown(f"selected: `{selected}` · runs: `{st.session_state.runs}`")


if __name__ == "__main__":
    main()
