"""Screenshots of every page for the README, taken in headless Chromium from the real app.

    python docs/make_screenshots.py [light] [dark] [--only attention,explorer]
    # docs/screenshots/<page>_<width>[_dark].png

Every page (Attention, Model overview, Masked prediction, Compare, Explain, Corpus, Long
context) at 1024 and 1440 px wide (whole page), light and dark theme; and the Attention page's
explorer alone
(`explorer_<width>[_dark].png`: 128 tokens, layer 1, head 8, token 10, in a window tall enough
for its whole matrix, 2,150 px, so that its box does not scroll).

Uses the same harness as the end-to-end tests (`tests/e2e/harness.py`): `streamlit run` on
127.0.0.1, Debian's Chromium through Playwright, no network. Every page shows the embedded
model except Explain: it needs a model with a language-model head, and no such checkpoint is
offline, so the script builds a tiny *random* masked-LM checkpoint (`tests/tiny_models.py`;
its predictions are random); Long context needs a causal LM and shows a tiny random Llama
(its needle run and ablation show the layout, not a finding), and so does Compare's "Two
models" tab beside the embedded model (`compare_models_*`). The Corpus shot is taken after
a run of the bundled corpus, kept in a temporary store that the dark theme's server reopens at
once.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.harness import (  # noqa: E402
    EXPLORER,
    block_external_requests,
    full_page_screenshot,
    launch_browser,
    long_text,
    open_view,
    running_app,
    wait_for_explorer,
)

OUT = REPO / "docs" / "screenshots"
HEAD_GRID = "[data-testid='stBidiComponentIsolated'] .hg-root"
"""The overview's head grid (`ui.head_grid`); Playwright's selectors pierce its shadow root."""
TEXT = "The cat sat on the mat because it was tired."
MASKED = "The cat sat on the [MASK] because it was tired."
WIDTHS = (1024, 1440)
THEMES = ("light", "dark")
TINY_MLM = "tiny-mlm"
"""Stands for the path of the tiny random masked-LM checkpoint in `SHOTS`."""
TINY_LM = "tiny-llama"
"""Stands for the path of the tiny random Llama checkpoint (a causal LM) in `SHOTS`."""
EXPLORER_HEIGHT = 2150
"""Window height of the explorer's shots: its scroll box (78 % of the window) holds all of a
128-token matrix."""
# (name, page path, query parameters, Vega charts to wait for, options of `open_view`; "explorer":
# wait for the Attention page's explorer, "head_grid": for the overview's grid, "element": shoot
# it alone)
SHOTS = (
    (
        "attention",
        "/",
        {"text": TEXT, "layer": "2", "head": "all", "token": "2"},
        0,
        {"explorer": True},
    ),
    (
        "explorer",
        "/",
        {"text": long_text(128), "layer": "1", "head": "8", "token": "10"},
        0,
        {"explorer": True, "element": True},
    ),
    (
        "overview",
        "/overview",
        {"text": TEXT, "head_measure": "first_token_share", "layer": "2", "head": "3"},
        0,
        {"head_grid": True},
    ),
    ("masked", "/masked", {"text": MASKED}, 1, {}),
    (
        "compare",
        "/compare",
        {"text": TEXT, "word": "1", "replacement": "hippopotamus", "head": "3"},
        0,
        {"explorer": True},
    ),
    (
        "compare_models",
        "/compare",
        {"text": TEXT, "second_model": TINY_LM},
        0,
        {"explorer": True, "tab": "Two models"},
    ),
    ("explain", "/explain", {"model": TINY_MLM, "text": MASKED}, 2, {}),
    (
        "corpus",
        "/corpus",
        # Layer 0, head 2 is the embedded model's previous-token head.
        {"corpus_sentences": "100", "corpus_tokens": "48", "layer": "0", "head": "2"},
        0,
        {"corpus_run": True},
    ),
    (
        "long_context",
        "/long_context",
        {
            "model": TINY_LM,
            "text": long_text(96),
            "sink_epsilon": "0.15",
            "haystack_tokens": "200",
            "needle_run": "1",
            "ablate": "1",
            "ablate_k": "3",
        },
        5,
        {},
    ),
)


def shot_name(name: str, width: int, theme: str) -> str:
    """``attention_1024.png`` (light) or ``attention_1024_dark.png``."""
    return f"{name}_{width}{'' if theme == 'light' else '_' + theme}.png"


def main(themes: tuple[str, ...] = THEMES, only: tuple[str, ...] = ()) -> None:
    from playwright.sync_api import sync_playwright

    from tests.tiny_models import build_tiny_model

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="atlas-screenshots-") as scratch:
        tiny = {
            TINY_MLM: str(build_tiny_model("bert", Path(scratch) / TINY_MLM)),
            TINY_LM: str(build_tiny_model("llama", Path(scratch) / TINY_LM)),
        }
        env = {"ATLAS_CORPUS_STORE": str(Path(scratch) / "corpus.duckdb")}
        for theme in themes:
            # The theme is the server's (`theme.base`): a query parameter only themes embeds.
            with (
                running_app(env={**env, "STREAMLIT_THEME_BASE": theme}) as app,
                sync_playwright() as pw,
            ):
                browser = launch_browser(pw)
                for width in WIDTHS:
                    for name, path, params, charts, options in SHOTS:
                        if only and name not in only:
                            continue
                        query = {k: tiny.get(v, v) for k, v in params.items()}
                        url = app.url(path, **query)
                        take(browser, url, name, charts, options, width, theme)
                browser.close()


def take(browser, url: str, name: str, charts: int, options: dict, width: int, theme: str):
    options = dict(options)
    explorer, element = options.pop("explorer", False), options.pop("element", False)
    head_grid = options.pop("head_grid", False)
    height = EXPLORER_HEIGHT if element else 900
    context = browser.new_context(viewport={"width": width, "height": height})
    block_external_requests(context)
    page = context.new_page()
    page.set_default_timeout(180_000)
    open_view(page, url, charts=charts, settle_ms=800, timeout=300, **options)
    if explorer:
        wait_for_explorer(page)
        page.wait_for_timeout(400)  # its resize observer settles the width
    if head_grid:
        page.locator(f"{HEAD_GRID} canvas").wait_for()
        page.wait_for_timeout(600)  # the atlas image loads, then the grid paints
    target = OUT / shot_name(name, width, theme)
    if element:
        # The explorer and the page's "Matrix" heading above it.
        page.locator(EXPLORER).scroll_into_view_if_needed()
        box = page.locator(EXPLORER).bounding_box()
        top = max(0, box["y"] - 70)
        clip = {"x": max(0, box["x"] - 16), "y": top, "width": box["width"] + 32}
        clip["height"] = min(height - top, box["y"] + box["height"] + 16 - top)
        page.screenshot(path=str(target), clip=clip)
    else:
        full_page_screenshot(page, target)
    context.close()
    print(f"wrote {target}")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    only: tuple[str, ...] = ()
    if "--only" in arguments:
        at = arguments.index("--only")
        only = tuple(arguments[at + 1].split(","))
        del arguments[at : at + 2]
    main(tuple(arguments) or THEMES, only)
