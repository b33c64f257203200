"""Head and selected-token changes in the Attention page's explorer (issue 22), in Chromium.

    python bench/bench_explorer.py [--sizes 128 512] [--presses 15] [--long 4096]

Targets: a head or selected-token change painted ≤ 100 ms with no page run, at 128 and 512
tokens; a layer change (Page Down, which asks the server for one layer) painted ≤ 300 ms at 128
tokens and ≤ 500 ms at 512. Model: BERT-base-shaped (12 layers × 12 heads, random weights, real
WordPiece tokenizer, `bench_browser.build_bert_base`), loaded by path; Chromium headless at
1440 × 900.

What is timed, in the page (`performance.now()`), for each key:

* *handled*: from dispatching the keydown on the explorer to its handler returning (the repaint
  of the matrix, labels, bars and legend is synchronous);
* *painted*: to the first frame after it (a `requestAnimationFrame`, then a task: the frame has
  been produced by then);
* *page runs*: script runs started while a series of presses went on (130 ms apart, the way a
  visitor holds a key); the one run that carries the view to the link once the keys rest (600 ms
  later) is counted after the series;
* *layer*: Page Down → the explorer repainted with the next layer's data (one page run).

Also reported: the message each layer change sends (bytes).

With ``--long N`` (4,096 for issue 22's target of ≥ 30 frames per second), a Llama-shaped
checkpoint (`bench.bench_long_context`'s shape, random weights, 4 layers × 14 heads) reads an
N-token text: the page's explorer shows the mean of heads as a pooled overview with exact tiles
asked for as it zooms. Timed with `requestAnimationFrame` in the page, FRAMES frames each:

* *hover*: one `pointermove` a frame, sweeping the matrix (tooltip, outline, value lookup);
* *zoom*: one Ctrl + wheel a frame (zoom about the pointer), in then out;
* *pan*: one drag step a frame, zoomed in, with the exact tiles drawn.

Frames per second = frames / (last frame − first frame); the worst frame interval is reported
too, and the view repaints counted, so a frame that skipped its paint cannot pass.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_browser import (  # noqa: E402
    bert_base_session,
    load_average,
    texts_for,
)
from tests.e2e.harness import (  # noqa: E402
    EXPLORER,
    start_counting_runs,
    wait_for_explorer,
    wait_for_run,
)

VIEWPORT = {"width": 1440, "height": 900}
TARGET_MS = {"head": 100, "selected token": 100}
LAYER_TARGET_MS = {128: 300, 512: 500}
PRESS_GAP_MS = 130

_ROOT = """const host = [...document.querySelectorAll("[data-testid='stBidiComponentIsolated']")]
    .find((h) => h.shadowRoot && h.shadowRoot.querySelector('.ex-root'));
const root = host.shadowRoot.querySelector('.ex-root');"""

_PRESS = (
    """async (key) => {"""
    + _ROOT
    + """
    const t0 = performance.now();
    root.dispatchEvent(new KeyboardEvent('keydown', {key, bubbles: true, cancelable: true}));
    const handled = performance.now() - t0;
    await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
    return {handled, painted: performance.now() - t0, paint: Number(root.dataset.paintMs),
            head: root.dataset.head, selected: root.dataset.selected};
}"""
)

_LAYER = (
    """async () => {"""
    + _ROOT
    + """
    const before = root.dataset.layer;
    const t0 = performance.now();
    root.dispatchEvent(new KeyboardEvent('keydown', {key: 'PageDown', bubbles: true}));
    const deadline = t0 + 60000;
    while (root.dataset.layer === before && performance.now() < deadline) {
        await new Promise((r) => setTimeout(r, 2));
    }
    await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
    return {painted: performance.now() - t0, layer: root.dataset.layer,
            arrived: Number(root.dataset.arrivedAt) - t0, update: Number(root.dataset.updateMs)};
}"""
)


FRAMES = 120
FPS_TARGET = 30

# One synthetic event a frame for `frames` frames; frame times from requestAnimationFrame.
_FRAMES = (
    """async ({kind, frames}) => {"""
    + _ROOT
    + """
    const body = root.querySelector('.ex-body');
    const box = body.getBoundingClientRect();
    const gutter = Number(root.dataset.gutter);
    const at = (i) => {
        const t = i / frames;
        const w = box.width - gutter - 40;
        return [box.left + gutter + 20 + w * (0.5 + 0.45 * Math.sin(6.283 * t)),
                box.top + 20 + (box.height - 40) * (0.5 + 0.45 * Math.cos(6.283 * t))];
    };
    const paintsBefore = Number(root.dataset.frames || 0);
    const times = [];
    let handler = 0;
    if (kind === 'pan') {
        const [x, y] = at(0);
        body.dispatchEvent(new PointerEvent('pointerdown', {clientX: x, clientY: y, button: 0,
            pointerId: 1, bubbles: true}));
    }
    await new Promise((resolve) => {
        let i = 0;
        const frame = (now) => {
            times.push(now);
            if (i === frames) { resolve(); return; }
            const t0 = performance.now();
            const [x, y] = at(i);
            if (kind === 'hover') {
                body.dispatchEvent(new PointerEvent('pointermove', {clientX: x, clientY: y,
                    pointerId: 1, bubbles: true}));
            } else if (kind === 'zoom') {
                body.dispatchEvent(new WheelEvent('wheel', {clientX: x, clientY: y, ctrlKey: true,
                    deltaY: i < frames / 2 ? -60 : 60, bubbles: true, cancelable: true}));
            } else {
                const [x0, y0] = at(0);
                body.dispatchEvent(new PointerEvent('pointermove', {pointerId: 1, bubbles: true,
                    clientX: x0 + 120 * Math.sin(i / 9), clientY: y0 + 90 * Math.cos(i / 9)}));
            }
            handler += performance.now() - t0;
            i += 1;
            requestAnimationFrame(frame);
        };
        requestAnimationFrame(frame);
    });
    if (kind === 'pan') {
        body.dispatchEvent(new PointerEvent('pointerup', {pointerId: 1, bubbles: true}));
    }
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    return {fps: 1000 * frames / (times[times.length - 1] - times[0]), worst: Math.max(...gaps),
            handler: handler / frames, paints: Number(root.dataset.frames || 0) - paintsBefore,
            hover: root.dataset.hover || '', zoom: root.dataset.zoom,
            viewMs: Number(root.dataset.viewMs || 0), tiles: Number(root.dataset.tilesDrawn || 0)};
}"""
)


def measure_long(n: int, frames: int) -> tuple[dict, dict]:
    """Hover, zoom and pan frame rates of the explorer on an `n`-token input (long mode)."""
    import tempfile

    from playwright.sync_api import sync_playwright
    from transformers import AutoTokenizer

    from bench.bench_browser import machine
    from bench.bench_long_context import build_checkpoint, text_of
    from tests.e2e.harness import launch_browser, running_app

    info = {**machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    info["load_start"] = load_average()
    with tempfile.TemporaryDirectory(prefix="atlas-long-") as directory:
        path = build_checkpoint(Path(directory))
        text = text_of(AutoTokenizer.from_pretrained(path), n)
        with running_app() as app, sync_playwright() as playwright:
            browser = launch_browser(playwright)
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()
            page.set_default_timeout(900_000)
            started = time.perf_counter()
            page.goto(app.url("/", model=str(path), text=text, token=n // 2))
            wait_for_run(page, 900)
            wait_for_explorer(page, 900)
            info["first_view_s"] = time.perf_counter() - started
            page.wait_for_timeout(1000)
            result = {"whole": {}, "zoomed": {}}
            result["whole"]["hover"] = page.evaluate(_FRAMES, {"kind": "hover", "frames": frames})
            result["whole"]["zoom"] = page.evaluate(_FRAMES, {"kind": "zoom", "frames": frames})
            # Zoomed in on the selected token until exact tiles are drawn, then the same.
            page.locator(EXPLORER).focus()
            for _ in range(9):
                page.keyboard.press("+")
            page.wait_for_function(
                "() => { const h = [...document.querySelectorAll(\"[data-testid='stBidiCompon"
                "entIsolated']\")].find((h) => h.shadowRoot && h.shadowRoot.querySelector('.ex-"
                "root')); return Number(h.shadowRoot.querySelector('.ex-root').dataset.tilesDrawn"
                " || 0) > 0; }",
                timeout=120_000,
            )
            page.wait_for_timeout(1500)
            for kind in ("hover", "pan", "zoom"):
                result["zoomed"][kind] = page.evaluate(_FRAMES, {"kind": kind, "frames": frames})
                page.wait_for_timeout(1500)  # tiles the pan asked for arrive
            context.close()
            browser.close()
    info["load_end"] = load_average()
    return result, info


def report_long(n: int, result: dict, info: dict, frames: int) -> str:
    lines = [
        f"### Explorer at {n:,} tokens: hover, zoom and pan frame rates (issue 22)",
        "",
        f"Run: `flock /work/bench.lock python bench/bench_explorer.py --sizes --long {n}` on "
        f"{info['date']}, {info['nproc']} CPUs ({info['cpu']}), headless Chromium at 1440 × 900, "
        f"Llama-shaped checkpoint (4 layers × 14 heads, random weights) by path; first view "
        f"(forward pass and overview, cold) {info['first_view_s']:.0f} s. Load average "
        f"{info['load_start']} at the start, {info['load_end']} at the end. {frames} frames each, "
        "one synthetic event a frame, timed with requestAnimationFrame.",
        "",
        "| view | interaction | frames per second | worst frame ms | handler ms / frame | view "
        "repaints | exact tiles drawn | target | |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for view, runs in result.items():
        for kind, r in runs.items():
            met = "met" if r["fps"] >= FPS_TARGET else "missed"
            lines.append(
                f"| {view} | {kind} | {r['fps']:.1f} | {r['worst']:.0f} | {r['handler']:.2f} | "
                f"{r['paints']} | {r['tiles']} | ≥ {FPS_TARGET} | {met} |"
            )
    return "\n".join(lines) + "\n"


def series(page, key: str, presses: int) -> dict:
    """`presses` presses of `key`, PRESS_GAP_MS apart; timings and the runs they started
    (`start_counting_runs` must have been called once on the page)."""
    runs = "() => window.__atlasRuns"
    before = page.evaluate(runs)
    rows = []
    for _ in range(presses):
        rows.append(page.evaluate(_PRESS, key))
        page.wait_for_timeout(PRESS_GAP_MS)
    during = page.evaluate(runs) - before
    page.wait_for_timeout(1500)  # the keys rest: the view goes to the server once
    wait_for_run(page)
    after = page.evaluate(runs) - before - during
    return {"rows": rows, "runs_during": during, "runs_after": after}


def measure(browser, app, model: str, text: str, presses: int, layers: int) -> dict:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        page.goto(app.url("/", model=model, text=text))
        wait_for_run(page)
        wait_for_explorer(page)
        page.wait_for_timeout(500)
        start_counting_runs(page)  # once: each call adds an observer
        result = {
            "head": series(page, "]", presses),
            "selected token": series(page, "ArrowDown", presses),
            "layer": [],
        }
        page.locator(EXPLORER).focus()
        for _ in range(layers):
            result["layer"].append(page.evaluate(_LAYER))
            wait_for_run(page)
            page.wait_for_timeout(300)
        return result
    finally:
        context.close()


def payload_sizes(n: int) -> tuple[int, int]:
    """Bytes of the two messages a layer change sends for `n` tokens, 12 heads and their mean:
    the explorer's (the shown matrix in float16), then the hidden element's (8-bit codes of
    every matrix), as `ui.explorer.component` packs them."""
    import numpy as np

    from ui.explorer import build_payload, pack

    weights = np.random.default_rng(0).dirichlet(np.ones(n), size=(12, n)).astype(np.float32)
    labels = [f"t{i}" for i in range(n)]
    payload = build_payload(weights, labels, mean=weights.mean(0), shared_max=1.0, heads_later=True)
    later = payload.pop("later")
    first = pack({**payload, "key": later.key(), "exactKey": "0" * 16, "later": True})
    codes = pack(
        {"v": payload["v"], "headsOf": later.key(), "shape": payload["shape"], **later.encode()}
    )
    return len(first), len(codes)


def report(results: dict[int, dict], args, info: dict) -> str:
    lines = [
        "### Explorer: head, token and layer changes (issue 22)",
        "",
        f"Run: `flock /work/bench.lock python bench/bench_explorer.py --sizes "
        f"{' '.join(map(str, args.sizes))} --presses {args.presses}` on {info['date']}, "
        f"{info['nproc']} CPUs ({info['cpu']}), {info['chromium']}, headless at 1440 × 900, app "
        f"at {info['app']}, BERT-base-shaped model (12 × 12, random weights) by path. Load "
        f"average {info['load_start']} at the start, {info['load_end']} at the end.",
        "",
        "| tokens | change | key → painted, median / p90 / max ms | handler ms (median) | page "
        "runs while pressing | runs after the keys rest | target | |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for n, result in results.items():
        for name in ("head", "selected token"):
            s = result[name]
            painted = sorted(r["painted"] for r in s["rows"])
            handled = statistics.median(r["handled"] for r in s["rows"])
            p90 = painted[min(len(painted) - 1, int(0.9 * len(painted)))]
            median = statistics.median(painted)
            met = median <= TARGET_MS[name] and s["runs_during"] == 0
            lines.append(
                f"| {n} | {name} | {median:.0f} / {p90:.0f} / {painted[-1]:.0f} | "
                f"{handled:.0f} | {s['runs_during']} | {s['runs_after']} | "
                f"≤ {TARGET_MS[name]}, no run | {'met' if met else 'missed'} |"
            )
        layer = sorted(r["painted"] for r in result["layer"])
        if layer:
            median = statistics.median(layer)
            target = LAYER_TARGET_MS.get(n)
            verdict = "met" if target and median <= target else "missed"
            # The key to the message reaching the explorer (the page run and the transfer),
            # then the explorer reading it and repainting.
            arrived = statistics.median(r["arrived"] for r in result["layer"])
            update = statistics.median(r["update"] for r in result["layer"])
            lines.append(
                f"| {n} | layer (Page Down) | {median:.0f} / – / {layer[-1]:.0f} "
                f"(min {layer[0]:.0f}; message in {arrived:.0f}, read and painted in "
                f"{update:.0f}) | – | 1 each | – | ≤ {target} | {verdict} |"
            )
    sizes = {n: payload_sizes(n) for n in results}
    lines += [
        "",
        "Messages of one layer change: the explorer's (the shown matrix in float16, painted "
        "from), then the hidden element's (12 heads + mean as 8-bit codes): "
        + ", ".join(
            f"{n} tokens {first / 1e6:.2f} + {codes / 1e6:.2f} MB"
            for n, (first, codes) in sizes.items()
        )
        + ".",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[128, 512])
    parser.add_argument("--presses", type=int, default=15)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--long", type=int, default=0, help="also time an N-token input")
    parser.add_argument("--frames", type=int, default=FRAMES)
    args = parser.parse_args()
    if args.sizes:
        texts = texts_for(args.sizes)
        results: dict[int, dict] = {}
        with bert_base_session() as (app, browser, model, info):
            for n in args.sizes:
                results[n] = measure(browser, app, model, texts[n], args.presses, args.layers)
                print(f"{n} tokens: {results[n]}", flush=True)
        info["load_end"] = load_average()
        print(report(results, args, info))
    if args.long:
        long_result, long_info = measure_long(args.long, args.frames)
        print(f"{args.long} tokens: {long_result}", flush=True)
        print(report_long(args.long, long_result, long_info, args.frames))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
