"""The Attention page's explorer (issue 22) in a real browser: the matrix fills its column at
1024 and 1440 px, light and dark, labels every token of a 128-token input at 1440 (every row
at any width), and answers the keyboard, the legend and the mouse without a page run.

The embedded model (6 layers × 12 heads) reads `long_text(128)`: exactly 128 tokens.
"""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from core import EMBEDDED_MODEL, load_model, run_attention
from tests.e2e.harness import (
    EXPLORER,
    SCREENSHOTS,
    block_external_requests,
    explorer_state,
    long_text,
    start_counting_runs,
    wait_for_explorer,
    wait_for_next_run,
    wait_for_run,
)

pytestmark = pytest.mark.e2e

N = 128
MIN_ROW_PX = 11  # ui/explorer/explorer.js
MIN_LABEL_PX = 7
LINE_VIEW = "[data-testid='stBidiComponentIsolated'] .hv-root"


@pytest.fixture(scope="module")
def text() -> str:
    return long_text(N)


@pytest.fixture(scope="module")
def expected(text):
    return run_attention(load_model(EMBEDDED_MODEL), text)


@pytest.fixture
def open_page(browser, app, text):
    contexts = []

    def open_(width: int, scheme: str = "light", words: str | None = None, **query):
        context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
        contexts.append(context)
        block_external_requests(context)
        page = context.new_page()
        page.set_default_timeout(120_000)
        page.goto(app.url("/", text=words or text, **query))
        wait_for_run(page)
        wait_for_explorer(page)
        page.wait_for_timeout(300)  # the resize observer settles the width
        return page

    yield open_
    for context in contexts:
        context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [1024, 1440])
def test_fills_its_column_and_labels_every_token(open_page, width, scheme):
    page = open_page(width, scheme)
    state = explorer_state(page)
    assert state["theme"] == scheme
    column, root, matrix = state["column"], state["root"], state["matrix"]
    # The matrix fills the main column (no fixed size), and nothing runs past it.
    assert abs(root["width"] - column["width"]) <= 2, (root, column)
    assert abs(matrix["width"] - root["width"]) <= 1 and matrix["r"] <= column["r"] + 1
    assert state["bars"]["r"] <= column["r"] + 1
    # Every row is labelled: rows are at least 11 px; the matrix, taller than its box, pans
    # under its labels (the minimap shows where).
    assert int(state["rowLabels"]) == int(state["rowsInView"]) > 30
    assert float(state["rowPx"]) >= MIN_ROW_PX
    assert N * float(state["rowPx"]) > state["scroll"]["height"] >= matrix["height"]
    assert state["minimap"] == "shown" and state["zoom"] == "1.00"
    # Columns: every one labelled at 1440 px; at 1024 every k-th, k as few as 7 px allow.
    pitch = float(state["colLabelPx"])
    step = math.ceil(MIN_LABEL_PX / pitch - 1e-9)
    assert int(state["colLabels"]) >= math.ceil(N / step)
    if width == 1440:
        assert step == 1 and int(state["colLabels"]) == N
    page.locator(EXPLORER).screenshot(path=str(SCREENSHOTS / f"explorer-{scheme}-{width}.png"))


def test_labels_stay_beside_the_matrix_while_it_pans(open_page):
    page = open_page(1440)
    start_counting_runs(page)
    page.locator(EXPLORER).focus()
    for _ in range(3):
        page.keyboard.press("Shift+ArrowDown")
    page.wait_for_timeout(200)
    state = explorer_state(page)
    first_row = int(state["view"].split("-")[0])
    assert first_row > 20  # panned down…
    # …under the column labels, which stay on top, and with every row in view labelled.
    header = page.locator(f"{EXPLORER} .ex-cols").bounding_box()
    assert abs(header["y"] - state["scroll"]["y"]) <= 2
    assert int(state["rowLabels"]) == int(state["rowsInView"])
    # The wheel pans too (back up), the page does not run.
    box = state["matrix"]
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 100)
    page.mouse.wheel(0, -5000)
    page.wait_for_timeout(200)
    state = explorer_state(page)
    assert state["view"].startswith("0-") and state["runs"] == 0


def test_zoom_with_keys_wheel_drag_and_minimap_without_a_page_run(open_page):
    page = open_page(1024, token="40")
    start_counting_runs(page)
    root = page.locator(EXPLORER)
    root.focus()
    for _ in range(3):
        page.keyboard.press("+")
    page.wait_for_timeout(200)
    state = explorer_state(page)
    assert float(state["zoom"]) == pytest.approx(1.5**3, rel=1e-2)
    # Zoomed about the selected token: it stays in view; at ≥ 9 px a token, every column in
    # view is labelled (at 1024 px and zoom 1, every 2nd).
    rows, cols = (tuple(map(int, part.split("-"))) for part in state["view"].split("x"))
    assert rows[0] <= 40 <= rows[1] and cols[0] <= 40 <= cols[1]
    assert float(state["colLabelPx"]) >= 9
    assert int(state["colLabels"]) == int(state["colsInView"]) < N
    assert state["minimap"] == "shown"
    # Ctrl + wheel zooms about the pointer; "-" and "0" zoom out.
    box = state["matrix"]
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -300)
    page.keyboard.up("Control")
    page.wait_for_timeout(200)
    zoomed = float(explorer_state(page)["zoom"])
    assert zoomed > 1.5**3
    page.keyboard.press("-")
    page.wait_for_timeout(100)
    assert float(explorer_state(page)["zoom"]) == pytest.approx(zoomed / 1.5, rel=1e-2)
    # A drag pans (and selects nothing); a click on the minimap moves the view there.
    before = explorer_state(page)
    page.mouse.move(box["x"] + 300, box["y"] + 300)
    page.mouse.down()
    page.mouse.move(box["x"] + 200, box["y"] + 150, steps=5)
    page.mouse.up()
    page.wait_for_timeout(100)
    after = explorer_state(page)
    assert after["view"] != before["view"] and after["selected"] == before["selected"]
    minimap = page.locator(f"{EXPLORER} .ex-minimap").bounding_box()
    page.mouse.click(minimap["x"] + minimap["width"] - 3, minimap["y"] + minimap["height"] - 3)
    page.wait_for_timeout(100)
    state = explorer_state(page)
    assert state["view"].endswith(f"-{N - 1}") and f"-{N - 1}x" in state["view"]
    root.focus()
    page.keyboard.press("0")
    page.wait_for_timeout(100)
    assert explorer_state(page)["zoom"] == "1.00"
    assert explorer_state(page)["runs"] == 0
    # The help lists the zoom keys.
    page.keyboard.press("?")
    assert "zoom in / out" in page.locator(f"{EXPLORER} .ex-help").inner_text()
    page.locator(EXPLORER).screenshot(path=str(SCREENSHOTS / "explorer-zoomed-1024.png"))


# When each script run started (performance.now()), to compare with the moment the explorer
# sent its view: the keys are answered in the browser, the server hears of them once, after.
_RUN_TIMES = """() => {
    const app = document.querySelector("[data-testid='stApp']");
    window.__atlasRunTimes = [];
    new MutationObserver(() => {
        if (app.getAttribute('data-test-script-state') === 'running')
            window.__atlasRunTimes.push(performance.now());
    }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""


def test_keys_move_token_and_head_without_a_page_run_then_reach_the_link(open_page):
    page = open_page(1440)
    start_counting_runs(page)
    page.evaluate(_RUN_TIMES)
    before = int(explorer_state(page)["draws"])
    page.locator(EXPLORER).focus()
    for key in ["ArrowDown", "ArrowDown", "ArrowDown", "]"]:
        page.keyboard.press(key)
    state = explorer_state(page)
    assert state["focused"]
    # Painted at once, in the browser: a repaint per key.
    assert state["selected"] == "3" and state["head"] == "0"  # "]" after the mean: head 0
    assert int(state["draws"]) >= before + 4
    # The line view follows in the browser too (told by the explorer, once a key): the
    # token's lines, the head alone.
    page.locator(f"{LINE_VIEW}[data-selected='3'][data-visible-heads='0']").wait_for(
        state="attached"
    )
    assert int(page.locator(LINE_VIEW).get_attribute("data-followed")) >= 4
    # Once the keys rest, one run carries the view to the link and the controls; no run
    # started before the explorer sent it.
    wait_for_next_run(page)
    sent = float(explorer_state(page)["sentAt"])
    assert all(started >= sent for started in page.evaluate("() => window.__atlasRunTimes"))
    assert re.search(r"[?&]token=3(&|$)", page.url) and re.search(r"[?&]head=0(&|$)", page.url)
    assert page.get_by_role("combobox", name="Selected token").input_value().startswith("3: ")
    assert page.get_by_role("combobox", name="Head").input_value() == "0"
    state = explorer_state(page)
    assert state["selected"] == "3" and state["head"] == "0"  # the run's echo kept them
    # Page Down asks Python for the next layer at once, keeping head and token.
    start_counting_runs(page)
    page.locator(EXPLORER).focus()
    page.keyboard.press("PageDown")
    wait_for_next_run(page)
    assert re.search(r"[?&]layer=1(&|$)", page.url)
    state = explorer_state(page)
    assert state["selected"] == "3" and state["head"] == "0"
    # The help lists the keys.
    page.locator(EXPLORER).focus()
    page.keyboard.press("?")
    assert "Page Up" in page.locator(f"{EXPLORER} .ex-help").inner_text()


def test_hover_shows_the_value_of_the_cell(open_page, expected):
    page = open_page(1440)
    state = explorer_state(page)
    row, column = 3, 5
    pitch, row_px, gutter = float(state["colLabelPx"]), float(state["rowPx"]), int(state["gutter"])
    matrix = state["matrix"]
    start_counting_runs(page)
    x = matrix["x"] + gutter + (column + 0.5) * pitch
    page.mouse.move(x, matrix["y"] + (row + 0.5) * row_px)
    hover = explorer_state(page)["hover"]
    labels = [t.text for t in expected.tokens]
    assert hover.startswith(f"{labels[row]} → {labels[column]}: "), hover
    value = float(hover.rsplit(": ", 1)[1])
    truth = float(expected.attentions[0].mean(0)[row, column])  # layer 0, mean of heads
    # Sent as float16 (relative error below 2^-11), shown to 4 significant digits.
    assert value == pytest.approx(truth, rel=2**-11 + 5e-4, abs=1e-7)
    assert explorer_state(page)["runs"] == 0


def test_legend_options_repaint_without_a_page_run(open_page):
    page = open_page(1024)
    start_counting_runs(page)
    root = page.locator(EXPLORER)
    root.get_by_label("Log").check()
    assert "log scale" in explorer_state(page)["legend"]
    root.get_by_label("Without first token").check()
    assert "without the first token '[CLS]'" in explorer_state(page)["legend"]
    root.locator("select[name=scale]").select_option("fixed")
    assert "fixed 0–1" in explorer_state(page)["legend"]
    root.locator("select[name=scale]").select_option("chart")
    assert "this matrix's own maximum" in explorer_state(page)["legend"]
    root.locator("select[name=palette]").select_option("cividis")
    state = explorer_state(page)
    assert "cividis" in state["legend"] and state["runs"] == 0


def test_the_sidebars_log_and_first_token_settings_check_the_legends_boxes(open_page):
    page = open_page(1024, log_scale=1, without_first=1)
    root = page.locator(EXPLORER)
    assert root.get_by_label("Log").is_checked()
    assert root.get_by_label("Without first token").is_checked()
    legend = explorer_state(page)["legend"]
    assert "log scale" in legend and "without the first token '[CLS]'" in legend


def test_the_selected_rows_top_weights_are_its_text_alternative(open_page, expected):
    page = open_page(1024, token="2")
    summary = page.locator(f"{EXPLORER} .ex-summary").inner_text()
    labels = [t.text for t in expected.tokens]
    row = expected.attentions[0].mean(0)[2]
    strongest = labels[int(np.argmax(row))]
    assert summary.startswith(f"Selected '{labels[2]}' (row 2) attends most to: {strongest} ")
    assert (
        page.locator(f"{EXPLORER} .ex-matrix")
        .get_attribute("aria-label")
        .startswith("Attention matrix")
    )
    assert page.locator(f"{EXPLORER} .ex-bars").get_attribute("aria-label")


def test_png_export_is_what_is_shown(open_page):
    page = open_page(1024)
    with page.expect_download() as download:
        page.locator(EXPLORER).get_by_role("button", name="PNG").click()
    data = Path(download.value.path()).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    state = explorer_state(page)
    # The whole matrix (not just the scrolled part), its labels and the bars.
    assert width == round(state["root"]["width"])
    assert height > state["matrix"]["height"] + state["bars"]["height"]


def test_svg_export_is_what_is_shown(open_page, expected):
    page = open_page(1440, "dark")
    page.locator(EXPLORER).focus()
    for key in ["ArrowDown"] * 3 + ["+", "+"]:
        page.keyboard.press(key)
    page.wait_for_timeout(200)
    state = explorer_state(page)
    with page.expect_download() as download:
        page.locator(EXPLORER).get_by_role("button", name="SVG").click()
    assert download.value.suggested_filename.endswith(".svg")
    svg = Path(download.value.path()).read_text(encoding="utf-8")
    assert svg.startswith("<svg xmlns=") and svg.rstrip().endswith("</svg>")
    width = float(re.search(r'width="([\d.]+)"', svg).group(1))
    assert width == pytest.approx(state["root"]["width"], abs=1)
    # The title and the labels of what is in view are text; the cells one embedded image.
    assert "Layer 0 (rows: from, columns: to), mean of 12 heads" in svg
    labels = [t.text for t in expected.tokens]
    rows = tuple(map(int, state["view"].split("x")[0].split("-")))
    texts = re.findall(r"<text [^>]*>([^<]*)</text>", svg)
    assert sum(1 for t in texts if t in labels) >= rows[1] - rows[0]
    assert svg.count("data:image/png;base64,") == 1
    assert 'stroke-dasharray="4 3"' in svg  # the selected column's outline


def pick_token(page, index: int) -> None:
    page.get_by_role("combobox", name="Selected token").click()
    page.get_by_role("option", name=f"{index}: ", exact=False).first.click()


def test_the_matrices_travel_once_per_layer_and_again_if_the_browser_lost_them(open_page):
    page = open_page(1024)
    draws = int(explorer_state(page)["draws"])
    # The Selected token box: one run, which sends the key of the matrices, not the matrices.
    start_counting_runs(page)
    pick_token(page, 5)
    page.locator(f"{EXPLORER}[data-selected='5']").wait_for(state="attached")
    wait_for_next_run(page)
    state = explorer_state(page)
    assert int(state["draws"]) > draws and "missing" not in state
    # A browser that lost its copy (a reloaded component) asks for it and paints once it
    # comes: one more run.
    page.evaluate("() => { window.__atlasExplorerData.key = null; }")
    pick_token(page, 7)
    page.locator(f"{EXPLORER}[data-selected='7']").wait_for(state="attached")
    state = explorer_state(page)
    assert state["missing"] and state["selected"] == "7"


def test_the_line_view_opens_on_the_selected_token_and_escape_shows_every_line(open_page):
    page = open_page(1024, token="2")
    lines = page.locator(LINE_VIEW)
    assert lines.get_attribute("data-focus") == "left:2"  # from the link, with no click
    start_counting_runs(page)
    lines.focus()
    page.keyboard.press("Escape")
    page.locator(f"{LINE_VIEW}[data-focus='']").wait_for(state="attached")
    wait_for_next_run(page)
    # The run the Escape started keeps every line (the token stays selected elsewhere).
    assert page.locator(LINE_VIEW).get_attribute("data-focus") == ""
    assert explorer_state(page)["selected"] == "2"


# Holds the hidden element's codes back, as if they were still on their way (what its script
# stores for the explorer goes nowhere); `_RELEASE_CODES` hands over the last one.
_HOLD_CODES = """() => {
    window.__heldCodes = [];
    Object.defineProperty(window, '__atlasExplorerHeadsMessage', {
        configurable: true,
        get: () => null,
        set: (data) => { window.__heldCodes.push(data); },
    });
}"""
_RELEASE_CODES = """() => {
    delete window.__atlasExplorerHeadsMessage;
    window.__atlasExplorerHeadsMessage = window.__heldCodes.at(-1);
    window.dispatchEvent(new CustomEvent('atlas-explorer-heads-message'));
}"""


LONG = 512
"""Tokens of the input whose layer is large enough to send its shown matrix first
(`ui.panels.HEADS_LATER_CELLS`: 13 matrices of 512 × 512)."""


@pytest.fixture(scope="module")
def long_expected():
    return run_attention(load_model(EMBEDDED_MODEL), long_text(LONG))


def test_a_layer_change_paints_its_shown_head_first_and_other_heads_wait_for_their_data(
    open_page, long_expected
):
    expected = long_expected
    page = open_page(1440, words=long_text(LONG), head="2")
    page.evaluate(_HOLD_CODES)
    draws = int(explorer_state(page)["draws"])
    start_counting_runs(page)
    page.locator(EXPLORER).focus()
    page.keyboard.press("PageDown")
    # Layer 1 is painted from head 2's own float16, the other heads' codes still held back.
    page.locator(f"{EXPLORER}[data-layer='1'][data-head='2']").wait_for(state="attached")
    wait_for_next_run(page)
    state = explorer_state(page)
    assert int(state["draws"]) > draws and "waiting" not in state
    assert page.evaluate("() => window.__heldCodes.length") >= 1
    labels = [t.text for t in expected.tokens]

    def hover_value(row: int, column: int) -> str:
        state = explorer_state(page)
        pitch, row_px = float(state["colLabelPx"]), float(state["rowPx"])
        x = state["matrix"]["x"] + int(state["gutter"]) + (column + 0.5) * pitch
        page.mouse.move(x, state["matrix"]["y"] + (row + 0.5) * row_px)
        hover = explorer_state(page)["hover"]
        page.mouse.move(0, 0)
        return hover

    hover = hover_value(3, 5)
    assert hover.startswith(f"{labels[3]} → {labels[5]}: ")
    truth = float(expected.attentions[1][2, 3, 5])
    assert float(hover.rsplit(": ", 1)[1]) == pytest.approx(truth, rel=2**-11 + 5e-4, abs=1e-7)
    # Head 3 has no data yet: it waits, drawing nothing of head 2 (no repaint, no hover).
    painted = int(explorer_state(page)["draws"])
    page.locator(EXPLORER).focus()
    page.keyboard.press("]")
    state = explorer_state(page)
    assert state["waiting"] == "3" and state["head"] == "3"
    assert int(state["draws"]) == painted and not hover_value(3, 5)
    # The codes come: head 3 is painted from them (its 8-bit value, said so).
    page.evaluate(_RELEASE_CODES)
    page.wait_for_function(
        "(painted) => { const host = [...document.querySelectorAll("
        "\"[data-testid='stBidiComponentIsolated']\")].find((h) => h.shadowRoot && "
        "h.shadowRoot.querySelector('.ex-root')); return Number(host.shadowRoot"
        ".querySelector('.ex-root').dataset.draws) > painted; }",
        arg=painted,
        polling=20,
        timeout=10_000,
    )
    state = explorer_state(page)
    assert "waiting" not in state and state["head"] == "3"
    hover = hover_value(3, 5)
    value = float(re.search(r"≈?(-?[\d.e-]+)", hover.rsplit(": ", 1)[1]).group(1))
    truth = float(expected.attentions[1][3, 3, 5])
    assert value == pytest.approx(truth, abs=float(expected.attentions[1][3, 3].max()) / 254)


def test_a_waiting_head_is_painted_from_its_own_float16_by_the_run_its_view_starts(open_page):
    page = open_page(1024, words=long_text(LONG))
    page.evaluate(_HOLD_CODES)
    start_counting_runs(page)
    page.locator(EXPLORER).focus()
    page.keyboard.press("PageDown")
    page.locator(f"{EXPLORER}[data-layer='1']").wait_for(state="attached")
    wait_for_next_run(page)
    start_counting_runs(page)
    page.locator(EXPLORER).focus()
    page.keyboard.press("]")
    assert explorer_state(page)["waiting"] == "0"
    # Once the keys rest the view goes to Python; its run brings head 0's float16, drawn
    # although the layer's codes are still held back.
    wait_for_next_run(page)
    page.locator(f"{EXPLORER}:not([data-waiting])[data-head='0']").wait_for(state="attached")
    assert page.evaluate("() => window.__atlasExplorerData.codes === null")
