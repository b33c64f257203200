"""Screenshots of every page for the README, taken in headless Chromium from the real app.

    python docs/make_screenshots.py [light] [dark]   # docs/screenshots/<page>_<width>[_dark].png

Every page at 1024 and 1440 px wide (whole page), light and dark theme.

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
    full_page_screenshot,
    launch_browser,
    running_app,
    wait_for_charts,
    wait_for_run,
)

OUT = REPO / "docs" / "screenshots"
TEXT = "The cat sat on the mat because it was tired."
WIDTHS = (1024, 1440)
THEMES = ("light", "dark")
# (name, page path, query parameters, Vega charts to wait for)
SHOTS = (
    ("attention", "/", {"text": TEXT, "layer": "2", "head": "all", "token": "2"}, 2),
    ("overview", "/overview", {"text": TEXT}, 1),
    ("masked", "/masked", {"text": "The cat sat on the [MASK] because it was tired."}, 1),
    ("compare", "/compare", {"text": TEXT}, 0),
)


def shot_name(name: str, width: int, theme: str) -> str:
    """``attention_1024.png`` (light) or ``attention_1024_dark.png``."""
    return f"{name}_{width}{'' if theme == 'light' else '_' + theme}.png"


def main(themes: tuple[str, ...] = THEMES) -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    for theme in themes:
        # The theme is the server's (`theme.base`): a query parameter only themes embeds.
        with running_app(env={"STREAMLIT_THEME_BASE": theme}) as app, sync_playwright() as pw:
            browser = launch_browser(pw)
            for width in WIDTHS:
                for name, path, params, charts in SHOTS:
                    take(browser, app, name, path, params, charts, width, theme)
            browser.close()


def take(browser, app, name, path, params, charts, width, theme) -> None:
    context = browser.new_context(viewport={"width": width, "height": 900})
    block_external_requests(context)
    page = context.new_page()
    page.goto(app.url(path, **params))
    wait_for_run(page)
    if name == "compare":
        # The compare page waits for a replacement: type one, as a visitor would.
        field = page.get_by_label("Replacement")
        field.fill("dog")
        field.press("Enter")
        page.wait_for_timeout(500)
        wait_for_run(page)
        charts = 3
    if charts:
        wait_for_charts(page, charts)
    page.wait_for_timeout(800)
    target = full_page_screenshot(page, OUT / shot_name(name, width, theme))
    context.close()
    print(f"wrote {target}")


if __name__ == "__main__":
    main(tuple(sys.argv[1:]) or THEMES)
