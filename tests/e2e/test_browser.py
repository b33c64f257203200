"""The real app in a real browser: every page draws its charts without an exception box.

These catch what AppTest cannot: the frontend failing to draw a chart the server sent (a bad
Vega-Lite spec, an Arrow table the browser cannot read, a chart too large to render), pages
that only break when served over HTTP, and long inputs end to end. Screenshots of every page
go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import base64
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.harness import (
    ERROR,
    EXCEPTION,
    SCREENSHOTS,
    WARNING,
    full_page_screenshot,
    long_text,
    start_counting_runs,
    wait_for_charts,
    wait_for_explorer,
    wait_for_head_grid,
    wait_for_next_run,
    wait_for_run,
)

pytestmark = pytest.mark.e2e

SHORT_TEXT = "The cat sat on the mat because it was tired."


def open_page(page, url: str) -> list[str]:
    """Load `url`, wait for the run and for its charts; returns uncaught JavaScript errors."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    wait_for_run(page)
    return errors


def assert_no_failure(page, js_errors: list[str], blocked: list[str]) -> None:
    exceptions = page.locator(EXCEPTION).all_inner_texts()
    assert not exceptions, exceptions
    alerts = page.locator(ERROR).all_inner_texts()
    assert not alerts, alerts
    assert not js_errors, js_errors
    # The app works offline: nothing may be fetched from outside (such requests were aborted).
    assert not blocked, blocked


@pytest.mark.parametrize(
    ("name", "path", "title"),
    [
        ("attention", "/", "Attention"),
        ("overview", "/overview", "Model overview"),
        ("masked", "/masked", "Masked prediction"),
    ],
)
def test_page_draws_its_charts(page, app, blocked_requests, name, path, title):
    # The masked page draws a mask's profile; on a model without a head it has no other chart.
    text = "The cat sat on the [MASK]." if name == "masked" else SHORT_TEXT
    errors = open_page(page, app.url(path, text=text))
    if name == "attention":
        # The matrix and bars are the explorer's canvases, not Vega charts.
        assert int(wait_for_explorer(page)["rowLabels"]) > 0
    elif name == "overview":
        # The head grid is one canvas (`ui.head_grid`), not a Vega chart.
        assert wait_for_head_grid(page)["canvas"]["width"] > 0
    else:
        assert wait_for_charts(page)["drawn"] >= 1
    full_page_screenshot(page, SCREENSHOTS / f"{name}.png")
    assert page.get_by_role("heading", name=title).first.is_visible()
    assert_no_failure(page, errors, blocked_requests)


def test_compare_draws_after_a_replacement(page, app, blocked_requests):
    errors = open_page(page, app.url("/compare", text=SHORT_TEXT))
    # Nothing to compare until a replacement is typed.
    assert page.get_by_text("Type a replacement word to compare").is_visible()
    start_counting_runs(page)
    replacement = page.get_by_label("Replacement")
    replacement.fill("dog")
    replacement.press("Enter")
    wait_for_next_run(page)
    # Before, after and the word-level difference: one explorer, three painted panels.
    panels = page.locator("[data-testid='stBidiComponentIsolated'] .ex-compare .ex-root")
    panels.nth(2).and_(page.locator("[data-draws]")).wait_for()
    full_page_screenshot(page, SCREENSHOTS / "compare.png")
    assert panels.count() == 3
    assert page.get_by_text("→ dog").first.is_visible()
    assert_no_failure(page, errors, blocked_requests)


def test_a_view_control_redraws_the_page_in_one_run_and_the_link_follows(
    page, app, blocked_requests
):
    """The page's views rerun alone (`ui.page`'s fragment), so the link must still follow a
    change; a click on a token in the line view selects it everywhere in that one run."""
    errors = open_page(page, app.url("/", text=SHORT_TEXT))
    wait_for_explorer(page)
    runs = watch_runs(page)
    page.locator("[data-testid='stSelectbox']").filter(has_text="Layer").first.click()
    page.get_by_role("option", name="3", exact=True).click()
    page.wait_for_url(re.compile(r"[?&]layer=3(&|$)"))
    expect(page.get_by_text("Layer 3", exact=False).first).to_be_visible()

    view = page.locator("[data-testid='stBidiComponentIsolated'] .hv-root")
    view.locator(".hv-left .hv-token").nth(2).click()  # "cat" ([CLS] the cat …)
    page.wait_for_url(re.compile(r"[?&]token=2(&|$)"))
    box = page.locator("[data-testid='stSelectbox']").filter(has_text="Selected token").first
    # The link can change before the run's later messages (the box among them) are drawn.
    expect(box.locator("input").first).to_have_value("2: cat")
    page.wait_for_timeout(1500)  # a second run would have finished by now
    # One run per change, each of the page's views only: nothing was sent to the sidebar.
    assert runs == [{"sidebar": False}, {"sidebar": False}], runs
    assert page.get_by_label("Text", exact=True).input_value() == SHORT_TEXT
    assert_no_failure(page, errors, blocked_requests)


def watch_runs(page) -> list[dict]:
    """From now on, one entry per script run `page` sees finish: whether the run sent anything
    to the sidebar (a whole-app run redraws it; a fragment's run does not)."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    runs: list[dict] = []
    current = {"sidebar": False}

    def received(event: dict) -> None:
        nonlocal current
        response = event["response"]
        if response.get("opcode") != 2:  # Streamlit's messages are binary frames
            return
        message = ForwardMsg()
        message.ParseFromString(base64.b64decode(response["payloadData"]))
        if message.HasField("delta") and list(message.metadata.delta_path)[:1] == [1]:
            current["sidebar"] = True  # root container 1 is the sidebar
        if message.HasField("script_finished"):
            runs.append(current)
            current = {"sidebar": False}

    cdp = page.context.new_cdp_session(page)
    cdp.on("Network.webSocketFrameReceived", received)
    cdp.send("Network.enable")
    return runs


def test_long_input_is_truncated_to_512_tokens_with_a_warning(page, app, blocked_requests):
    # 600 tokens: longer than the 512 the embedded model reads, and too long for the URL the
    # app writes back (it still reads it from the link).
    text = long_text(600)
    assert len(text) > 1500
    errors = open_page(page, app.url("/", text=text))
    warnings = page.locator(WARNING).all_inner_texts()
    assert any(
        re.search(r"longer than .* \(512 tokens\): the last 88 tokens were dropped", w)
        for w in warnings
    ), warnings
    state = wait_for_explorer(page, timeout=180)
    full_page_screenshot(page, SCREENSHOTS / "attention-512-tokens.png")
    # All 512 keys across; the rows are taller than the window, which pans over them with
    # every row in view labelled (the minimap shows where).
    assert int(state["colsInView"]) == 512
    assert int(state["rowLabels"]) == int(state["rowsInView"]) > 0
    assert state["minimap"] == "shown"
    assert_no_failure(page, errors, blocked_requests)


def test_local_model_directory_predicts_masks(page, app, blocked_requests, tiny_model_path):
    model = tiny_model_path("bert")
    text = "The cat sat on the [MASK] because it was tired."
    errors = open_page(page, app.url("/masked", model=model, text=text))
    # Prediction bars and the attention profile of the mask, then the gallery.
    state = wait_for_charts(page, minimum=3)
    full_page_screenshot(page, SCREENSHOTS / "masked-local-model.png")
    assert state["drawn"] >= 3
    assert page.get_by_text("Mask 1: position 6").is_visible()
    assert not [w for w in page.locator(WARNING).all_inner_texts() if "masked-word head" in w]
    assert_no_failure(page, errors, blocked_requests)


@pytest.mark.parametrize(
    "query",
    [
        {"model": "www.example.org"},
        {"model": "http://example.org/model"},
        {"head": "www.example.org"},
        {"head": "https://example.org/x"},
        {"layer": "me@example.org"},
    ],
    ids=["bare-host-model", "url-model", "bare-host-head", "url-head", "email-layer"],
)
def test_addresses_echoed_from_a_link_are_not_links(page, app, blocked_requests, query):
    """Issue 12, item 7: Streamlit's Markdown links bare addresses by itself; echoes escape it."""
    open_page(page, app.url("/", text=SHORT_TEXT, **query))
    alerts = page.locator(f"{ERROR}, {WARNING}")
    assert alerts.count() >= 1
    echoed = next(iter(query.values())).split("//")[-1]
    texts = alerts.all_inner_texts()
    # The address is shown (the joiners that break the autolink are invisible)...
    assert any(echoed in text.replace("\u2060", "") for text in texts), texts
    # ...and never as a link.
    assert page.locator(f"{ERROR} a, {WARNING} a").count() == 0
    assert not blocked_requests, blocked_requests


def test_a_view_too_long_for_a_link_travels_as_a_file(
    page, app, browser, tmp_path, blocked_requests
):
    """A text over 1,500 characters: the page says so, and the downloaded view opens again."""
    text = long_text(340)
    assert len(text) > 1500
    errors = open_page(page, app.url("/overview", text=text, layer=2, head=5))
    assert page.get_by_text("too long for a link").first.is_visible()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download this view").click()
    view_file = tmp_path / "view.json"
    download.value.save_as(view_file)
    assert_no_failure(page, errors, blocked_requests)

    fresh = browser.new_page()
    try:
        fresh.goto(app.url("/"))
        wait_for_run(fresh)
        start_counting_runs(fresh)
        fresh.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(view_file)
        wait_for_next_run(fresh)
        fresh.get_by_role("heading", name="Model overview").first.wait_for()
        wait_for_run(fresh)
        assert fresh.get_by_role("textbox", name="Text", exact=True).input_value() == text
        assert "layer=2" in fresh.url and "head=5" in fresh.url
    finally:
        fresh.close()
