"""The head view component in headless Chromium, on its demo app (tests/e2e/head_view_app.py).

Checks what only a browser can: every head in the legend, hover and legend toggles that redraw
without a single websocket frame to the server, a click that comes back to Python, the
drawing fitting its column at 1024 px, light and dark. Screenshots go to
``artifacts/screenshots/head_view-*.png``.
"""

from __future__ import annotations

import hashlib

import pytest

from tests.e2e.harness import (
    EXCEPTION,
    SCREENSHOTS,
    block_external_requests,
    full_page_screenshot,
    wait_for_run,
)
from tests.e2e.head_view_app import running_demo

pytestmark = pytest.mark.e2e

ROOT = "[data-testid='stBidiComponentIsolated'] .hv-root"
# Playwright's CSS selectors pierce the component's open shadow root; page.evaluate does not.
STATE = """() => {
    const host = document.querySelector("[data-testid='stBidiComponentIsolated']");
    const root = host.shadowRoot.querySelector('.hv-root');
    const canvas = root.querySelector('canvas');
    return {...root.dataset, image: canvas.toDataURL()};
}"""


@pytest.fixture(scope="module")
def demo():
    with running_demo() as server:
        yield server


class Session:
    """One fresh browser context on the demo, counting the websocket frames it sends."""

    def __init__(self, browser, demo, width=1440, height=900, scheme="light", **query):
        self.context = browser.new_context(
            viewport={"width": width, "height": height}, color_scheme=scheme
        )
        self.blocked = block_external_requests(self.context)
        self.page = self.context.new_page()
        self.page.set_default_timeout(120_000)
        self.sent: list[object] = []
        self.errors: list[str] = []
        self.page.on("websocket", lambda ws: ws.on("framesent", self._on_sent))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        # The component's own errors (a script that does not load) only reach the console.
        self.page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )
        self.page.goto(demo.url("/", **query))
        wait_for_run(self.page)
        self.page.wait_for_selector(f"{ROOT}[data-complete]")
        assert not self.page.locator(EXCEPTION).all_inner_texts()

    def _on_sent(self, payload) -> None:
        self.sent.append(payload)

    def state(self) -> dict:
        state = self.page.evaluate(STATE)
        state["image"] = hashlib.sha1(state["image"].encode()).hexdigest()
        return state

    def after(self, action) -> dict:
        """Run `action`, wait for the component's next draw, return its state."""
        draws = int(self.state()["draws"])
        action()
        self.page.wait_for_function(
            """(draws) => {
                const root = document.querySelector("[data-testid='stBidiComponentIsolated']")
                    .shadowRoot.querySelector('.hv-root');
                // A large overview is drawn over several frames: wait for the last one.
                return Number(root.dataset.draws) > draws
                    && root.dataset.complete === root.dataset.draws;
            }""",
            arg=draws,
        )
        return self.state()

    def close(self) -> None:
        assert not self.errors, self.errors
        assert not self.blocked, self.blocked
        self.context.close()


@pytest.fixture
def session_factory(browser, demo):
    sessions: list[Session] = []

    def make(**options) -> Session:
        session = Session(browser, demo, **options)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()


def test_legend_lists_every_head_and_toggles_them_in_the_browser(session_factory):
    s = session_factory()
    chips = s.page.locator(f"{ROOT} .hv-chip")
    assert chips.all_inner_texts() == [str(h) for h in range(12)]
    start = s.state()
    assert start["visibleHeads"] == ",".join(str(h) for h in range(12))
    assert int(start["lines"]) > 0 and start["focus"] == ""  # all lines when nothing selected
    sent = len(s.sent)

    hidden = s.after(lambda: chips.nth(3).click())
    assert "3" not in hidden["visibleHeads"].split(",")
    assert chips.nth(3).get_attribute("aria-pressed") == "false"
    assert int(hidden["lines"]) < int(start["lines"]) and hidden["image"] != start["image"]

    alone = s.after(lambda: chips.nth(5).dblclick())
    assert alone["visibleHeads"] == "5"
    assert 0 < int(alone["lines"]) < int(hidden["lines"])
    alt = s.after(lambda: chips.nth(7).click(modifiers=["Alt"]))
    assert alt["visibleHeads"] == "7"

    none = s.after(lambda: s.page.locator(f"{ROOT} .hv-action[data-action='none']").click())
    assert none["visibleHeads"] == "" and none["lines"] == "0"
    every = s.after(lambda: s.page.locator(f"{ROOT} .hv-action[data-action='all']").click())
    assert every["visibleHeads"] == start["visibleHeads"] and every["image"] == start["image"]
    # All of that was drawn in the browser: not one frame went to the server.
    assert len(s.sent) == sent


def test_hover_on_either_side_shows_that_tokens_lines_without_the_server(session_factory):
    s = session_factory(width=1024, height=768)
    overview = s.state()
    sent = len(s.sent)
    left = s.page.locator(f"{ROOT} .hv-left .hv-token")
    right = s.page.locator(f"{ROOT} .hv-right .hv-token")

    outgoing = s.after(lambda: left.nth(8).hover())
    assert outgoing["focus"] == "left:8"
    assert 0 < int(outgoing["lines"]) < int(overview["lines"])
    assert outgoing["image"] != overview["image"]
    incoming = s.after(lambda: right.nth(0).hover())
    assert incoming["focus"] == "right:0"
    assert int(incoming["lines"]) > 0 and incoming["image"] != outgoing["image"]
    back = s.after(lambda: s.page.mouse.move(2, 2))
    assert back["focus"] == "" and back["image"] == overview["image"]
    assert len(s.sent) == sent


def test_a_click_returns_the_token_to_python_and_a_second_click_clears_it(session_factory):
    s = session_factory()
    token = s.page.locator(f"{ROOT} .hv-left .hv-token").nth(4)
    sent = len(s.sent)
    token.click()
    s.page.get_by_text("selected: 4").wait_for()
    assert len(s.sent) > sent  # the click is the one thing that reaches the server
    assert s.state()["selected"] == "4"
    assert "hv-selected" in (token.get_attribute("class") or "")
    s.page.get_by_text("runs: 2").wait_for()  # exactly one rerun for the click

    token.click()
    s.page.get_by_text("selected: None").wait_for()
    s.page.mouse.move(2, 2)
    s.page.wait_for_function(
        """() => document.querySelector("[data-testid='stBidiComponentIsolated']")
            .shadowRoot.querySelector('.hv-root').dataset.focus === ''"""
    )
    assert s.state()["selected"] == ""


@pytest.mark.parametrize("query", [{}, {"n": 128}], ids=["short", "128-tokens"])
def test_fits_its_column_at_1024_px(session_factory, query):
    s = session_factory(width=1024, height=768, narrow=1, **query)
    overflow = s.page.evaluate(
        """() => {
        const host = document.querySelector("[data-testid='stBidiComponentIsolated']");
        const column = host.closest("[data-testid='stColumn']").getBoundingClientRect();
        const root = host.shadowRoot.querySelector('.hv-root');
        const inside = (el) => {
            const box = el.getBoundingClientRect();
            return box.left >= column.left - 0.5 && box.right <= column.right + 0.5;
        };
        const parts = [root, root.querySelector('canvas'),
            ...root.querySelectorAll('.hv-chip, .hv-action, .hv-token, .hv-note')];
        return {
            outside: parts.filter((el) => !inside(el)).map((el) => el.className).slice(0, 5),
            scrolls: root.scrollWidth > root.clientWidth,
            page: document.documentElement.scrollWidth > window.innerWidth,
            truncated: [...root.querySelectorAll('.hv-token')]
                .filter((el) => el.scrollWidth > el.clientWidth && !el.title).length,
        };
    }"""
    )
    assert overflow == {"outside": [], "scrolls": False, "page": False, "truncated": 0}


def test_word_pieces_and_sentence_bands(session_factory):
    s = session_factory(mode="pair")
    assert s.page.locator(f"{ROOT} .hv-left .hv-joiner").count() >= 3  # em ##bed ##ding ##s
    bands = s.page.locator(f"{ROOT} .hv-band").all_inner_texts()
    assert bands == ["A", "B", "A", "B"]
    assert "sentence B" in (
        s.page.locator(f"{ROOT} .hv-left .hv-token").last.get_attribute("title") or ""
    )


def test_causal_has_no_lines_to_later_tokens(session_factory):
    s = session_factory(mode="causal")
    first = s.after(lambda: s.page.locator(f"{ROOT} .hv-left .hv-token").nth(0).hover())
    # The first token can only attend to itself: one line per head at most.
    assert 0 < int(first["lines"]) <= 12
    later = s.after(lambda: s.page.locator(f"{ROOT} .hv-right .hv-token").last.hover())
    # ... and the last token is attended to by itself only.
    assert 0 < int(later["lines"]) <= 12


def test_cross_attention_has_a_line_view(session_factory):
    s = session_factory(mode="cross")
    left = s.page.locator(f"{ROOT} .hv-left .hv-token")
    right = s.page.locator(f"{ROOT} .hv-right .hv-token")
    assert left.count() > 0 and right.count() > 0
    assert left.first.inner_text() != right.first.inner_text()
    assert "target tokens" in s.page.locator(f"{ROOT} .hv-note").inner_text()
    sent = len(s.sent)
    incoming = s.after(lambda: right.nth(1).hover())
    assert incoming["focus"] == "right:1" and int(incoming["lines"]) > 0
    right.nth(1).click()  # source tokens are not selectable: nothing goes to the server
    s.page.wait_for_timeout(300)
    assert len(s.sent) == sent
    left.nth(1).click()
    s.page.get_by_text("selected: 1").wait_for()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [1024, 1440])
def test_screenshots(session_factory, width, scheme):
    for name, query in (("pair", {"mode": "pair"}), ("128", {"n": 128})):
        s = session_factory(width=width, height=900, scheme=scheme, **query)
        assert s.state()["theme"] == scheme
        if name == "pair":
            s.after(lambda s=s: s.page.locator(f"{ROOT} .hv-left .hv-token").nth(8).hover())
        path = SCREENSHOTS / f"head_view-{name}-{width}-{scheme}.png"
        full_page_screenshot(s.page, path)
        assert path.stat().st_size > 10_000


def test_hovering_a_token_every_token_attends_to(session_factory):
    # [CLS] at 128 tokens: over a thousand incoming lines, drawn like the overview.
    s = session_factory(n=128)
    hub = s.after(lambda: s.page.locator(f"{ROOT} .hv-right .hv-token").first.hover())
    assert hub["focus"] == "right:0" and int(hub["lines"]) > 400
    back = s.after(lambda: s.page.mouse.move(2, 2))
    assert back["focus"] == ""
