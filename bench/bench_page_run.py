"""The Attention page's own Python for a layer change, in process (issue 22).

    python bench/bench_page_run.py [--tokens 512] [--runs 15] [--profile]

The browser's figure for a layer change made with the Layer control (`bench_interactions.py`)
is the page run plus sending its messages and painting; this script times the page run alone,
under Streamlit's AppTest with the BERT-base-shaped model (12 × 12, random weights,
`bench_browser.build_bert_base`): the Layer box is set to another layer and the app run, after
two warm-up runs. It reports the median (min–max) of the page function's time (`ui.page.run`'s
render) and of the whole app run; `--profile` prints the cumulative profile of the renders.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_browser import build_bert_base, texts_for  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    from streamlit.testing.v1 import AppTest

    import ui.page
    from ui.runtime import patch_pages_manager

    model = Path(tempfile.mkdtemp(prefix="atlas-page-run-")) / "bert"
    model.mkdir()
    build_bert_base(model)
    patch_pages_manager()

    profile = cProfile.Profile()
    renders: list[float] = []
    profiling = {"on": False}
    original_run = ui.page.run

    def timed_run(name, render, **options):
        # Wraps the page's render so only its own time is counted (not the sidebar's).
        def timed(page):
            start = time.perf_counter()
            if profiling["on"]:
                profile.enable()
            try:
                render(page)
            finally:
                if profiling["on"]:
                    profile.disable()
                renders.append((time.perf_counter() - start) * 1000)

        return original_run(name, timed, **options)

    ui.page.run = timed_run
    app = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=900)
    app.query_params["text"] = texts_for([args.tokens])[args.tokens]
    app.query_params["model"] = str(model)
    app.run()
    assert not app.exception, app.exception

    page_ms, app_ms = [], []
    load_before = os.getloadavg()
    for index in range(args.runs + 2):
        layer_box = next(box for box in app.selectbox if box.label == "Layer")
        layer_box.set_value(index % 11 + 1)
        profiling["on"] = args.profile and index >= 2
        renders.clear()
        start = time.perf_counter()
        app.run()
        elapsed = (time.perf_counter() - start) * 1000
        assert not app.exception, app.exception
        if index >= 2:  # two warm-up runs
            app_ms.append(elapsed)
            page_ms.append(sum(renders))

    def summary(values: list[float]) -> str:
        return f"{statistics.median(values):.0f} ms ({min(values):.0f}–{max(values):.0f})"

    print(
        f"{args.tokens} tokens, {args.runs} layer changes: page render {summary(page_ms)}, "
        f"whole app run {summary(app_ms)}; load {load_before} → {os.getloadavg()}"
    )
    if args.profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
