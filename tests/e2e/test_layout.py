"""Layout in a real browser: every page, in many states, at 1024×768, 1440×900 and 1920×1080,
light and dark.

Checked on the painted page (Chromium, the real server), at each of the three window sizes:

- no chart (Vega canvas or SVG, the head view, the explorer) is wider than its column or the
  viewport (the Attention page's explorer must fill its column exactly), and
  no element of the main area runs past the viewport;
- no two elements of a page overlap, and no drawing runs over another element (a line view
  over a caption): the boxes of the main area's element containers and of each drawing are
  compared pairwise;
- the page ran cleanly (no exception, no error box) and drew at least the charts it should.

Vega draws on a canvas, so single axis labels are not in the DOM; that every bar is labelled
at the planned width is checked on the specs (`tests/core/charts`, `tests/pages`).

States: short text with all heads, a sentence pair, 120 words, 512 tokens, a causal (GPT-2)
and an encoder-decoder (BART, cross attention) checkpoint, Compare's replacement (also with a
[MASK], so predictions before and after) and two models, the Explain page, a Corpus run, and
the Long context page on an encoder (its head map) and a causal model (needle run, ablation).
The tiny random checkpoints (`tests/tiny_models.py`) are loaded by path, as a private
deployment allows.

Time: one browser page per theme serves every state (a state is one navigation, then three
window sizes by resizing, which reruns nothing on the server); the dark theme is the browser's
(`prefers-color-scheme`, which Streamlit follows when the server sets no `theme.base`), so
both themes share one server and its caches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.e2e.harness import (
    ERROR,
    EXCEPTION,
    SCREENSHOTS,
    block_external_requests,
    explorer_state,
    full_page_screenshot,
    head_grid_state,
    long_text,
    open_view,
    wait_for_charts,
    wait_for_explorer,
    wait_for_head_grid,
)

pytestmark = pytest.mark.e2e

VIEWPORTS = ((1024, 768), (1440, 900), (1920, 1080))
TEXT = "The cat sat on the mat because it was tired."
MASKED = "The cat sat on the [MASK] because it was tired."
SETTLE_MS = 400
"""Vega lays out once more after its container's width settles (after a load or a resize)."""


@dataclass(frozen=True)
class Tiny:
    """A tiny random checkpoint of `family` (`tests/tiny_models.py`), passed by its path."""

    family: str


@dataclass(frozen=True)
class State:
    """One page in one state: the link, what to do after it loads, what it must draw."""

    id: str
    path: str
    query: dict = field(default_factory=dict)
    charts: int = 1
    """Vega charts at least, on the tab shown."""
    tab: str | None = None
    """A tab to open after the run (its content is laid out only once shown)."""
    corpus_run: bool = False
    """Press Run (if the corpus is not stored yet) and wait for the run to finish."""
    explorer: bool = False
    """The Attention page's explorer (a component, not a Vega chart): wait for it to paint and
    check that it fills its column."""
    head_grid: bool = False
    """The overview's head grid (a component): wait for its thumbnails and check that its
    canvas fills its column."""
    fills: bool = False
    """The page's widest Vega chart (Explain's contribution graph, a long input's mask profile)
    fills its column."""
    compare: bool = False
    """Compare's explorer (the explorer's compare mode): wait for its panels to paint and check
    that they fill their column, side by side or stacked."""


BERT, GPT2, BART = Tiny("bert"), Tiny("gpt2"), Tiny("bart")
CORPUS = {"model": BERT, "corpus_sentences": 24, "corpus_tokens": 24}
LONG_CONTEXT = {
    "model": GPT2,
    "text": long_text(96),
    "haystack_tokens": 150,
    "needle_run": 1,
    "ablate": 1,
}
"""The Long context page with every part drawn: head map, a needle run, the ablation."""
STATES = [
    State(
        "attention-short-all-heads",
        "/",
        {"text": TEXT, "head": "all", "token": "2"},
        0,
        explorer=True,
    ),
    State(
        "attention-pair", "/", {"text": TEXT, "pair": "It was very comfortable."}, 0, explorer=True
    ),
    State("attention-120", "/", {"text": long_text(120)}, 0, explorer=True),
    State("attention-512", "/", {"text": long_text(512)}, 0, explorer=True),
    State("attention-causal", "/", {"model": GPT2, "text": TEXT}, 0, explorer=True),
    State(
        "attention-seq2seq-cross",
        "/",
        {"model": BART, "text": TEXT, "stack": "cross"},
        0,
        explorer=True,
    ),
    State(
        "overview-short",
        "/overview",
        {"text": TEXT, "head_measure": "first_token_share"},
        0,
        head_grid=True,
    ),
    State("overview-512", "/overview", {"text": long_text(512)}, 0, head_grid=True),
    State(
        "overview-seq2seq-cross",
        "/overview",
        {"model": BART, "text": TEXT, "stack": "cross"},
        0,
        head_grid=True,
    ),
    State("masked-no-head", "/masked", {"text": MASKED}),
    State("masked-mlm", "/masked", {"model": BERT, "text": MASKED}, 3),
    State(
        "masked-512",
        "/masked",
        {"model": BERT, "text": long_text(512, mask=True)},
        3,
        fills=True,
    ),
    State("masked-causal", "/masked", {"model": GPT2, "text": TEXT}, 2),
    State("compare-replace", "/compare", {"text": TEXT, "replacement": "dog"}, 0, compare=True),
    State(
        "compare-replace-mask",
        "/compare",
        {"model": BERT, "text": MASKED, "replacement": "dog"},
        2,  # the predictions before and after
        compare=True,
    ),
    State(
        "compare-120", "/compare", {"text": long_text(120), "replacement": "dog"}, 0, compare=True
    ),
    State(
        "compare-two-models",
        "/compare",
        {"text": TEXT, "second_model": GPT2},
        0,
        tab="Two models",
        compare=True,
    ),
    State("explain-mlm", "/explain", {"model": BERT, "text": MASKED}, 2, fills=True),
    State("explain-causal", "/explain", {"model": GPT2, "text": TEXT}, 2, fills=True),
    State("explain-120", "/explain", {"model": BERT, "text": long_text(120, mask=True)}, 2),
    State("corpus-examples", "/corpus", CORPUS, 0, corpus_run=True),
    State("corpus-global-view", "/corpus", CORPUS, 1, tab="Global view", corpus_run=True),
    State("long-context-encoder", "/long_context", {"text": long_text(96)}),
    State("long-context-causal", "/long_context", LONG_CONTEXT, 5),
]
DARK_STATES = [
    "attention-short-all-heads",
    "attention-seq2seq-cross",
    "overview-short",
    "masked-mlm",
    "compare-replace-mask",
    "compare-two-models",
    "explain-mlm",
    "corpus-global-view",
    "long-context-causal",
]
BY_ID = {state.id: state for state in STATES}

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
    return {leaves: leaves.map((el) => ({...box(el), text: el.innerText.slice(0, 40)})),
            charts, width: window.innerWidth};
}"""


def overlaps(a: dict, b: dict, slack: float = 2.0) -> bool:
    return (
        a["x"] + slack < b["r"]
        and b["x"] + slack < a["r"]
        and a["y"] + slack < b["b"]
        and b["y"] + slack < a["b"]
    )


def layout_problems(found: dict) -> list[str]:
    """What is wrong with the boxes `_BOXES` measured: overflows and overlaps, one line each."""
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
    for leaf in leaves:
        if leaf["r"] > found["width"] + 1:
            problems.append(f"{leaf['text']!r} ends at {leaf['r']:.0f} px, past the viewport")
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


def check_layout(page) -> list[str]:
    return layout_problems(page.evaluate(_BOXES))


def width_problems(what: str, box: dict, column: dict) -> list[str]:
    """`what` (its `box`) must be as wide as its column, to 2 px."""
    if abs(box["width"] - column["width"]) <= 2:
        return []
    return [f"{what} is {box['width']:.0f} px wide in a {column['width']:.0f} px column"]


def explorer_problems(page) -> list[str]:
    """The explorer must fill its column (it has no fixed size) and stay inside it."""
    found = explorer_state(page)
    if found is None:
        return ["the explorer is missing"]
    root, column = found["root"], found["column"]
    problems = width_problems("the explorer", root, column)
    for part in ("matrix", "bars"):
        if found[part]["r"] > column["r"] + 1:
            problems.append(
                f"the explorer's {part} ends at {found[part]['r']:.0f} px, past its column"
            )
    return problems


# Compare's explorer on the tab shown: its group's box, its painted panels' boxes and the
# column's; page.evaluate does not pierce shadow roots, so it finds the host.
_COMPARE_STATE = """() => {
    const host = [...document.querySelectorAll("[data-testid='stBidiComponentIsolated']")]
        .find((h) => h.offsetParent !== null && h.shadowRoot
            && h.shadowRoot.querySelector('.ex-compare'));
    if (!host) return null;
    const group = host.shadowRoot.querySelector('.ex-compare');
    const box = (el) => { const r = el.getBoundingClientRect();
        return {x: r.left, r: r.right, y: r.top, width: r.width}; };
    const column = host.closest("[data-testid='stColumn']")
        || host.closest("[data-testid='stVerticalBlock']");
    const panels = [...group.querySelectorAll('.ex-root')].filter((p) => p.dataset.draws);
    return {group: box(group), column: box(column), panels: panels.map(box),
            matrices: panels.map((p) => box(p.querySelector('.ex-matrix')))};
}"""


def compare_problems(page) -> list[str]:
    """Compare's panels fill their column (each row of panels spans it) and stay inside it."""
    found = page.evaluate(_COMPARE_STATE)
    if found is None or not found["panels"]:
        return ["the compare explorer is missing"]
    group, column = found["group"], found["column"]
    problems = width_problems("the compare explorer", group, column)
    rows: dict[int, list[dict]] = {}
    for panel in found["panels"]:
        rows.setdefault(round(panel["y"]), []).append(panel)
    for row in rows.values():
        left, right = min(p["x"] for p in row), max(p["r"] for p in row)
        if abs(left - column["x"]) > 2 or abs(right - column["r"]) > 2:
            problems.append(f"a row of panels spans {left:.0f}–{right:.0f} px, not its column")
    if any(m["r"] > column["r"] + 1 for m in found["matrices"]):
        problems.append("a compare matrix ends past its column")
    return problems


def head_grid_problems(page) -> list[str]:
    """The head grid's canvas fills its column (thumbnails grow with the window) and the
    thumbnails are drawn."""
    found = head_grid_state(page)
    if found is None:
        return ["the head grid is missing"]
    canvas, column = found["canvas"], found["column"]
    problems = []
    if abs(canvas["width"] - column["width"]) > 2 or canvas["r"] > column["r"] + 1:
        problems.append(
            f"the head grid is {canvas['width']:.0f} px wide in a {column['width']:.0f} px column"
        )
    if not found["painted"]:
        problems.append("the head grid's thumbnails are not drawn")
    return problems


# Texts cut by their box (an ellipsis drawn by CSS, so not in the DOM): labels of buttons and
# widgets whose text is wider than the element that cuts it.
_CLIPPED = """() => [...document.querySelectorAll(
        "[data-testid='stMain'] [data-testid='stMarkdownContainer'], "
        + "[data-testid='stMain'] button p, [data-testid='stMain'] button div")]
    .filter((el) => el.offsetParent !== null && el.scrollWidth > el.clientWidth + 1
        && getComputedStyle(el).textOverflow === 'ellipsis')
    .map((el) => el.innerText.slice(0, 40))"""


def clipped_texts(page) -> list[str]:
    return [f"{text!r} is cut off" for text in page.evaluate(_CLIPPED)]


def fill_problems(page) -> list[str]:
    """The widest Vega chart of the page is at least 90 % of its column's width."""
    found = page.evaluate(_BOXES)
    vega = [c for c in found["charts"] if c["what"] in ("CANVAS", "svg")]
    if not vega:
        return ["no Vega chart to fill the column"]
    widest = max(vega, key=lambda c: c["chart"]["r"] - c["chart"]["x"])
    width = widest["chart"]["r"] - widest["chart"]["x"]
    column = widest["column"]["r"] - widest["column"]["x"]
    return [] if width >= 0.9 * column else [f"the widest chart is {width:.0f} of {column:.0f} px"]


def state_url(app, state: State, models: dict[str, str]) -> str:
    query = {
        key: models[value.family] if isinstance(value, Tiny) else value
        for key, value in state.query.items()
    }
    return app.url(state.path, **query)


def open_state(page, url: str, state: State) -> None:
    """Load the state at the narrowest window and wait until it is drawn."""
    width, height = VIEWPORTS[0]
    page.set_viewport_size({"width": width, "height": height})
    open_view(
        page,
        url,
        charts=state.charts,
        tab=state.tab,
        corpus_run=state.corpus_run,
        settle_ms=SETTLE_MS,
    )
    if state.explorer:
        wait_for_explorer(page)
    if state.head_grid:
        wait_for_head_grid(page)
    if state.compare:
        page.wait_for_function(f"() => ({_COMPARE_STATE})()?.panels.length >= 2", timeout=120_000)


def check_state(page, url: str, state: State, theme: str) -> list[str]:
    """Every problem of `state` at every window size, prefixed with the size."""
    open_state(page, url, state)
    failures = page.locator(f"{EXCEPTION}, {ERROR}").all_inner_texts()
    problems = [f"the page failed: {text[:200]}" for text in failures]
    for width, height in VIEWPORTS:
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(SETTLE_MS)
        if state.charts:
            wait_for_charts(page, state.charts)
        layout = check_layout(page) + clipped_texts(page)
        layout += explorer_problems(page) if state.explorer else []
        layout += head_grid_problems(page) if state.head_grid else []
        layout += compare_problems(page) if state.compare else []
        layout += fill_problems(page) if state.fills else []
        found = [f"{width}×{height}: {problem}" for problem in layout]
        if found:
            # What the test saw, for whoever reads the failure.
            full_page_screenshot(page, SCREENSHOTS / f"layout-{theme}-{state.id}-{width}.png")
        problems += found
    return problems


@pytest.fixture(scope="module")
def models(tiny_model_path) -> dict[str, str]:
    return {family: str(tiny_model_path(family)) for family in ("bert", "gpt2", "bart")}


def _themed_page(browser, scheme: str):
    width, height = VIEWPORTS[0]
    context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
    block_external_requests(context)
    page = context.new_page()
    page.set_default_timeout(120_000)
    return context, page


@pytest.fixture(scope="module")
def light_page(browser):
    context, page = _themed_page(browser, "light")
    yield page
    context.close()


@pytest.fixture(scope="module")
def dark_page(browser):
    context, page = _themed_page(browser, "dark")
    yield page
    context.close()


def background_channels(page) -> list[int]:
    background = page.evaluate(
        "() => getComputedStyle(document.querySelector(\"[data-testid='stApp']\")).backgroundColor"
    )
    return [int(c) for c in background[background.index("(") + 1 : -1].split(",")[:3]]


@pytest.mark.parametrize("state", STATES, ids=[s.id for s in STATES])
def test_layout_light(light_page, app, models, state):
    problems = check_state(light_page, state_url(app, state, models), state, "light")
    assert min(background_channels(light_page)) > 150  # the light theme
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("state_id", DARK_STATES)
def test_layout_dark(dark_page, app, models, state_id):
    state = BY_ID[state_id]
    problems = check_state(dark_page, state_url(app, state, models), state, "dark")
    # The dark theme is on: a dark background (each channel below 100).
    assert max(background_channels(dark_page)) < 100
    assert not problems, "\n".join(problems)


def test_dark_states_cover_every_page():
    """The dark theme is checked on every page of the app at least once."""
    paths = {BY_ID[state_id].path for state_id in DARK_STATES}
    assert paths == {state.path for state in STATES}
    assert {
        "/",
        "/overview",
        "/masked",
        "/compare",
        "/explain",
        "/corpus",
        "/long_context",
    } <= paths


def test_the_checks_catch_an_overflow_and_an_overlap():
    """The layout checks fail on boxes that break the rules (the browser test would pass
    vacuously if they could not)."""
    column = {"x": 300, "y": 0, "r": 560, "b": 900}
    chart = {"x": 310, "y": 100, "r": 700, "b": 300}
    found = {
        "width": 1024,
        "charts": [{"what": "CANVAS", "chart": chart, "column": column, "container": 0}],
        "leaves": [
            {"x": 310, "y": 100, "r": 700, "b": 300, "text": "chart"},
            {"x": 310, "y": 290, "r": 560, "b": 320, "text": "caption"},
            {"x": 310, "y": 400, "r": 1100, "b": 420, "text": "wide"},
        ],
    }
    problems = layout_problems(found)
    assert any("past its column" in p for p in problems)
    assert any("'wide' ends at 1100 px, past the viewport" in p for p in problems)
    assert any("drawn over 'caption'" in p for p in problems)
    assert any("'chart' overlaps 'caption'" in p for p in problems)
    assert layout_problems({**found, "charts": [], "leaves": found["leaves"][:1]}) == []


def test_the_head_grid_opens_a_head_from_the_keyboard_and_a_click(light_page, app):
    """Arrow keys move through the grid and Enter opens the head on the Attention page, with
    the same link as a click; a click on a thumbnail does the same."""
    page = light_page
    page.set_viewport_size({"width": 1440, "height": 900})
    open_view(page, app.url("/overview", text=TEXT), settle_ms=SETTLE_MS)
    wait_for_head_grid(page)
    grid = page.locator("[data-testid='stBidiComponentIsolated'] .hg-root")
    grid.focus()
    for key in ("ArrowRight", "ArrowRight", "ArrowDown"):
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Attention", exact=True).wait_for()
    page.wait_for_function("() => location.search.includes('head=2')")
    assert "layer=1" in page.url and "head=2" in page.url
    # Back on the overview, a click on layer 2, head 3's thumbnail.
    open_view(page, app.url("/overview", text=TEXT), settle_ms=SETTLE_MS)
    wait_for_head_grid(page)
    canvas = page.locator("[data-testid='stBidiComponentIsolated'] .hg-canvas")
    origin = page.evaluate(
        """() => { const host = [...document.querySelectorAll(
                "[data-testid='stBidiComponentIsolated']")].find((h) => h.shadowRoot
                && h.shadowRoot.querySelector('.hg-root'));
            const g = host.shadowRoot.querySelector('.hg-root').__grid;
            return {left: g.left, top: g.top, tile: g.tile, row: g.rowHeight, side: g.side}; }"""
    )
    canvas.click(
        position={
            "x": origin["left"] + 3 * origin["tile"] + origin["side"] / 2,
            "y": origin["top"] + 2 * origin["row"] + origin["side"] / 2,
        }
    )
    page.get_by_role("heading", name="Attention", exact=True).wait_for()
    page.wait_for_function("() => location.search.includes('head=3')")
    assert "layer=2" in page.url and "head=3" in page.url
