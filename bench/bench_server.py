"""Server-side pieces of a page run at 512 tokens, and Streamlit's own floor in a browser.

    python bench/bench_server.py            # prints the section and writes it to RESULTS.md
    python bench/bench_server.py --no-write

Measures, in one process on a BERT-base-shaped result (12 layers x 12 heads, 512 tokens,
random row-stochastic float32 attention), what the performance commits of the long-input issue
are about: a pickle round trip of the result (what `st.cache_data` does on every hit) against
the shared result store, head statistics, the all-heads thumbnails, the Attention page's four
Altair charts with and without Altair's final schema validation, and one head's word-level
difference against the whole stack on the embedded model. Then a minimal Streamlit app (one
small chart) in a fresh headless-Chromium context, measured as `bench_browser.py` measures a
view: the floor of any page on this machine. Medians of 5 (3 for the browser).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SECTION = "## Server-side pieces at 512 tokens"
MINIMAL_APP = """import altair as alt
import pandas as pd
import streamlit as st

st.title("minimal")
st.selectbox("Layer", list(range(6)))
st.altair_chart(
    alt.Chart(pd.DataFrame({"x": [1, 2, 3], "y": [3, 1, 2]})).mark_bar().encode(x="x:O", y="y:Q")
)
"""


def median_seconds(run, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def in_process() -> list[tuple[str, float]]:
    import numpy as np
    from altair.utils.schemapi import disable_debug_mode

    import core
    from core import charts
    from core.pooling import block_labels, pool_matrix, thumbnail_size
    from core.tokens import Token
    from tests.e2e.harness import long_text
    from ui.store import ResultStore

    n = 512
    rng = np.random.default_rng(0)
    attentions = rng.dirichlet(np.ones(n), size=(12, 12, n)).astype(np.float32)
    tokens = [
        Token(text=f"w{i}", index=i, word_index=i, is_special=i in (0, n - 1)) for i in range(n)
    ]
    result = core.AttentionResult(
        model_name="bert-base shape",
        text="",
        text_pair=None,
        tokens=tokens,
        attention_stacks={core.families.SELF: attentions},
        stack_specs=core.families.EncoderFamily.stacks,
    )
    rows: list[tuple[str, float]] = []

    blob = pickle.dumps(result)
    rows.append(
        (
            "pickle round trip of the result (st.cache_data hit)",
            median_seconds(lambda: pickle.loads(blob)),
        )
    )
    store = ResultStore(max_bytes=2**30)
    store.get("r", lambda: result)
    rows.append(("shared result store hit", median_seconds(lambda: store.get("r", lambda: result))))
    rows.append(
        ("head statistics", median_seconds(lambda: core.head_statistics(attentions, tokens)))
    )
    size = thumbnail_size(12, 12, n, budget=250_000, largest=40)
    rows.append(
        (
            f"thumbnails ({size}x{size} per head)",
            median_seconds(lambda: pool_matrix(attentions, size)),
        )
    )

    labels = [t.text for t in tokens]
    layer = attentions[3]
    matrix = layer.mean(0)
    overview = pool_matrix(matrix, 64)
    coarse = block_labels(labels, 64)

    def four_charts(validate: bool) -> None:
        built = [
            charts.attention_heatmap(overview, coarse, coarse, title="overview"),
            charts.attention_heatmap(matrix[:48, :48], labels[:48], labels[:48], title="detail"),
            charts.head_view_lines(layer[:, :48, :48], labels[:48], list(range(12)), top_k=3),
            charts.attention_bars(matrix[0], matrix[:, 0], labels, 0),
        ]
        for chart in built:
            chart.to_dict(validate=validate)

    disable_debug_mode()  # as the app does (ui/runtime.py)
    import altair as alt

    with alt.data_transformers.disable_max_rows():
        rows.append(
            (
                "Attention page's 4 charts, built and validated",
                median_seconds(lambda: four_charts(True)),
            )
        )
        rows.append(
            ("the same without the final validation", median_seconds(lambda: four_charts(False)))
        )

    model = core.load_model(core.EMBEDDED_MODEL)
    text = long_text(500)
    comparison = core.compare_replacement(model, text, 3, "dog")
    rows.append(
        (
            "one head's word-level difference (difference_for)",
            median_seconds(lambda: comparison.difference_for(2, 5)),
        )
    )
    # A fresh copy has none of the cached word-level views, so this times all of them.
    rows.append(
        (
            "the whole stack's word-level difference",
            median_seconds(lambda: dataclasses.replace(comparison).difference, 3),
        )
    )
    return rows


def browser_floor(repeat: int = 3) -> list[float]:
    import bench_browser as bb
    from playwright.sync_api import sync_playwright

    from tests.e2e.harness import block_external_requests, free_port, launch_browser

    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "minimal_app.py"
        app.write_text(MINIMAL_APP)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port),
             "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            time.sleep(6)
            times = []
            with sync_playwright() as playwright:
                browser = launch_browser(playwright)
                for _ in range(repeat + 1):  # the first visit also starts the server's session code
                    context = browser.new_context(viewport=bb.VIEWPORT)
                    block_external_requests(context)
                    page = context.new_page()
                    traffic = bb.Traffic(context, page)
                    mark = traffic.mark()
                    page.goto(f"http://127.0.0.1:{port}/")
                    run = bb.wait_for_run(page, traffic, mark, time.monotonic() + 60)
                    if isinstance(run, str):
                        raise RuntimeError(run)
                    times.append(time.monotonic() - run[0])
                    context.close()
            return times[1:]
        finally:
            os.killpg(server.pid, 9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = in_process()
    floor = browser_floor()
    lines = [
        SECTION,
        "",
        f"Run: `python bench/bench_server.py` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end. What each "
        "piece measures is in the script's docstring; medians of 5.",
        "",
        "| piece | seconds |",
        "| --- | ---: |",
        *[f"| {name} | {seconds:.3f} |" for name, seconds in rows],
        f"| minimal Streamlit app, fresh browser context, request to chart painted "
        f"(3 visits) | {', '.join(f'{t:.2f}' for t in floor)} |",
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.no_write:
        from bench_browser import write_section

        write_section(section, section=SECTION)


if __name__ == "__main__":
    main()
