"""The Compare page's explorer (issue 22) in a real browser: Before, After and Difference fill
the column at 1024 and 1440 px in light and dark themes, share one view (zooming one zooms all)
and one hover (a cell hovered in Before is highlighted, word for word, in After and
Difference), with no page run while hovering or zooming; the SVG export holds all three.

The embedded model reads TEXT; "cat" (word 1) becomes "hippopotamus", four word pieces.
"""

from __future__ import annotations

import json

import pytest

from core import EMBEDDED_MODEL, compare_replacement, load_model
from tests.e2e.harness import (
    SCREENSHOTS,
    block_external_requests,
    full_page_screenshot,
    start_counting_runs,
    wait_for_next_run,
    wait_for_run,
)

pytestmark = pytest.mark.e2e

TEXT = (
    "The cat sat on the mat because it was warm and the dog was not. Later the children came "
    "home from school and played in the garden until the sun went down behind the hills."
)
PANELS = "[data-testid='stBidiComponentIsolated'] .ex-compare .ex-root"
# The compare explorer's state: the group's data attributes, each panel's and their boxes,
# the main column's box; page.evaluate does not pierce shadow roots, so it finds the host.
_STATE = """() => {
    const host = [...document.querySelectorAll("[data-testid='stBidiComponentIsolated']")]
        .find((h) => h.shadowRoot && h.shadowRoot.querySelector('.ex-compare'));
    if (!host) return null;
    const group = host.shadowRoot.querySelector('.ex-compare');
    const box = (el) => { const r = el.getBoundingClientRect();
        return {x: r.left, r: r.right, y: r.top, b: r.bottom, width: r.width, height: r.height}; };
    const column = host.closest("[data-testid='stVerticalBlock']");
    const panels = [...group.querySelectorAll('.ex-root')].map((root) => ({
        ...root.dataset, box: box(root), matrix: box(root.querySelector('.ex-matrix')),
        title: root.querySelector('.ex-title').textContent,
        tip: root.querySelector('.ex-tip').textContent,
        tipShown: root.querySelector('.ex-tip').style.display === 'block',
    }));
    return {...group.dataset, group: box(group), column: box(column), panels,
            runs: window.__atlasRuns ?? null};
}"""
# Whether panel `i`'s overlay has drawn the hover outline on cell (row, col): a pixel on the
# cell's left edge, halfway down.
_OUTLINED = """([i, row, col]) => {
    const host = [...document.querySelectorAll("[data-testid='stBidiComponentIsolated']")]
        .find((h) => h.shadowRoot && h.shadowRoot.querySelector('.ex-compare'));
    const root = host.shadowRoot.querySelectorAll('.ex-compare .ex-root')[i];
    const overlay = root.querySelector('.ex-overlay');
    const d = root.dataset, ratio = window.devicePixelRatio || 1;
    const x = (Number(d.gutter) + col * Number(d.colLabelPx)) * ratio;
    const y = (row + 0.5) * Number(d.rowPx) * ratio;
    return overlay.getContext('2d').getImageData(Math.round(x), Math.round(y), 1, 1).data[3] > 0;
}"""


@pytest.fixture(scope="module")
def comparison():
    return compare_replacement(load_model(EMBEDDED_MODEL), TEXT, 1, "hippopotamus")


@pytest.fixture
def open_compare(browser, app):
    contexts = []

    def open_(width: int, scheme: str = "light"):
        context = browser.new_context(
            viewport={"width": width, "height": 900}, color_scheme=scheme, accept_downloads=True
        )
        contexts.append(context)
        block_external_requests(context)
        page = context.new_page()
        page.set_default_timeout(120_000)
        page.goto(app.url("/compare", text=TEXT, word="1", replacement="hippopotamus"))
        wait_for_run(page)
        page.wait_for_function(f"() => ({_STATE})()?.panels.filter((p) => p.draws).length === 3")
        page.wait_for_timeout(400)  # the resize observers settle the widths
        return page

    yield open_
    for context in contexts:
        context.close()


def state(page) -> dict:
    return page.evaluate(_STATE)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [1024, 1440])
def test_three_matrices_fill_the_column(open_compare, width, scheme):
    page = open_compare(width, scheme)
    s = state(page)
    column, group, panels = s["column"], s["group"], s["panels"]
    assert abs(group["width"] - column["width"]) <= 2, (group, column)
    assert [p["title"].split(",")[0] for p in panels] == [
        "Before",
        "After: cat → hippopotamus",
        "Difference (after − before)",
    ]
    assert all(p["theme"] == scheme for p in panels)
    # Each grid row of panels spans the column: side by side where they fit, else stacked.
    rows: dict[int, list[dict]] = {}
    for panel in panels:
        rows.setdefault(round(panel["box"]["y"]), []).append(panel)
    for row in rows.values():
        assert abs(min(p["box"]["x"] for p in row) - column["x"]) <= 2
        assert abs(max(p["box"]["r"] for p in row) - column["r"]) <= 2
        # Matrices of one row start at one height (a longer legend does not push one down).
        assert max(p["matrix"]["y"] for p in row) - min(p["matrix"]["y"] for p in row) <= 2
    for panel in panels:
        assert panel["matrix"]["r"] <= column["r"] + 1 and panel["matrix"]["width"] > 250
        assert int(panel["rowLabels"]) == int(panel["rowsInView"])  # every row labelled
    assert int(s["columns"]) == (3 if width == 1440 else len(rows) and 4 - len(rows))
    page.locator("[data-testid='stBidiComponentIsolated'] .ex-compare").screenshot(
        path=str(SCREENSHOTS / f"compare-explorer-{scheme}-{width}.png")
    )


def expected_row(comparison, side: str, before_row: int) -> int:
    """The row of `side` ("after" or "difference") the explorer links Before's row to."""
    alignment = comparison.alignment
    unit = next(u for u, group in enumerate(alignment.before) if before_row in group)
    return alignment.after[unit][0] if side == "after" else unit


@pytest.mark.parametrize("width", [1024, 1440])
def test_zoom_and_hover_in_before_move_after_and_difference_without_a_page_run(
    open_compare, comparison, width
):
    page = open_compare(width)
    start_counting_runs(page)
    before = page.locator(PANELS).first
    before.focus()
    # Zooming one zooms all…
    for _ in range(3):
        page.keyboard.press("+")
    page.keyboard.press("Shift+ArrowDown")
    page.wait_for_timeout(300)
    s = state(page)
    zooms = [float(p["zoom"]) for p in s["panels"]]
    assert zooms[0] == pytest.approx(1.5**3, rel=1e-2) and all(z > 1.5 for z in zooms)
    # …onto the same words: the first row in view maps through the word units.
    first = [int(p["view"].split("-")[0]) for p in s["panels"]]
    assert first[0] > 2  # below "cat", so After's rows are 3 pieces further on
    assert first[1] == expected_row(comparison, "after", first[0])
    assert first[2] == expected_row(comparison, "difference", first[0])
    page.keyboard.press("0")
    page.wait_for_timeout(200)
    assert [p["zoom"] for p in state(page)["panels"]] == ["1.00"] * 3
    # Hover "mat" → "sat" in Before: the same words light up in After and Difference.
    mat, sat = 6, 3
    page.locator(PANELS).first.locator(".ex-matrix").scroll_into_view_if_needed()
    panel = state(page)["panels"][0]
    x = panel["matrix"]["x"] + float(panel["gutter"]) + (sat + 0.5) * float(panel["colLabelPx"])
    y = panel["matrix"]["y"] + (mat + 0.5) * float(panel["rowPx"])
    page.mouse.move(x, y)
    page.wait_for_timeout(200)
    s = state(page)
    cells = json.loads(s["hover"])
    row_after, col_after = (expected_row(comparison, "after", r) for r in (mat, sat))
    row_diff, col_diff = (expected_row(comparison, "difference", r) for r in (mat, sat))
    assert cells == [[mat, sat], [row_after, col_after], [row_diff, col_diff]]
    for panel in s["panels"]:
        assert panel["hover"].startswith("mat → sat: "), panel["hover"]
    tip = s["panels"][0]["tip"]
    assert s["panels"][0]["tipShown"] and "After: cat → hippopotamus: mat → sat" in tip
    assert "Difference (after − before): mat → sat" in tip
    for index, (row, col) in enumerate(cells):
        assert page.evaluate(_OUTLINED, [index, row, col]), index
    page.wait_for_timeout(800)  # longer than the explorer's delay before it tells the server
    assert state(page)["runs"] == 0
    page.locator("[data-testid='stBidiComponentIsolated'] .ex-compare").screenshot(
        path=str(SCREENSHOTS / f"compare-explorer-hover-{width}.png")
    )


def test_the_svg_and_png_exports_hold_all_three_panels(open_compare, tmp_path):
    page = open_compare(1440, "dark")
    buttons = page.locator(
        "[data-testid='stBidiComponentIsolated'] .ex-compare > .ex-bar .ex-button"
    )
    with page.expect_download() as png:
        buttons.filter(has_text="PNG").click()
    assert png.value.suggested_filename == "attention_compare_head_mean.png"
    png.value.save_as(tmp_path / "compare.png")
    assert (tmp_path / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with page.expect_download() as download:
        page.locator(
            "[data-testid='stBidiComponentIsolated'] .ex-compare > .ex-bar .ex-button"
        ).filter(has_text="SVG").click()
    path = tmp_path / "compare.svg"
    download.value.save_as(path)
    svg = path.read_text(encoding="utf-8")
    assert (
        svg.startswith("<svg")
        and download.value.suggested_filename == "attention_compare_head_mean.svg"
    )
    for title in ("Before", "After: cat → hippopotamus", "Difference (after − before)"):
        assert title in svg
    assert "max-|Δ|" not in svg and "colour-blind safe" in svg  # 38 words: not pooled


def test_a_head_chip_and_a_click_repaint_every_panel_then_reach_the_pickers(open_compare):
    page = open_compare(1440)
    start_counting_runs(page)
    bar = page.locator("[data-testid='stBidiComponentIsolated'] .ex-compare > .ex-bar")
    bar.locator(".ex-chip").filter(has_text="3").first.click()
    page.wait_for_timeout(150)  # the panels' titles and legends settle (well within the delay)
    # A click on "sat" (row 6) in After selects "sat" everywhere (row 3 before, unit 3).
    page.locator(PANELS).nth(1).locator(".ex-matrix").scroll_into_view_if_needed()
    after = state(page)["panels"][1]
    sat_after = 6  # [CLS] the hip ##pop ##ota ##mus sat
    page.mouse.click(
        after["matrix"]["x"] + after["matrix"]["width"] / 2,
        after["matrix"]["y"] + (sat_after + 0.5) * float(after["rowPx"]),
    )
    s = state(page)
    # Painted in the browser before any run: every panel shows head 3 and the selected word.
    assert [p["head"] for p in s["panels"]] == ["3", "3", "3"] and s["runs"] == 0
    assert [p["selected"] for p in s["panels"]] == ["3", "6", "3"]
    # Once the keys rest, one run brings the link (and the Head picker: tests/pages) along.
    wait_for_next_run(page)
    page.wait_for_timeout(500)
    full_page_screenshot(page, SCREENSHOTS / "compare-explorer-after-head.png")
    assert "head=3" in page.url
    # The selection and the zoom are the browser's: the run keeps them (even when Streamlit
    # mounts the component anew, as the first run's spinners leave).
    after_run = state(page)["panels"]
    assert [p["head"] for p in after_run] == ["3", "3", "3"]
    assert [p["selected"] for p in after_run] == ["3", "6", "3"]
