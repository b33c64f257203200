"""The Compare page's explorer (issue 22): what a layer costs the server, and what the browser
repaints without a page run, on the embedded model (6 layers × 12 heads).

    python bench/bench_compare.py [--sizes 128 509] [--repeats 3]

Server: `ui.compare.replacement_payload` + `pack_compare` of one layer (before, after and the
word-level difference, every head and the mean; "cat" → "hippopotamus"), best of `--repeats`,
plain and with "without the first token"; the message's size. 509 tokens keep the after text
(3 more pieces) within the model's 512.

Browser (headless Chromium, 1440 × 900, the real app): after a warm-up head change (the first
run after a load mounts the component anew), the synchronous time of a head chip click until
the three panels are repainted (five chips), and the lead panel's view repaint per "+" zoom
step, which includes aligning and repainting the other two (``data-view-ms``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import (
    block_external_requests,
    launch_browser,
    long_text,
    running_app,
    start_counting_runs,
    wait_for_next_run,
    wait_for_run,
)

_GROUP = """(h => h && h.shadowRoot.querySelector('.ex-compare'))([...document.querySelectorAll(
    "[data-testid='stBidiComponentIsolated']")].find((h) => h.shadowRoot
    && h.shadowRoot.querySelector('.ex-compare')))"""
PANELS_WITH_HEAD = f"""(head) => {{ const g = {_GROUP};
    return Boolean(g) && [...g.querySelectorAll('.ex-root')].filter((r) => r.dataset.draws
        && (head === null || r.dataset.head === head)).length === 3; }}"""
CHIP = f"""(name) => {{ const g = {_GROUP};
    const chip = [...g.querySelectorAll('.ex-compare > .ex-bar .ex-chip')]
        .find((c) => c.textContent === name);
    const t = performance.now(); chip.click(); return performance.now() - t; }}"""
PANELS = "[data-testid='stBidiComponentIsolated'] .ex-compare .ex-root"
LEAD_VIEW_MS = f"() => Number({_GROUP}.querySelector('.ex-root').dataset.viewMs)"


def server(sizes: list[int], repeats: int) -> None:
    from core import EMBEDDED_MODEL, compare_replacement, load_model
    from ui import compare
    from ui.explorer.payload import pack_compare
    from ui.state import ViewState

    model = load_model(EMBEDDED_MODEL)
    for n in sizes:
        comparison = compare_replacement(model, long_text(n), 1, "hippopotamus")
        for without_first in (False, True):
            view = ViewState(page="compare", without_first=without_first)
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                message = pack_compare(compare.replacement_payload(comparison, view, 2, "mean"))
                times.append(time.perf_counter() - started)
            print(
                f"server, {n} tokens{', without first' if without_first else ''}: "
                f"{1000 * min(times):.0f} ms (best of {repeats}), {len(message) / 1e6:.2f} MB"
            )


def browser(sizes: list[int]) -> None:
    from playwright.sync_api import sync_playwright

    with running_app() as app, sync_playwright() as playwright:
        chromium = launch_browser(playwright)
        for n in sizes:
            context = chromium.new_context(viewport={"width": 1440, "height": 900})
            block_external_requests(context)
            page = context.new_page()
            page.set_default_timeout(180_000)
            page.goto(app.url("/compare", text=long_text(n), word="1", replacement="hippopotamus"))
            wait_for_run(page)
            page.wait_for_function(PANELS_WITH_HEAD, arg=None)
            start_counting_runs(page)
            page.evaluate(CHIP, "11")  # the warm-up head change and its run
            wait_for_next_run(page)
            page.wait_for_function(PANELS_WITH_HEAD, arg="11")
            page.wait_for_timeout(1500)
            heads = []
            for name in ["0", "1", "2", "3", "4"]:
                heads.append(page.evaluate(CHIP, name))
                page.wait_for_timeout(60)
            page.locator(
                "[data-testid='stBidiComponentIsolated'] .ex-compare .ex-root"
            ).first.focus()
            zooms = []
            for _ in range(5):
                page.keyboard.press("+")
                page.wait_for_timeout(150)
                zooms.append(page.evaluate(LEAD_VIEW_MS))
            print(
                f"browser, {n} tokens: head chip → 3 panels repainted, median "
                f"{statistics.median(heads):.0f} ms ({', '.join(f'{h:.0f}' for h in heads)}); "
                f"zoom step, 3 panels' view, median {statistics.median(zooms):.1f} ms "
                f"({', '.join(f'{z:.1f}' for z in zooms)})"
            )
            context.close()
        chromium.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 509])
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    server(arguments.sizes, arguments.repeats)
    browser(arguments.sizes)
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
