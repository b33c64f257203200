"""Screenshots of every page for the README, taken in headless Chromium from the real app.

    python docs/make_screenshots.py          # writes docs/screenshots/*.png
    python docs/make_screenshots.py corpus   # only the shots named (without .png)

Uses the same harness as the end-to-end tests (`tests/e2e/harness.py`): `streamlit run` on
127.0.0.1, Debian's Chromium through Playwright, the embedded model, no network.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.harness import (  # noqa: E402
    block_external_requests,
    launch_browser,
    running_app,
    wait_for_charts,
    wait_for_run,
)

OUT = REPO / "docs" / "screenshots"
TEXT = "The cat sat on the mat because it was tired."
# (file name, page path, query parameters, charts to wait for, px of the page to keep)
SHOTS = (
    ("attention.png", "/", {"text": TEXT, "layer": "2", "head": "all", "token": "2"}, 3, 1500),
    ("overview.png", "/overview", {"text": TEXT}, 1, 1250),
    ("masked.png", "/masked", {"text": "The cat sat on the [MASK] because it was tired."}, 2, 1250),
    ("compare.png", "/compare", {"text": TEXT}, 0, 1400),
    (
        "corpus.png",
        "/corpus",
        {"corpus_sentences": "100", "corpus_tokens": "48", "layer": "1", "head": "4"},
        0,
        1900,
    ),
)


def main(only: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    shots = [shot for shot in SHOTS if not only or shot[0].removesuffix(".png") in only]

    OUT.mkdir(parents=True, exist_ok=True)
    # The Corpus page measures into a fresh store, never the user's cache.
    store = Path(tempfile.mkdtemp()) / "corpus.duckdb"
    with (
        running_app(env={"ATLAS_CORPUS_STORE": str(store)}) as app,
        sync_playwright() as playwright,
    ):
        browser = launch_browser(playwright)
        for name, path, params, charts, height in shots:
            context = browser.new_context(viewport={"width": 1400, "height": height})
            block_external_requests(context)
            page = context.new_page()
            page.goto(app.url(path, **params))
            wait_for_run(page)
            if name == "compare.png":
                # The compare page waits for a replacement: type one, as a visitor would.
                field = page.get_by_label("Replacement")
                field.fill("dog")
                field.press("Enter")
                page.wait_for_timeout(500)
                wait_for_run(page)
                charts = 3
            if name == "corpus.png":
                # Run the corpus as a visitor does, then show the head's global view.
                page.get_by_role("button", name="Run").click()
                page.get_by_text("Measured 100 sentences").wait_for(timeout=600_000)
                wait_for_run(page)
                page.get_by_role("tab", name="Global view").click()
                page.mouse.move(0, 0)
                charts = 1
            if charts:
                wait_for_charts(page, charts)
            page.wait_for_timeout(500)
            page.screenshot(path=str(OUT / name))
            context.close()
            print(f"wrote {OUT / name}")
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1:])
