"""Long inputs in a real browser: what each view ships, how fast it draws, what it costs.

Starts the real app (`streamlit run` on 127.0.0.1) and drives headless Chromium through every
page with long inputs, on the embedded model (6 layers x 12 heads) and on a BERT-base-shaped
model (12 x 12, random weights, real WordPiece tokenizer) loaded by path. Also builds BertViz's
head_view / model_view HTML for the same attentions and loads it in the same browser.

    python bench/bench_browser.py            # full run, writes its section of bench/RESULTS.md
    python bench/bench_browser.py --quick    # embedded model at 512 tokens only (~5 min)

Per view it records:

* shipped: bytes of every websocket frame the page received for the run (Playwright's
  `framereceived`), i.e. all the server sent for that view. Websocket compression is off in
  Streamlit by default, so this is also what crossed the wire.
* after pass: seconds from the browser asking for the run (its `rerun_script` message) to
  every chart of the view painted, with the model's result already cached by the app, so the
  forward pass is not in it and nothing needs subtracting. A view's own caches (rollout, head
  statistics, flow) are cold the first time it is measured, so their work is included. It
  also includes the sidebar and the page's router rerun, which in a cold run happen before the
  pass: it slightly overstates the time after the pass.
* server: from that same request to the server's `script_finished` message; client = the rest.
  Both timestamps come from Chrome's own network events, on the same monotonic clock as the
  bench (checked: CLOCK_MONOTONIC on Linux).
* JS heap: `Runtime.getHeapUsage` (CDP) after a forced garbage collection, once drawn.

"Server time beyond the forward pass" at 128 tokens is measured in-process, without a browser
competing for the two cores: one full script run of each view under Streamlit's AppTest (the
real page code: sidebar, caches, chart building, Arrow serialisation) with the forward pass
cached, against `core.run_attention` alone on the same model and text. Medians of 3.

Everything runs against 127.0.0.1; every other request of the browser is aborted. BertViz and
the JavaScript it loads from a CDN (require.js, d3 5.7, jQuery 2.x) are installed on first use
under /tmp with pip and npm, never into the project's environment; the CDN URLs are answered
from those local copies.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import functools
import gc
import http.server
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.e2e.harness import (  # noqa: E402
    EXCEPTION,
    block_external_requests,
    chart_state,
    launch_browser,
    long_text,
    running_app,
)

RESULTS = REPO / "bench" / "RESULTS.md"
RAW_JSON = REPO / "artifacts" / "bench" / "bench_browser.json"
SECTION = "## Long inputs in a real browser"
BERTVIZ_DIR = Path("/tmp/atlas-bench-bertviz")
JS_DIR = Path("/tmp/atlas-bench-js")
# jQuery 2.0.0, which BertViz names, was never published on npm; 2.1.0 is the nearest.
JS_PACKAGES = {
    "require.min.js": ("requirejs@2.3.6", "package/require.js"),
    "d3.min.js": ("d3@5.7.0", "package/dist/d3.min.js"),
    "jquery.min.js": ("jquery@2.1.0", "package/dist/jquery.min.js"),
}
VIEWPORT = {"width": 1400, "height": 1000}
REPLACEMENT = "dog"
EMBEDDED = "embedded"
BERT_BASE = "bert-base 12x12"


# ------------------------------------------------------------------ what is measured
@dataclass(frozen=True)
class View:
    name: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    type_replacement: bool = False


VIEWS = (
    View("attention: mean of heads", "/", {"method": "raw", "head": "mean"}),
    View("attention: all heads (lines)", "/", {"method": "raw", "head": "all"}),
    View("attention: rollout", "/", {"method": "rollout"}),
    View("attention: flow (selected token)", "/", {"method": "flow"}),
    View("overview: all heads", "/overview"),
    View("masked prediction", "/masked"),
    View("compare: replace a word", "/compare", type_replacement=True),
)
APPTEST_VIEWS = {
    "attention: mean of heads": ("pages/attention.py", {"method": "raw", "head": "mean"}),
    "attention: rollout": ("pages/attention.py", {"method": "rollout"}),
    "attention: flow (selected token)": ("pages/attention.py", {"method": "flow"}),
    "overview: all heads": ("pages/overview.py", {}),
    "masked prediction": ("pages/masked.py", {}),
    "compare: replace a word": ("pages/compare.py", {}),
}


@dataclass
class Measurement:
    model: str
    tokens: int
    view: str
    status: str = "ok"
    shipped_bytes: int = 0
    after_pass_s: float | None = None
    server_s: float | None = None
    client_s: float | None = None
    navigation_to_drawn_s: float | None = None
    js_heap_mb: float | None = None
    charts: int = 0
    cold: bool = False


# ------------------------------------------------------------------ machine
def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = match.group(1).strip() if match else cpu
    ram_gb = 0.0
    with contextlib.suppress(OSError, AttributeError):
        kb = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1)
        ram_gb = int(kb) / 1024**2
    import streamlit
    import torch

    chromium = subprocess.run(
        ["chromium", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "core", "pages", "streamlit_app.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "ram": f"{ram_gb:.1f} GiB",
        "python": platform.python_version(),
        "torch": f"{torch.__version__} ({torch.get_num_threads()} threads)",
        "streamlit": streamlit.__version__,
        "chromium": chromium,
        "app": f"{head}" + (f" + {len(dirty)} uncommitted app files" if dirty else ""),
    }


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def rss_mb(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of a process, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    values = {}
    for key in ("VmRSS", "VmHWM"):
        match = re.search(rf"{key}:\s*(\d+) kB", status)
        values[key] = int(match.group(1)) / 1024 if match else float("nan")
    return values


# ------------------------------------------------------------------ models and texts
def build_bert_base(directory: Path) -> Path:
    """bert-base-uncased's shape (BertConfig defaults) with random weights and a real
    WordPiece tokenizer over the embedded model's uncased vocabulary."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    from tests.tiny_models import wordpiece_vocab

    # transformers 5 ignores vocab_file=: the vocabulary must be passed as a dict.
    tokenizer = BertTokenizer(vocab=dict(wordpiece_vocab()), do_lower_case=True)
    tokenizer.model_max_length = 512
    config = BertConfig()
    if config.vocab_size != len(tokenizer):
        raise RuntimeError(f"vocab {len(tokenizer)} != BertConfig().vocab_size")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BertForMaskedLM(config)
    model.eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@contextlib.contextmanager
def bert_base_session():
    """``(app, browser, model path, info)``: a BERT-base-shaped checkpoint in a temporary
    folder, the app under `streamlit run`, headless Chromium, and the machine's description
    with the date and the load average at the start (add ``load_end`` after the timings)."""
    from playwright.sync_api import sync_playwright

    info = {**machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    info["load_start"] = load_average()
    with tempfile.TemporaryDirectory(prefix="atlas-bert-base-") as directory:
        model = str(build_bert_base(Path(directory)))
        with running_app() as app, sync_playwright() as playwright:
            browser = launch_browser(playwright)
            try:
                yield app, browser, model, info
            finally:
                browser.close()


def texts_for(counts) -> dict[int, str]:
    # A [MASK] in every text, so the masked-prediction page predicts on the masked-LM model.
    return {n: long_text(n, mask=True) for n in counts}


def forward_seconds(loaded, text: str, repeat: int = 3) -> float:
    """Median time of one `core.run_attention` (the app's forward pass), after a warm-up."""
    import core

    core.run_attention(loaded, text, top_k=10)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        core.run_attention(loaded, text, top_k=10)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ------------------------------------------------------------------ in-process server time
def app_run_seconds(model_param: str | None, text: str, repeat: int = 3) -> dict[str, float]:
    """Median seconds of one full script run of each view under AppTest, forward pass cached.

    Every repetition clears Streamlit's data caches, re-warms only the forward pass (an
    untimed run of the plain attention page), then times the view, so the view's own cached
    work (rollout, head statistics, gallery) is counted. The comparison's two forward passes
    are warmed too: they are forward passes, not work beyond them.
    """
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from ui.runtime import patch_pages_manager, unpatch_pages_manager

    # As the real server does after its first st.navigation call (ui/runtime.py).
    patch_pages_manager()
    try:

        def session(**query) -> AppTest:
            at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=900)
            query = {"text": text, **({"model": model_param} if model_param else {}), **query}
            for key, value in query.items():
                at.query_params[key] = str(value)
            return at

        def check(at: AppTest) -> None:
            if at.exception:
                raise RuntimeError([e.value for e in at.exception])

        results: dict[str, list[float]] = {name: [] for name in APPTEST_VIEWS}
        for _ in range(repeat):
            for name, (page, query) in APPTEST_VIEWS.items():
                # The result store (rollout, head statistics, comparisons) is a resource.
                st.cache_data.clear()
                st.cache_resource.clear()
                check(session().run())  # the forward pass, cached for what follows
                if page == "pages/compare.py":
                    warm = session().run()
                    warm.switch_page(page).run()
                    warm.text_input(key="w_replacement").input(REPLACEMENT).run()
                    check(warm)
                at = session(**query)
                if page == "pages/attention.py":
                    start = time.perf_counter()
                    at.run()
                else:
                    at.run()
                    at.switch_page(page)
                    if page == "pages/compare.py":
                        at.run()
                        at.text_input(key="w_replacement").input(REPLACEMENT)
                    start = time.perf_counter()
                    at.run()
                results[name].append(time.perf_counter() - start)
                check(at)
        medians = {name: statistics.median(times) for name, times in results.items()}
        medians[APPTEST_BASELINE] = apptest_baseline_seconds(repeat)
        return medians
    finally:
        unpatch_pages_manager()


APPTEST_BASELINE = "AppTest baseline (a one-line script)"


def apptest_baseline_seconds(repeat: int) -> float:
    """What AppTest itself costs per run (it scans installed packages for components on every
    run, which a real server does once at startup): a script that only writes one line."""
    from streamlit.testing.v1 import AppTest

    times = []
    for _ in range(repeat):
        at = AppTest.from_string("import streamlit as st\nst.write('x')", default_timeout=60)
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ------------------------------------------------------------------ browser measurements
class Traffic:
    """The page's websocket traffic from Chrome's network events (browser timestamps)."""

    def __init__(self, context, page) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        self._back, self._forward = BackMsg, ForwardMsg
        self.sent: list[tuple[float, str]] = []
        self.received: list[tuple[float, int, object]] = []
        self.playwright_bytes: list[int] = []
        self.cdp = context.new_cdp_session(page)
        self.cdp.on("Network.webSocketFrameSent", self._on_sent)
        self.cdp.on("Network.webSocketFrameReceived", self._on_received)
        self.cdp.send("Network.enable")
        page.on("websocket", self._on_websocket)

    def _on_websocket(self, ws) -> None:
        ws.on("framereceived", lambda payload: self.playwright_bytes.append(_size(payload)))

    def _payload(self, event) -> bytes:
        frame = event["response"]
        if frame["opcode"] == 2:
            return base64.b64decode(frame["payloadData"])
        return frame["payloadData"].encode()

    def _on_sent(self, event) -> None:
        kind = "?"
        with contextlib.suppress(Exception):
            kind = self._back.FromString(self._payload(event)).WhichOneof("type")
        self.sent.append((event["timestamp"], kind))

    def _on_received(self, event) -> None:
        data = self._payload(event)
        message = None
        with contextlib.suppress(Exception):
            message = self._forward.FromString(data)
        self.received.append((event["timestamp"], len(data), message))

    def mark(self) -> tuple[int, int, int]:
        return len(self.sent), len(self.received), len(self.playwright_bytes)

    def finished_run(self, mark) -> tuple[float, float, int] | None:
        """(request time, finish time, charts) of the run started after `mark`, once its
        script_finished (success) has arrived; None before that."""
        requests = [ts for ts, kind in self.sent[mark[0] :] if kind == "rerun_script"]
        if not requests:
            return None
        charts = 0
        for ts, _, message in self.received[mark[1] :]:
            if message is None:
                continue
            kind = message.WhichOneof("type")
            if kind == "new_session":
                charts = 0
            elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
                charts += message.delta.new_element.WhichOneof("type") == "vega_lite_chart"
            elif kind == "script_finished" and message.script_finished in (0, 3):
                return requests[0], ts, charts
        return None

    def shipped(self, mark) -> int:
        return sum(self.playwright_bytes[mark[2] :])


def _size(payload) -> int:
    return len(payload) if isinstance(payload, bytes) else len(payload.encode())


def measure_view(browser, app, view: View, model_param, text, label, n, timeout) -> Measurement:
    result = Measurement(label, n, view.name)
    context = browser.new_context(viewport=VIEWPORT)
    block_external_requests(context)
    page = context.new_page()
    try:
        traffic = Traffic(context, page)
        params = {"text": text, **view.params}
        if model_param:
            params["model"] = model_param
        started = time.monotonic()
        mark = traffic.mark()
        page.goto(app.url(view.path, **params), timeout=timeout * 1000)
        if view.type_replacement:
            run = wait_for_run(page, traffic, mark, started + timeout)
            if isinstance(run, str):
                result.status = run
                return result
            field_ = page.get_by_label("Replacement")
            field_.fill(REPLACEMENT)
            mark = traffic.mark()
            field_.press("Enter")
        run = wait_for_run(page, traffic, mark, started + timeout)
        drawn_at = time.monotonic()
        if isinstance(run, str):
            result.status = run
            result.shipped_bytes = traffic.shipped(mark)
            return result
        requested, finished, charts = run
        result.charts = charts
        result.shipped_bytes = traffic.shipped(mark)
        result.after_pass_s = drawn_at - requested
        result.server_s = finished - requested
        result.client_s = drawn_at - finished
        result.navigation_to_drawn_s = drawn_at - started
        traffic.cdp.send("HeapProfiler.collectGarbage")
        result.js_heap_mb = traffic.cdp.send("Runtime.getHeapUsage")["usedSize"] / 1e6
        if page.locator(EXCEPTION).count():
            result.status = "exception: " + page.locator(EXCEPTION).first.inner_text()[:200]
        return result
    except Exception as error:  # one broken view must not end the run
        result.status = f"error: {type(error).__name__}: {str(error)[:200]}"
        return result
    finally:
        context.close()


def wait_for_run(page, traffic: Traffic, mark, deadline: float):
    """Poll until the run after `mark` finished and all its charts are painted; returns
    (requested, finished, charts) or a status string."""
    start = time.monotonic()
    while time.monotonic() < deadline:
        run = traffic.finished_run(mark)
        if run is not None:
            state = chart_state(page)
            if state["drawn"] >= run[2]:
                return run
            if page.locator(EXCEPTION).count():
                return "exception: " + page.locator(EXCEPTION).first.inner_text()[:200]
        else:
            page.wait_for_timeout(20)  # lets Playwright deliver the network events
        time.sleep(0.03)
    return f"not drawn in {deadline - start:.0f} s"


def choose_option(label: str, option: str):
    def act(page) -> None:
        box = page.locator("[data-testid='stSelectbox']").filter(has_text=label).first
        box.click()
        page.get_by_role("option", name=option, exact=True).click()

    return act


def click_segment(option: str):
    def act(page) -> None:
        page.locator("[data-testid='stButtonGroup']").first.get_by_text(option, exact=True).click()

    return act


# What a visitor does on a loaded Attention page: each step is one rerun of the same session.
INTERACTIONS = (
    ("pick head 3", choose_option("Head", "3")),
    ("pick layer 3", choose_option("Layer", "3")),
    ("mean of heads", choose_option("Head", "mean of heads")),
    ("all heads (lines)", choose_option("Head", "all heads (lines)")),
    ("method rollout", click_segment("rollout")),
    ("method raw", click_segment("raw")),
)

TWO_FRAMES = "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"


def measure_interactions(browser, app, model_param, text, label, n, timeout) -> list[Measurement]:
    """Steps of `INTERACTIONS` on one loaded Attention page (one browser session).

    *after pass* runs from the browser's rerun request to the moment every chart slot is
    painted and two animation frames have passed after the run finished (the charts of the
    previous view stay painted, so "painted" alone would be reached at once; the frames wait
    out the main thread's Vega work for the new view).
    """
    context = browser.new_context(viewport=VIEWPORT)
    block_external_requests(context)
    page = context.new_page()
    rows: list[Measurement] = []
    try:
        traffic = Traffic(context, page)
        params = {"text": text, **({"model": model_param} if model_param else {})}
        mark = traffic.mark()
        page.goto(app.url("/", **params), timeout=timeout * 1000)
        if isinstance(wait_for_run(page, traffic, mark, time.monotonic() + timeout), str):
            return [Measurement(label, n, "interaction: page load", status="not loaded")]
        for name, act in INTERACTIONS:
            row = Measurement(label, n, f"interaction: {name}")
            page.wait_for_timeout(300)
            mark = traffic.mark()
            try:
                act(page)
                run = wait_for_run(page, traffic, mark, time.monotonic() + timeout)
                if isinstance(run, str):
                    row.status = run
                else:
                    page.evaluate(TWO_FRAMES)
                    drawn_at = time.monotonic()
                    requested, finished, row.charts = run
                    row.after_pass_s = drawn_at - requested
                    row.server_s = finished - requested
                    row.client_s = drawn_at - finished
                    row.shipped_bytes = traffic.shipped(mark)
                    if page.locator(EXCEPTION).count():
                        row.status = "exception"
            except Exception as error:  # one broken step must not end the run
                row.status = f"error: {type(error).__name__}: {str(error)[:120]}"
            print(f"  step  {_line(row)}", flush=True)
            rows.append(row)
        return rows
    finally:
        context.close()


# ------------------------------------------------------------------ BertViz
def ensure_bertviz():
    if str(BERTVIZ_DIR) not in sys.path:
        # Last on the path: the project's own packages always win over BertViz's extras.
        sys.path.append(str(BERTVIZ_DIR))
    try:
        from bertviz import head_view, model_view
    except ImportError:
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(BERTVIZ_DIR)]
        # --no-deps: BertViz would otherwise pull its own torch; it only needs IPython more.
        subprocess.run([*pip, "--no-deps", "bertviz==1.4.1"], check=True)
        subprocess.run([*pip, "ipython"], check=True)
        from bertviz import head_view, model_view
    return head_view, model_view


def ensure_js_assets() -> dict[str, Path]:
    JS_DIR.mkdir(parents=True, exist_ok=True)
    assets = {}
    for name, (package, member) in JS_PACKAGES.items():
        target = JS_DIR / name
        if not target.exists():
            tarball = subprocess.run(
                ["npm", "pack", "--silent", package],
                cwd=JS_DIR,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()[-1]
            with tarfile.open(JS_DIR / tarball) as archive:
                target.write_bytes(archive.extractfile(member).read())
        assets[name] = target
    return assets


@contextlib.contextmanager
def static_server(directory: Path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def bertviz_cases(playwright, cases, timeout: float) -> list[dict]:
    """Build head_view / model_view HTML for each (label, loaded model, text) and load it."""
    import torch

    import core

    head_view, model_view = ensure_bertviz()
    assets = ensure_js_assets()
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="atlas-bertviz-") as tmp,
        static_server(Path(tmp)) as base,
    ):
        for label, loaded, text in cases:
            result = core.run_attention(loaded, text)
            tokens = loaded.tokenizer.convert_ids_to_tokens(loaded.tokenizer(text)["input_ids"])
            n = len(tokens)
            attention = tuple(torch.from_numpy(layer[None]) for layer in result.attentions)
            for view_name, build in (("head_view", head_view), ("model_view", model_view)):
                gc.collect()
                start = time.perf_counter()
                html = build(attention, tokens, html_action="return").data
                build_s = time.perf_counter() - start
                file = Path(tmp) / f"{view_name}-{n}.html"
                file.write_text(html, encoding="utf-8")
                size = len(html.encode())
                del html
                gc.collect()
                row = {"model": label, "tokens": n, "view": view_name, "html_bytes": size}
                row["build_s"] = build_s
                row.update(load_bertviz(playwright, f"{base}/{file.name}", assets, timeout))
                file.unlink()
                print(f"  bertviz {label} n={n} {view_name}: {row}", flush=True)
                rows.append(row)
    return rows


def route_bertviz_assets(context, assets: dict[str, Path]) -> None:
    """BertViz's CDN scripts answered from local copies (`ensure_js_assets`); the local static
    server reached; anything else refused."""

    def handle(route) -> None:
        request_url = route.request.url
        if request_url.startswith("http://127.0.0.1"):
            route.continue_()
            return
        for suffix, path in assets.items():
            if request_url.endswith(suffix):
                route.fulfill(path=str(path), content_type="application/javascript")
                return
        route.abort()

    context.route("**/*", handle)


def load_bertviz(playwright, url: str, assets: dict[str, Path], timeout: float) -> dict:
    """Open a BertViz HTML file; drawn = its SVG has attention lines and a frame was painted
    after they were added. A fresh browser each time: a crash or hang stays contained."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    browser = launch_browser(playwright)
    crashed: list[float] = []
    started = time.monotonic()
    try:
        context = browser.new_context(viewport=VIEWPORT)
        route_bertviz_assets(context, assets)
        page = context.new_page()
        page.on("crash", lambda *_: crashed.append(time.monotonic() - started))
        started = time.monotonic()
        remaining = lambda: max(1.0, timeout - (time.monotonic() - started))  # noqa: E731
        page.goto(url, wait_until="commit", timeout=remaining() * 1000)
        page.wait_for_function(
            "() => document.querySelector('#vis svg line') !== null",
            timeout=remaining() * 1000,
            polling=100,
        )
        page.evaluate(
            "() => requestAnimationFrame(() => requestAnimationFrame(() => "
            "{ window.__atlasPainted = true; }))"
        )
        page.wait_for_function("() => window.__atlasPainted === true", timeout=remaining() * 1000)
        drawn_s = time.monotonic() - started
        lines = page.evaluate("() => document.querySelectorAll('#vis svg line').length")
        cdp = context.new_cdp_session(page)
        heap = cdp.send("Runtime.getHeapUsage")["usedSize"] / 1e6
        return {"status": "drawn", "drawn_s": drawn_s, "svg_lines": lines, "js_heap_mb": heap}
    except PlaywrightTimeout:
        if crashed:
            return {"status": f"renderer crashed after {crashed[0]:.0f} s", "drawn_s": None}
        return {"status": f"not drawn after {timeout:.0f} s", "drawn_s": None}
    except PlaywrightError as error:
        if crashed:
            return {"status": f"renderer crashed after {crashed[0]:.0f} s", "drawn_s": None}
        return {"status": f"error: {str(error).splitlines()[0][:120]}", "drawn_s": None}
    finally:
        with contextlib.suppress(Exception):
            browser.close()


# ------------------------------------------------------------------ the run
def run(args) -> dict:
    import core

    info = machine()
    info["load average at start"] = load_average()
    print(json.dumps(info, indent=1), flush=True)
    if args.quick:
        browser_plan = {EMBEDDED: (512,)}
        bertviz_plan = {EMBEDDED: (66,)}
        apptest_plan = (EMBEDDED,)
    else:
        browser_plan = {EMBEDDED: (66, 128, 258, 512), BERT_BASE: (128, 512)}
        bertviz_plan = {EMBEDDED: (66, 258, 512), BERT_BASE: (512,)}
        apptest_plan = (EMBEDDED, BERT_BASE)
    counts = sorted({n for ns in browser_plan.values() for n in ns} | {128})
    texts = texts_for(counts)
    raw: dict = {"machine": info, "command": " ".join(["python", *sys.argv])}

    with tempfile.TemporaryDirectory(prefix="atlas-bert-base-") as model_dir:
        models = {EMBEDDED: None}
        if BERT_BASE in browser_plan or BERT_BASE in apptest_plan:
            start = time.perf_counter()
            models[BERT_BASE] = str(build_bert_base(Path(model_dir)))
            print(f"built {BERT_BASE} in {time.perf_counter() - start:.1f} s", flush=True)

        # In-process numbers first, while nothing else of ours uses the cores.
        forward: dict[str, dict[int, float]] = {}
        apptest: dict[str, dict[str, float]] = {}
        for label, param in models.items():
            loaded = core.load_model(param or core.EMBEDDED_MODEL)
            wanted = set(browser_plan.get(label, ())) | {128}
            forward[label] = {n: forward_seconds(loaded, texts[n]) for n in sorted(wanted)}
            print(f"forward pass {label}: {forward[label]}", flush=True)
            if label in apptest_plan:
                apptest[label] = app_run_seconds(param, texts[128])
                print(f"app run at 128 tokens {label}: {apptest[label]}", flush=True)
            del loaded
            gc.collect()
        raw["forward_s"] = forward
        raw["app_run_128_s"] = apptest

        from playwright.sync_api import sync_playwright

        measurements: list[Measurement] = []
        rss: dict[str, dict[str, float]] = {}
        with sync_playwright() as playwright:
            browser = launch_browser(playwright)
            for label, ns in browser_plan.items():
                # A fresh server per model, so its RSS is that model's alone.
                with running_app() as app:
                    for n in ns:
                        measurements += browser_config(
                            browser, app, label, models[label], n, texts[n], args.timeout, rss
                        )
            browser.close()
            raw["browser"] = [asdict(m) for m in measurements]
            raw["server_rss_mb"] = rss
            raw["load average after the app runs"] = load_average()

            bertviz: list[dict] = []
            if not args.no_bertviz:
                cases = []
                for label, ns in bertviz_plan.items():
                    loaded = core.load_model(models[label] or core.EMBEDDED_MODEL)
                    cases += [(label, loaded, texts_for([n])[n]) for n in ns]
                try:
                    bertviz = bertviz_cases(playwright, cases, args.timeout)
                except Exception as error:  # keep the app's numbers if BertViz breaks
                    print(f"BertViz comparison failed: {type(error).__name__}: {error}")
                    raw["bertviz_error"] = f"{type(error).__name__}: {error}"
            raw["bertviz"] = bertviz
    raw["machine"]["load average at end"] = load_average()
    return raw


def browser_config(browser, app, label, model_param, n, text, timeout, rss) -> list[Measurement]:
    """All views of one model and input length on a running server; server memory goes to
    `rss` after the first visit (model loaded, this result cached) and after every view."""
    print(f"{label}, {n} tokens", flush=True)
    # The first visit runs the forward pass (cold); every view after it finds it cached.
    cold = measure_view(browser, app, VIEWS[0], model_param, text, label, n, timeout)
    cold.cold = True
    print(f"  cold  {_line(cold)}", flush=True)
    rss[f"{label}: {n}-token result cached (first visit)"] = rss_mb(app.pid)
    rows = [cold]
    # The comparison's own two forward passes, warmed the same way.
    warm = measure_view(browser, app, VIEWS[-1], model_param, text, label, n, timeout)
    warm.cold = True
    print(f"  cold  {_line(warm)}", flush=True)
    rows.append(warm)
    for view in VIEWS:
        row = measure_view(browser, app, view, model_param, text, label, n, timeout)
        print(f"  warm  {_line(row)}", flush=True)
        rows.append(row)
    rows += measure_interactions(browser, app, model_param, text, label, n, timeout)
    rss[f"{label}: after every view at {n} tokens"] = rss_mb(app.pid)
    print(f"  server memory: {rss}", flush=True)
    return rows


def _line(m: Measurement) -> str:
    return (
        f"{m.view:34s} {m.status:8s} {m.shipped_bytes / 1e6:7.3f} MB  after pass "
        f"{_s(m.after_pass_s)}  server {_s(m.server_s)}  client {_s(m.client_s)}  "
        f"heap {_f(m.js_heap_mb)} MB  charts {m.charts}"
    )


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _f(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


# ------------------------------------------------------------------ report
TARGETS = {
    "view": (1.5, 3e6),
    "overview": (2.0, 3e6),
}


def report(raw: dict) -> str:
    info = raw["machine"]
    rows = [Measurement(**m) for m in raw["browser"]]
    warm = [m for m in rows if not m.cold]
    lines = [
        SECTION,
        "",
        f"Run: `{raw['command']}` on {info['date']}. Machine: {info['nproc']} CPUs "
        f"({info['cpu']}), {info['ram']} RAM; Python {info['python']}, torch {info['torch']}, "
        f"Streamlit {info['streamlit']}, {info['chromium']}. App at {info['app']}. "
        f"Load average (1/5/15 min) at start {info['load average at start']}, at end "
        f"{info['load average at end']}: the machine is shared, single samples are noisy.",
        "",
        "Method (details in the docstring of `bench/bench_browser.py`): *shipped* = websocket "
        "bytes the page received for the view; *after pass* = from the browser's rerun request "
        "to every chart painted, with the forward pass already cached by the app (view-level "
        "caches cold); *server* = request to the server's `script_finished`; *client* = the "
        "rest (transfer, parse, Vega); *JS heap* = CDP `Runtime.getHeapUsage` after GC. "
        "Input: generated English with one [MASK], exactly *n* WordPiece tokens.",
        "",
    ]
    lines += _targets(raw, warm)
    lines += ["", "### Every view", ""]
    lines += [
        "| model | n | view | shipped MB | after pass s | server s | client s | JS heap MB "
        "| charts | status |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for m in rows:
        view = m.view + (" (cold: forward pass included)" if m.cold else "")
        lines.append(
            f"| {m.model} | {m.tokens} | {view} | {m.shipped_bytes / 1e6:.3f} | "
            f"{_f(m.after_pass_s, 2)} | {_f(m.server_s, 2)} | {_f(m.client_s, 2)} | "
            f"{_f(m.js_heap_mb)} | {m.charts} | {m.status} |"
        )
    lines += ["", "### Forward pass alone (in-process `core.run_attention`, median of 3)", ""]
    lines += ["| model | " + " | ".join(f"n={n}" for n in _all_n(raw)) + " |"]
    lines += ["| --- |" + " ---: |" * len(_all_n(raw))]
    for label, per_n in raw["forward_s"].items():
        cells = [_f(per_n.get(str(n), per_n.get(n)), 3) for n in _all_n(raw)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += _cold_check(raw, rows)
    lines += _server_time(raw)
    lines += ["", "### Server memory (VmRSS now / VmHWM peak of the `streamlit run` process)", ""]
    lines += ["| after | RSS MB | peak MB |", "| --- | ---: | ---: |"]
    for key, value in raw["server_rss_mb"].items():
        lines.append(f"| {key} | {value['VmRSS']:.0f} | {value['VmHWM']:.0f} |")
    lines += _bertviz(raw, warm)
    return "\n".join(lines) + "\n"


def _all_n(raw) -> list[int]:
    return sorted({int(n) for per_n in raw["forward_s"].values() for n in per_n})


def _find(rows, model, n, view) -> Measurement | None:
    return next((m for m in rows if (m.model, m.tokens, m.view) == (model, n, view)), None)


def _targets(raw, warm) -> list[str]:
    lines = ["### Targets", "", "| target | measured | |", "| --- | --- | --- |"]
    model = BERT_BASE if any(m.model == BERT_BASE for m in warm) else EMBEDDED
    for m in [m for m in warm if m.model == model and m.tokens == 512]:
        time_limit, size_limit = TARGETS["overview" if m.view.startswith("overview") else "view"]
        ok = (
            m.status == "ok"
            and m.after_pass_s is not None
            and m.after_pass_s <= time_limit
            and m.shipped_bytes <= size_limit
        )
        lines.append(
            f"| {m.view}, 512 tokens, {model}: drawn ≤ {time_limit} s after the pass, "
            f"≤ {size_limit / 1e6:.0f} MB | {_f(m.after_pass_s, 2)} s, "
            f"{m.shipped_bytes / 1e6:.2f} MB ({m.status}) | {'met' if ok else 'missed'} |"
        )
    key = f"{model}: 512-token result cached (first visit)"
    if key in raw["server_rss_mb"]:
        value = raw["server_rss_mb"][key]["VmRSS"]
        lines.append(
            f"| server RSS, {model} loaded, 512-token result cached ≤ 1.5 GB | {value:.0f} MB "
            f"| {'met' if value <= 1536 else 'missed'} |"
        )
    for label, per_view in raw["app_run_128_s"].items():
        pass_s = raw["forward_s"][label].get(128) or raw["forward_s"][label].get("128")
        baseline = per_view.get(APPTEST_BASELINE, 0.0)
        beyond = {v: max(0.0, s - baseline) for v, s in per_view.items() if v != APPTEST_BASELINE}
        worst = max(beyond.items(), key=lambda item: item[1])
        lines.append(
            f"| server time beyond the pass ≤ 30 % of the pass at 128 tokens, {label} | pass "
            f"{pass_s:.3f} s; worst view {worst[0]} {worst[1]:.3f} s = "
            f"{100 * worst[1] / pass_s:.0f} % | {'met' if worst[1] <= 0.3 * pass_s else 'missed'} |"
        )
    return lines


def _cold_check(raw, rows) -> list[str]:
    lines = [
        "",
        "### Cross-check: first (cold) visit minus the in-process forward pass",
        "",
        "| model | n | view | cold after request s | forward s | difference s "
        "| warm after pass s |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for m in [m for m in rows if m.cold and m.view == VIEWS[0].name]:
        pass_s = raw["forward_s"][m.model].get(m.tokens) or raw["forward_s"][m.model].get(
            str(m.tokens)
        )
        warm = _find([r for r in rows if not r.cold], m.model, m.tokens, m.view)
        if m.after_pass_s is None or pass_s is None:
            continue
        lines.append(
            f"| {m.model} | {m.tokens} | {m.view} | {m.after_pass_s:.2f} | {pass_s:.2f} | "
            f"{m.after_pass_s - pass_s:.2f} | {_f(warm.after_pass_s if warm else None, 2)} |"
        )
    return lines


def _server_time(raw) -> list[str]:
    lines = [
        "",
        "### Server time beyond the forward pass, 128 tokens (in-process AppTest, median of 3)",
        "",
        "*App run* is one AppTest run of the view; *minus AppTest* subtracts what AppTest costs "
        "for a one-line script (mostly its per-run scan of installed packages for components, "
        "which a real server does once at startup).",
        "",
        "| model | forward pass s | view | app run s (pass cached) | minus AppTest s "
        "| % of the pass |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for label, per_view in raw["app_run_128_s"].items():
        pass_s = raw["forward_s"][label].get(128) or raw["forward_s"][label].get("128")
        baseline = per_view.get(APPTEST_BASELINE, 0.0)
        for view, seconds in per_view.items():
            if view == APPTEST_BASELINE:
                continue
            beyond = max(0.0, seconds - baseline)
            lines.append(
                f"| {label} | {pass_s:.3f} | {view} | {seconds:.3f} | {beyond:.3f} | "
                f"{100 * beyond / pass_s:.0f} % |"
            )
        lines.append(f"| {label} | | {APPTEST_BASELINE} | {baseline:.3f} | | |")
    return lines


def _bertviz(raw, warm) -> list[str]:
    if not raw.get("bertviz"):
        return []
    lines = [
        "",
        "### BertViz on the same attentions (same run)",
        "",
        "BertViz 1.4.1 `head_view` / `model_view` with `html_action='return'`, the HTML served "
        "from 127.0.0.1 and its CDN scripts (require.js 2.3.6, d3 5.7.0, jQuery 2.1.0) answered "
        "locally. *Drawn* = its SVG holds attention lines and a frame was painted after; time "
        "from navigation. Ratios: BertViz ÷ Attention Atlas's comparable view (head_view vs "
        "'attention: all heads (lines)', model_view vs 'overview: all heads'); time ratios use "
        "BertViz build + draw against the app's after-pass time.",
        "",
        "| model | n | BertViz view | HTML MB | build s | drawn s | status | size ÷ app "
        "| time ÷ app |",
        "| --- | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for row in raw["bertviz"]:
        app_view = "attention: all heads (lines)" if row["view"] == "head_view" else None
        app_view = app_view or "overview: all heads"
        app = _find(warm, row["model"], row["tokens"], app_view)
        size_ratio = time_ratio = "—"
        if app is not None and app.shipped_bytes:
            size_ratio = f"{row['html_bytes'] / app.shipped_bytes:.0f}×"
            if row.get("drawn_s") is not None and app.after_pass_s:
                time_ratio = f"{(row['build_s'] + row['drawn_s']) / app.after_pass_s:.1f}×"
            elif app.after_pass_s:
                time_ratio = "∞ (not drawn)"
        lines.append(
            f"| {row['model']} | {row['tokens']} | {row['view']} | {row['html_bytes'] / 1e6:.1f} "
            f"| {row['build_s']:.2f} | {_f(row.get('drawn_s'), 2)} | {row['status']} | "
            f"{size_ratio} | {time_ratio} |"
        )
    return lines


def write_section(text: str, path: Path = RESULTS, section: str = SECTION) -> None:
    """Replace one benchmark's section of RESULTS.md (or append it), leaving the rest alone."""
    existing = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(existing):
        updated = pattern.sub(lambda _: text + "\n", existing, count=1)
    else:
        updated = existing.rstrip("\n") + "\n\n" + text
    path.write_text(updated.rstrip("\n") + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="embedded model, 512 tokens only")
    parser.add_argument("--no-bertviz", action="store_true", help="skip the BertViz comparison")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds before a view counts as not drawn"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print the section instead of writing it"
    )
    args = parser.parse_args()
    raw = run(args)
    RAW_JSON.parent.mkdir(parents=True, exist_ok=True)
    RAW_JSON.write_text(json.dumps(raw, indent=1, default=str))
    section = report(raw)
    print(section)
    if not args.no_write:
        write_section(section)
        print(f"wrote {RESULTS.relative_to(REPO)} ({SECTION!r}) and {RAW_JSON.relative_to(REPO)}")


if __name__ == "__main__":
    main()
