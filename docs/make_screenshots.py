"""Screenshots of every page for the README, taken in headless Chromium from the real app.

    python docs/make_screenshots.py          # writes docs/screenshots/*.png

Uses the same harness as the end-to-end tests (`tests/e2e/harness.py`): `streamlit run` on
127.0.0.1, Debian's Chromium through Playwright, the embedded model, no network.
"""

from __future__ import annotations

import sys
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
)


def main() -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with running_app() as app, sync_playwright() as playwright:
        browser = launch_browser(playwright)
        for name, path, params, charts, height in SHOTS:
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
            if charts:
                wait_for_charts(page, charts)
            page.wait_for_timeout(500)
            page.screenshot(path=str(OUT / name))
            context.close()
            print(f"wrote {OUT / name}")
        browser.close()


if __name__ == "__main__":
    main()
