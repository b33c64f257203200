"""Interaction speed on a loaded Attention page (issues 11 and 22), in headless Chromium.

    python bench/bench_interactions.py [--sizes 128 512] [--repeats 3]

Targets (issue 22): a layer or method change is painted ≤ 300 ms after the input at 128
tokens and ≤ 500 ms at 512, on the 12 × 12 model; the first view of the Attention page from a
link on a warm server (128 tokens) ≤ 2 s, every chart painted. Head and selected-token changes
made *in the explorer* repaint without a page run (≤ 100 ms, `bench/bench_explorer.py`); here
they are made with the Layer / Head / Selected token controls, which start a run, and are
reported without a target. The model is BERT-base-shaped (12 layers × 12 heads, random
weights, real WordPiece tokenizer, `bench_browser.build_bert_base`), loaded by path.

What is timed, per step, on one browser session of the real app (`streamlit run`):

* *input → painted*: from the browser sending the rerun request the input caused (Chrome's
  websocket timestamp: the selectbox or button sends it as the option is clicked) to every
  Vega chart of the page painted, the explorer's canvas repainted with the new view (its
  ``data-draws`` counter moved; `ui/explorer`), and two animation frames after both the run's
  `script_finished` and that repaint (the line view draws in the page's main thread, so those
  frames wait out its drawing too);
* *server*: from that request to `script_finished`; *client*: the rest.

*First load (warm server)*: a new browser context opens the page's link after another visit
computed the same text (model loaded, result stored), from navigation to every chart and the
explorer painted.

Head switches inside the line view, hover and legend toggles run in the browser and are measured
by `bench/bench_head_view.py` (with BertViz); this script measures what still goes to the
server.

*BertViz* (``--bertviz-sizes``, 128 tokens by default), in the same run: BertViz 1.4.1's head
view of the same model and text with every layer (its Layer menu), served from a local static
server: the first view (navigation → its lines drawn and two frames), a layer change (the menu
→ two frames after its synchronous redraw) and a hover on a token, each on a new browser
context. At 512 tokens its HTML of every layer is ≈ 0.9 GB (bench/RESULTS.md): not drawn.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_browser import (  # noqa: E402
    EXCEPTION,
    TWO_FRAMES,
    Traffic,
    bert_base_session,
    block_external_requests,
    choose_option,
    click_segment,
    ensure_bertviz,
    ensure_js_assets,
    load_average,
    route_bertviz_assets,
    static_server,
    texts_for,
    wait_for_run,
)

VIEWPORT = {"width": 1440, "height": 900}
TARGET_MS = {128: 300, 512: 500}
"""Layer and method changes (issue 22)."""
TARGETED_STEPS = ("layer", "method")
FIRST_LOAD_TARGET_S = 2.0
EXPLORER_WAIT_S = 10.0
"""How long after its run the explorer may take to repaint before the step counts as failed."""

# The explorer's paint counter, from inside its shadow root (page.evaluate does not pierce it);
# -1 when the page has no explorer (an input longer than it takes).
_EXPLORER_DRAWS = """() => {
    const host = [...document.querySelectorAll("[data-testid='stBidiComponentIsolated']")]
        .find((h) => h.shadowRoot && h.shadowRoot.querySelector('.ex-root'));
    const root = host && host.shadowRoot.querySelector('.ex-root');
    return root ? Number(root.dataset.draws || 0) : -1;
}"""


def explorer_draws(page) -> int:
    return page.evaluate(_EXPLORER_DRAWS)


def wait_for_explorer_paint(page, before: int, deadline: float) -> str | None:
    """Wait until the explorer has painted more often than `before` (None), or say why not.
    A page without an explorer (-1 before and after) has nothing to wait for."""
    while time.monotonic() < deadline:
        draws = explorer_draws(page)
        if draws > before or (draws == -1 and before == -1):
            return None
        time.sleep(0.01)
    return f"explorer not repainted in {EXPLORER_WAIT_S:.0f} s"


def _pick_token(index: int):
    def act(page) -> None:
        box = page.locator("[data-testid='stSelectbox']").filter(has_text="Selected token").first
        box.click()
        # The open list draws only the options in view (a virtual list): typing filters it
        # so the option exists to click, as a visitor looking for token 11 would do.
        page.keyboard.type(f"{index}: ")
        page.get_by_role("option", name=f"{index}: ", exact=False).first.click()

    return act


def steps(repeat: int) -> list[tuple[str, object]]:
    """What a visitor does on a loaded page, `repeat` times with other values each time."""
    plan = []
    for r in range(repeat):
        plan += [
            ("layer", choose_option("Layer", str(3 + r))),
            ("head", choose_option("Head", str(5 + r))),
            ("method", click_segment("rollout")),
            ("method", click_segment("raw")),
            ("selected token", _pick_token(7 + r)),
        ]
    return plan


def timed_step(page, traffic: Traffic, act, timeout: float) -> dict:
    page.wait_for_timeout(400)
    before = explorer_draws(page)
    mark = traffic.mark()
    act(page)
    run = wait_for_run(page, traffic, mark, time.monotonic() + timeout)
    if isinstance(run, str):
        return {"status": run}
    missing = wait_for_explorer_paint(page, before, time.monotonic() + EXPLORER_WAIT_S)
    if missing:
        return {"status": missing}
    page.evaluate(TWO_FRAMES)
    drawn = time.monotonic()
    requested, finished, _ = run
    status = "exception" if page.locator(EXCEPTION).count() else "ok"
    return {
        "status": status,
        "painted_ms": (drawn - requested) * 1000,
        "server_ms": (finished - requested) * 1000,
        "client_ms": (drawn - finished) * 1000,
    }


def first_load(browser, app, params: dict, timeout: float, context=None) -> float | str:
    """Seconds from opening the link to the page painted; a new browser context (nothing in
    the browser's cache) unless `context` is given (a returning visitor: app assets cached)."""
    own = context is None
    if own:
        context = browser.new_context(viewport=VIEWPORT)
        block_external_requests(context)
    page = context.new_page()
    try:
        traffic = Traffic(context, page)
        started = time.monotonic()
        mark = traffic.mark()
        page.goto(app.url("/", **params), timeout=timeout * 1000)
        run = wait_for_run(page, traffic, mark, started + timeout)
        if isinstance(run, str):
            return run
        # Every chart: the explorer too, which paints once its data has arrived.
        missing = wait_for_explorer_paint(page, 0, time.monotonic() + EXPLORER_WAIT_S)
        if missing:
            return missing
        page.evaluate(TWO_FRAMES)
        return time.monotonic() - started
    finally:
        page.close()
        if own:
            context.close()


def measure(browser, app, model: str, n: int, text: str, repeat: int, timeout: float) -> dict:
    params = {"text": text, "model": model}
    cold = first_load(browser, app, params, timeout)  # the forward pass: not a target
    warm = [first_load(browser, app, params, timeout) for _ in range(repeat)]
    context = browser.new_context(viewport=VIEWPORT)
    block_external_requests(context)
    first_load(browser, app, params, timeout, context)  # fills this context's browser cache
    returning = [first_load(browser, app, params, timeout, context) for _ in range(repeat)]
    page = context.new_page()
    rows: dict[str, list[dict]] = {}
    try:
        traffic = Traffic(context, page)
        mark = traffic.mark()
        page.goto(app.url("/", **params), timeout=timeout * 1000)
        wait_for_run(page, traffic, mark, time.monotonic() + timeout)
        for name, act in steps(repeat):
            try:
                row = timed_step(page, traffic, act, timeout)
            except Exception as error:  # one broken step must not end the run
                row = {"status": f"error: {type(error).__name__}: {str(error)[:100]}"}
            print(f"  {n} tokens, {name}: {row}", flush=True)
            rows.setdefault(name, []).append(row)
    finally:
        context.close()
    return {"cold_s": cold, "warm_s": warm, "returning_s": returning, "steps": rows}


def bertviz(browser, model: str, text: str, repeat: int, timeout: float) -> dict:
    """BertViz's head view of `model` on `text`, every layer: first view (s), layer change and
    hover (ms), `repeat` times each on a new browser context."""
    import tempfile

    import torch

    import core
    from bench.bench_head_view import ARM_BERTVIZ, hover_to, measured

    head_view, _ = ensure_bertviz()
    assets = ensure_js_assets()
    loaded = core.load_model(model)
    result = core.run_attention(loaded, text)
    tokens = loaded.tokenizer.convert_ids_to_tokens(loaded.tokenizer(text)["input_ids"])
    attention = tuple(torch.from_numpy(layer[None]) for layer in result.attentions)
    html = head_view(attention, tokens, html_action="return").data
    row: dict = {"tokens": len(tokens), "html_mb": len(html.encode()) / 1e6}
    row.update(first_s=[], layer_ms=[], hover_ms=[])
    with (
        tempfile.TemporaryDirectory(prefix="atlas-bertviz-") as tmp,
        static_server(Path(tmp)) as base,
    ):
        (Path(tmp) / "head_view.html").write_text(html, encoding="utf-8")
        del html
        for i in range(repeat):
            context = browser.new_context(viewport=VIEWPORT)
            route_bertviz_assets(context, assets)
            page = context.new_page()
            page.set_default_timeout(timeout * 1000)
            try:
                started = time.monotonic()
                page.goto(f"{base}/head_view.html", wait_until="commit")
                page.wait_for_function(
                    "() => document.querySelector('#vis svg line') !== null", polling=20
                )
                page.evaluate(TWO_FRAMES)
                row["first_s"].append(time.monotonic() - started)
                layer = str(1 + i % (len(attention) - 1))
                row["layer_ms"].append(
                    measured(
                        page,
                        ARM_BERTVIZ,
                        "change",
                        functools.partial(page.select_option, "#layer", layer),
                        timeout,
                    )
                )
                side = page.locator("#vis svg #left text").nth(len(tokens) // 2 + i)
                row["hover_ms"].append(
                    measured(page, ARM_BERTVIZ, "mouseover", hover_to(page, side), timeout)
                )
            finally:
                context.close()
    print(f"  BertViz {row['tokens']} tokens: {row}", flush=True)
    return row


def _median(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get("status") == "ok"]
    return statistics.median(values) if values else None


def report(results: dict[int, dict], args, info: dict) -> str:
    lines = [
        "### Interaction speed on the Attention page (issue 22)",
        "",
        f"Run: `python bench/bench_interactions.py --sizes {' '.join(map(str, args.sizes))} "
        f"--repeats {args.repeats}` on {info['date']}, 2 CPUs, Chromium headless at 1440 × 900, "
        f"BERT-base-shaped model (12 × 12, random weights) loaded by path. Load average "
        f"{info['load_start']} at the start, {info['load_end']} at the end.",
        "",
        "| tokens | step | input → painted, median (min–max) ms | server ms | client ms | target |"
        " |",
        "| ---: | --- | --- | ---: | ---: | ---: | --- |",
    ]
    for n, result in results.items():
        if n == "bertviz":
            continue
        for name, rows in result["steps"].items():
            target = TARGET_MS.get(n) if name in TARGETED_STEPS else None
            ok = [r["painted_ms"] for r in rows if r.get("status") == "ok"]
            bad = [r["status"] for r in rows if r.get("status") != "ok"]
            if ok:
                spread = f"{statistics.median(ok):.0f} ({min(ok):.0f}–{max(ok):.0f})"
                verdict = (
                    "no target (a page run)"
                    if target is None
                    else "met"
                    if statistics.median(ok) <= target
                    else "missed"
                )
            else:
                spread, verdict = "—", "not measured"
            if bad:
                spread += f"; {len(bad)} failed: {bad[0]}"
            server = _median(rows, "server_ms")
            client = _median(rows, "client_ms")
            goal = "—" if target is None else f"≤ {target}"
            lines.append(
                f"| {n} | {name} | {spread} | {server:.0f} | {client:.0f} | {goal} | {verdict} |"
                if server is not None and client is not None
                else f"| {n} | {name} | {spread} | – | – | {goal} | {verdict} |"
            )
    lines += [
        "",
        "| tokens | first visit (forward pass included) | warm server, new browser (empty "
        "cache) | warm server, returning browser (app assets cached) | target ≤ 2 s |",
        "| ---: | ---: | --- | --- | --- |",
    ]
    for n, result in results.items():
        if n == "bertviz":
            continue
        cold = result["cold_s"]
        cold_text = f"{cold:.2f} s" if isinstance(cold, float) else str(cold)
        cells, verdicts = [], []
        for key in ("warm_s", "returning_s"):
            times = [w for w in result[key] if isinstance(w, float)]
            if not times:
                cells.append("—")
                verdicts.append("not measured")
                continue
            median = statistics.median(times)
            cells.append(f"{median:.2f} s ({min(times):.2f}–{max(times):.2f})")
            verdicts.append("met" if median <= FIRST_LOAD_TARGET_S else "missed")
        verdict = f"new: {verdicts[0]}; returning: {verdicts[1]}"
        lines.append(f"| {n} | {cold_text} | {cells[0]} | {cells[1]} | {verdict} |")
    if results.get("bertviz"):
        lines += [
            "",
            "| BertViz head view (every layer), tokens | HTML | first view, median (min–max) "
            "| layer change ms | hover ms |",
            "| ---: | ---: | --- | --- | --- |",
        ]

        def spread(values: list, unit: str = "", digits: int = 0) -> str:
            done = [v for v in values if v is not None]
            if not done:
                return "not painted"
            low, mid, high = min(done), statistics.median(done), max(done)
            return f"{mid:.{digits}f}{unit} ({low:.{digits}f}–{high:.{digits}f})"

        for row in results["bertviz"]:
            lines.append(
                f"| {row['tokens']} | {row['html_mb']:.1f} MB | {spread(row['first_s'], ' s', 2)} "
                f"| {spread(row['layer_ms'])} | {spread(row['hover_ms'])} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument(
        "--bertviz-sizes",
        type=int,
        nargs="*",
        default=[128],
        help="token counts to time BertViz's head view at, in the same run (none: skip)",
    )
    args = parser.parse_args()
    texts = texts_for([*args.sizes, *args.bertviz_sizes])
    results: dict = {}
    with bert_base_session() as (app, browser, model, info):
        for n in args.sizes:
            results[n] = measure(browser, app, model, n, texts[n], args.repeats, args.timeout)
        results["bertviz"] = [
            bertviz(browser, model, texts[n], args.repeats, args.timeout)
            for n in args.bertviz_sizes
        ]
    info["load_end"] = load_average()
    print(report(results, args, info))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
