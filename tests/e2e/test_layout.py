"""Layout in a real browser: every page, in a few states, at 1024 and 1440 px, light and dark.

Checked on the painted page (Chromium, the real server):

- no chart (Vega canvas or SVG, the head view) is wider than its column or the viewport;
- no two elements of a page overlap, and no drawing runs over another element (a line view
  over a caption): the boxes of the main area's element containers and of each drawing are
  compared pairwise.

Vega draws on a canvas, so single axis labels are not in the DOM; that every bar is labelled
at the planned width is checked on the specs (`tests/core/charts`, `tests/pages`).

The dark theme is the server's (`theme.base`), so it runs on a second server with fewer states.
"""

from __future__ import annotations

import pytest

from tests.e2e.harness import (
    block_external_requests,
    long_text,
    running_app,
    wait_for_charts,
    wait_for_run,
)

pytestmark = pytest.mark.e2e

TEXT = "The cat sat on the mat because it was tired."
# (id, path, query, charts at least, compare replacement)
STATES = [
    ("attention-short", "/", {"text": TEXT, "head": "all", "token": "2"}, 2, None),
    ("attention-pair", "/", {"text": TEXT, "pair": "It was very comfortable."}, 2, None),
    ("attention-120", "/", {"text": long_text(120)}, 2, None),
    ("overview", "/overview", {"text": TEXT}, 1, None),
    ("masked-no-head", "/masked", {"text": "The cat sat on the [MASK]."}, 1, None),
    ("compare-replace", "/compare", {"text": TEXT}, 3, "dog"),
]
DARK_STATES = ["attention-short", "compare-replace"]
WIDTHS = (1024, 1440)

# Boxes of the visible element containers of the main area (nested containers are left to
# their parents: a column's children lie inside it by construction), and of each chart with
# the column it sits in.
_BOXES = """() => {
    const main = document.querySelector("[data-testid='stMain']");
    // A collapsed expander keeps its content laid out (and measurable) but not shown.
    const visible = (el) => el.offsetParent !== null && el.getBoundingClientRect().height > 2
        && !el.closest('details:not([open])');
    const leaves = [...main.querySelectorAll("[data-testid='stElementContainer']")]
        .filter(visible)
        .filter((el) => !el.querySelector("[data-testid='stElementContainer']"));
    const box = (el) => { const r = el.getBoundingClientRect();
        return {x: r.left, y: r.top, r: r.right, b: r.bottom}; };
    const drawings = [...main.querySelectorAll(
        "[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg.marks, "
        + "iframe, [data-testid='stBidiComponent']")].filter(visible);
    const charts = drawings.map((el) => {
        const column = el.closest("[data-testid='stColumn']")
            || el.closest("[data-testid='stVerticalBlock']");
        const own = el.closest("[data-testid='stElementContainer']");
        return {what: el.tagName, chart: box(el), column: box(column),
                container: leaves.indexOf(own)};
    });
    const subtitles = [...main.querySelectorAll("[data-testid='stVegaLiteChart']")]
        .map((el) => el.getAttribute('aria-label') || '');
    return {leaves: leaves.map((el) => ({...box(el), text: el.innerText.slice(0, 40)})),
            charts, width: window.innerWidth, subtitles};
}"""


def overlaps(a: dict, b: dict, slack: float = 2.0) -> bool:
    return (
        a["x"] + slack < b["r"]
        and b["x"] + slack < a["r"]
        and a["y"] + slack < b["b"]
        and b["y"] + slack < a["b"]
    )


def check_layout(page) -> list[str]:
    found = page.evaluate(_BOXES)
    problems = []
    for chart in found["charts"]:
        right = chart["chart"]["r"]
        if right > found["width"] + 1:
            problems.append(f"{chart['what']} ends at {right:.0f} px, past the viewport")
        if right > chart["column"]["r"] + 2:
            problems.append(
                f"{chart['what']} ends at {right:.0f} px, past its column "
                f"({chart['column']['r']:.0f} px)"
            )
    leaves = found["leaves"]
    for chart in found["charts"]:
        # A drawing that overflows its own element (a line view over the caption below it).
        for index, leaf in enumerate(leaves):
            if index != chart["container"] and overlaps(chart["chart"], leaf):
                problems.append(f"{chart['what']} is drawn over {leaf['text']!r}")
    for i, a in enumerate(leaves):
        for b in leaves[i + 1 :]:
            if overlaps(a, b):
                problems.append(f"{a['text']!r} overlaps {b['text']!r}")
    return problems


def open_state(browser, app, state, width: int):
    _, path, query, charts, replacement = state
    context = browser.new_context(viewport={"width": width, "height": 900})
    block_external_requests(context)
    page = context.new_page()
    page.goto(app.url(path, **query))
    wait_for_run(page)
    if replacement:
        field = page.get_by_label("Replacement")
        field.fill(replacement)
        field.press("Enter")
        page.wait_for_timeout(500)
        wait_for_run(page)
    if charts:
        wait_for_charts(page, charts)
    page.wait_for_timeout(500)  # Vega lays out once more after the container's width settles
    return context, page


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("state", STATES, ids=[s[0] for s in STATES])
def test_layout_light(browser, app, state, width):
    context, page = open_state(browser, app, state, width)
    try:
        assert check_layout(page) == []
    finally:
        context.close()


@pytest.fixture(scope="module")
def dark_app():
    with running_app(env={"STREAMLIT_THEME_BASE": "dark"}) as server:
        yield server


@pytest.mark.parametrize("state", [s for s in STATES if s[0] in DARK_STATES], ids=DARK_STATES)
def test_layout_dark(browser, dark_app, state):
    context, page = open_state(browser, dark_app, state, 1024)
    try:
        background = page.evaluate(
            "() => getComputedStyle(document.querySelector(\"[data-testid='stApp']\"))"
            ".backgroundColor"
        )
        # The dark theme is on: a dark background (each channel below 100).
        channels = [int(c) for c in background[background.index("(") + 1 : -1].split(",")[:3]]
        assert max(channels) < 100, background
        assert check_layout(page) == []
    finally:
        context.close()
