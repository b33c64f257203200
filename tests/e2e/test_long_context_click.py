"""The Long context page's head map in a real browser: a click on a head opens that layer and
head on the Attention page, with the same text and model (as the overview's grid does).

The map is a Vega chart drawn on a canvas, so the test finds a head by hovering: the tooltip
names the layer and head under the pointer, and a click there must open exactly that head.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest

from tests.e2e.harness import open_view

pytestmark = pytest.mark.e2e

TEXT = "The cat sat on the mat because it was tired. It slept all day long."
TOOLTIP = "#vg-tooltip-element"
HEAD_UNDER_POINTER = re.compile(r"layer\s*(\d+)\s*head\s*(\d+)")


def head_under(page, x: float, y: float) -> tuple[int, int] | None:
    """(layer, head) the head map's tooltip names with the pointer at (x, y), else None."""
    page.mouse.move(x, y)
    try:
        page.wait_for_function(
            f"() => /layer\\s*\\d+\\s*head\\s*\\d+/.test("
            f"document.querySelector('{TOOLTIP}.visible')?.textContent ?? '')",
            timeout=2_000,
        )
    except Exception:  # no head under the pointer (an axis, the legend, the margin)
        return None
    found = HEAD_UNDER_POINTER.search(page.locator(TOOLTIP).text_content() or "")
    return (int(found[1]), int(found[2])) if found else None


def test_a_click_on_the_head_map_opens_that_head_on_the_attention_page(page, app):
    page.set_viewport_size({"width": 1440, "height": 900})
    open_view(page, app.url("/long_context", text=TEXT), charts=1)
    head_map = page.locator("[data-testid='stVegaLiteChart']").first
    head_map.scroll_into_view_if_needed()
    box = head_map.bounding_box()
    assert box is not None
    # Points across the chart until one is over a head that is not layer 0, head 0 (the
    # default), so that opening the default head cannot pass for opening the one clicked.
    target = None
    for fx in (0.3, 0.45, 0.6, 0.2):
        for fy in (0.6, 0.45, 0.75):
            x, y = box["x"] + fx * box["width"], box["y"] + fy * box["height"]
            head = head_under(page, x, y)
            if head is not None and head != (0, 0):
                target = (x, y, head)
                break
        if target:
            break
    assert target is not None, "no head found under the pointer on the head map"
    x, y, (layer, head) = target
    page.mouse.click(x, y)
    page.get_by_role("heading", name="Attention", exact=True).wait_for()
    page.wait_for_function(f"() => location.search.includes('head={head}')")
    link = parse_qs(urlparse(page.url).query)
    assert link["layer"] == [str(layer)] and link["head"] == [str(head)]
    assert link["text"] == [TEXT]
