"""Run the real app under `streamlit run` and drive it with headless Chromium (Playwright).

Shared by the end-to-end tests (``tests/e2e``) and the browser benchmark
(``bench/bench_browser.py``)::

    with running_app() as app, sync_playwright() as playwright:
        browser = launch_browser(playwright)
        page = browser.new_page()
        page.goto(app.url("/overview", text="The cat sat."))
        wait_for_run(page)
        wait_for_charts(page)

Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "artifacts" / "screenshots"

# --headless and friends keep Chromium from phoning home (component updates, sync, field
# trials) as well as from needing a display or a GPU.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
)

RUN_FINISHED = "[data-testid='stApp'][data-test-script-state='notRunning']"
CHART = "[data-testid='stVegaLiteChart']"
EXCEPTION = "[data-testid='stException']"
ERROR = "[data-testid='stAlertContentError']"
WARNING = "[data-testid='stAlertContentWarning']"

# Counts the script runs the page has started (the stApp attribute flips to "running"), so a
# wait after an interaction cannot mistake the previous run's "notRunning" for the new one's.
_RUN_COUNTER = """() => {
    const app = document.querySelector("[data-testid='stApp']");
    window.__atlasRuns = 0;
    new MutationObserver(() => {
        if (app.getAttribute('data-test-script-state') === 'running') window.__atlasRuns += 1;
    }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""

# Chart slots are the element containers Streamlit lays out as graphics (every st.altair_chart
# gets one as soon as its delta arrives, before the lazily loaded chart component mounts). A
# chart counts as drawn once Vega has painted it: an SVG with marks, or a canvas with at least
# one non-transparent pixel (Vega creates the canvas before evaluating the data, so its mere
# presence says nothing). Slots hidden in an inactive tab are not counted.
_CHART_STATE = """() => {
    const slots = [...document.querySelectorAll(
        "[data-testid='stMain'] [data-testid='stElementContainer'].stPrintGraphic")]
        .filter((slot) => slot.offsetParent !== null);
    const painted = (chart) => {
        const svg = chart.querySelector('svg.marks, svg');
        if (svg && svg.querySelector('path, rect, line, text')) return true;
        const canvas = chart.querySelector('canvas');
        if (!canvas || canvas.width === 0 || canvas.height === 0) return false;
        // Reading back a large canvas is not free: remember the ones already seen painted.
        if (canvas.__atlasPainted) return true;
        const pixels = canvas.getContext('2d')
            .getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 3; i < pixels.length; i += 4 * 7) {
            if (pixels[i] !== 0) return (canvas.__atlasPainted = true);
        }
        return false;
    };
    const drawn = slots.filter((slot) => {
        const chart = slot.querySelector("[data-testid='stVegaLiteChart']");
        return chart !== null && painted(chart);
    }).length;
    return {slots: slots.length, drawn};
}"""


EXPLORER = "[data-testid='stBidiComponentIsolated'] .ex-root"
"""The Attention page's explorer (`ui.explorer`); Playwright's selectors pierce its shadow root."""

# The explorer's state (its root's data attributes: draws, head, selected, labels drawn, hover
# text, legend) and its boxes: page.evaluate does not pierce shadow roots, so it finds the host.
_EXPLORER_STATE = """() => {
    const host = [...document.querySelectorAll("[data-testid='stBidiComponentIsolated']")]
        .find((h) => h.shadowRoot && h.shadowRoot.querySelector('.ex-root'));
    if (!host) return null;
    const root = host.shadowRoot.querySelector('.ex-root');
    const box = (el) => { const r = el.getBoundingClientRect();
        return {x: r.left, r: r.right, y: r.top, b: r.bottom, width: r.width, height: r.height}; };
    const column = host.closest("[data-testid='stColumn']")
        || host.closest("[data-testid='stVerticalBlock']");
    return {...root.dataset, root: box(root), column: box(column),
            matrix: box(root.querySelector('.ex-matrix')),
            bars: box(root.querySelector('.ex-bars')),
            scroll: box(root.querySelector('.ex-scroll')), runs: window.__atlasRuns ?? null,
            focused: host.shadowRoot.activeElement === root};
}"""


class BrowserUnavailable(RuntimeError):
    """Playwright or a Chromium binary is missing."""


def chromium_executable() -> str:
    """Path of the system Chromium (Playwright's own browser download is not used)."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise BrowserUnavailable(
        "no Chromium on PATH: install it with `apt-get install -y chromium` (Debian)"
    )


def launch_browser(playwright, extra_args: Sequence[str] = ()):
    """Headless system Chromium. Playwright gives every launch a fresh temporary profile."""
    return playwright.chromium.launch(
        executable_path=chromium_executable(), args=[*CHROMIUM_ARGS, *extra_args]
    )


def block_external_requests(context) -> list[str]:
    """Abort every request of `context` that is not for 127.0.0.1; returns the list of the
    blocked URLs (it fills as the pages run), so a test can tell whether anything tried."""
    blocked: list[str] = []

    def handle(route) -> None:
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    context.route("**/*", handle)
    return blocked


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class App:
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def url(self, path: str = "/", **params: object) -> str:
        query = urlencode({k: str(v) for k, v in params.items() if v is not None})
        return f"http://127.0.0.1:{self.port}{path}" + (f"?{query}" if query else "")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextlib.contextmanager
def running_app(
    port: int | None = None, timeout: float = 120.0, env: dict[str, str] | None = None
) -> Iterator[App]:
    """`streamlit run streamlit_app.py` on 127.0.0.1; stopped on exit, also after a failure.

    `env` adds to the server's environment (e.g. ``{"ATLAS_PUBLIC": "1"}``); the Hub stays
    offline whatever it says.
    """
    port = port or free_port()
    log = Path(tempfile.mkstemp(prefix="atlas-streamlit-", suffix=".log")[1])
    env = {
        **os.environ,
        **(env or {}),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "streamlit_app.py",
        "--server.headless",
        "true",
        # An explicit address also stops Streamlit from looking up this machine's public IP.
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    app = App(process, port, log)
    try:
        _wait_healthy(app, timeout)
        yield app
    finally:
        _stop(process)


def _wait_healthy(app: App, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    health = f"http://127.0.0.1:{app.port}/_stcore/health"
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            raise RuntimeError(
                f"streamlit exited with code {app.process.returncode}:\n{app.log_tail()}"
            )
        with (
            contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
            urllib.request.urlopen(health, timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.25)
    raise RuntimeError(f"streamlit did not answer {health} in {timeout:.0f} s:\n{app.log_tail()}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    # The server runs in its own session, so its group id is its pid: this reaches any worker
    # it started and nothing else.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


# ------------------------------------------------------------------ page helpers
def wait_for_run(page, timeout: float = 120.0) -> None:
    """Wait for the run a navigation started: the app is connected and the script finished."""
    page.wait_for_selector(RUN_FINISHED, state="attached", timeout=timeout * 1000)


def start_counting_runs(page) -> None:
    """Call before an interaction; `wait_for_next_run` then waits for the run it triggers."""
    page.evaluate(_RUN_COUNTER)


def wait_for_next_run(page, timeout: float = 120.0) -> None:
    page.wait_for_function(
        "() => window.__atlasRuns > 0 && document.querySelector(\"[data-testid='stApp']\")"
        ".getAttribute('data-test-script-state') === 'notRunning'",
        timeout=timeout * 1000,
        polling=50,
    )


def chart_state(page) -> dict[str, int]:
    """``{"slots": charts on the page, "drawn": charts Vega has painted}``."""
    return page.evaluate(_CHART_STATE)


def wait_for_charts(page, minimum: int = 1, timeout: float = 120.0, poll: float = 0.05) -> dict:
    """Wait until at least `minimum` charts exist and every one of them is painted.

    Polling from Python (rather than `wait_for_function`) waits out a busy main thread the
    same way for every chart size and returns the last state on timeout for the message.
    """
    deadline = time.monotonic() + timeout
    state: dict[str, int] = {"slots": 0, "drawn": 0}
    while time.monotonic() < deadline:
        state = chart_state(page)
        if state["slots"] >= minimum and state["drawn"] == state["slots"]:
            return state
        time.sleep(poll)
    raise TimeoutError(f"charts not drawn in {timeout:.0f} s: {state}")


def explorer_state(page) -> dict | None:
    """The explorer's data attributes and boxes (None: no explorer on the page)."""
    return page.evaluate(_EXPLORER_STATE)


def wait_for_explorer(page, timeout: float = 120.0) -> dict:
    """Wait until the explorer has painted at least once; its state."""
    page.wait_for_selector(f"{EXPLORER}[data-draws]", state="attached", timeout=timeout * 1000)
    return explorer_state(page)


# The overview's head grid (`ui.head_grid`): its canvas and column, and whether the atlas image
# has been drawn on it; page.evaluate does not pierce shadow roots, so it finds the host.
_HEAD_GRID_STATE = """() => {
    const host = [...document.querySelectorAll("[data-testid='stBidiComponentIsolated']")]
        .find((h) => h.shadowRoot && h.shadowRoot.querySelector('.hg-root'));
    if (!host) return null;
    const canvas = host.shadowRoot.querySelector('.hg-canvas');
    const column = host.closest("[data-testid='stColumn']")
        || host.closest("[data-testid='stVerticalBlock']");
    const c = canvas.getBoundingClientRect(), k = column.getBoundingClientRect();
    return {canvas: {x: c.left, r: c.right, width: c.width, height: c.height},
            column: {x: k.left, r: k.right, width: k.width},
            painted: Boolean(host.shadowRoot.querySelector('.hg-root').__grid?.image)};
}"""


def head_grid_state(page) -> dict | None:
    """The head grid's canvas and column boxes and whether it is painted (None: no grid)."""
    return page.evaluate(_HEAD_GRID_STATE)


def wait_for_head_grid(page, timeout: float = 120.0) -> dict:
    """Wait until the overview's head grid has drawn its thumbnails; its state."""
    page.wait_for_function(
        f"() => ({_HEAD_GRID_STATE})()?.painted === true", timeout=timeout * 1000
    )
    return head_grid_state(page)


CORPUS_FINISHED = re.compile(r"^Measured [\d,]+ sentences")
"""The Corpus page's caption once a run is finished (or reopened from the store)."""


def open_view(
    page,
    url: str,
    *,
    charts: int = 0,
    tab: str | None = None,
    corpus_run: bool = False,
    settle_ms: int = 400,
    timeout: float = 120.0,
) -> None:
    """Load `url` and wait until the view is drawn.

    `corpus_run` presses the Corpus page's Run (unless the run is stored already) and waits
    for it to finish; `tab` opens a tab afterwards (a hidden tab's charts are not laid out);
    `charts` waits for at least that many painted Vega charts; `settle_ms` lets Vega lay out
    once more after its container's width settles.
    """
    page.goto(url)
    wait_for_run(page, timeout)
    if corpus_run:
        run = page.get_by_role("button", name="Run", exact=True)
        finished = page.get_by_text(CORPUS_FINISHED)
        # The first run may still be drawing: wait for either, then start the run if needed.
        run.or_(finished).first.wait_for(timeout=timeout * 1000)
        if run.count():
            run.click()
        # A run reruns the page chunk by chunk; it is over when the page says so.
        page.get_by_text(CORPUS_FINISHED).wait_for(timeout=timeout * 1000)
        wait_for_run(page, timeout)
    if tab:
        page.get_by_role("tab", name=tab).click()
    if charts:
        wait_for_charts(page, charts, timeout)
    page.wait_for_timeout(settle_ms)


def full_page_screenshot(page, path: Path) -> Path:
    """Screenshot of the whole page, not just the viewport.

    Streamlit scrolls inside its main container, so Playwright's full_page alone would stop at
    the viewport: grow the viewport to the content first.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size or {"width": 1400, "height": 1000}
    height = page.evaluate(
        """() => Math.max(...[...document.querySelectorAll(
            "[data-testid='stMain'], [data-testid='stMainBlockContainer'], section")]
            .map((el) => el.scrollHeight), document.body.scrollHeight)"""
    )
    page.set_viewport_size({"width": size["width"], "height": min(int(height) + 40, 16000)})
    try:
        page.wait_for_timeout(300)  # let Vega re-layout at the new size before capturing
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(size)
    return path


# ------------------------------------------------------------------ inputs
def long_text(n_tokens: int, mask: bool = False) -> str:
    """Deterministic English text that the uncased BERT WordPiece vocabulary (the embedded
    model's, also used by the tiny and benchmark BERTs) splits into exactly `n_tokens` tokens,
    [CLS] and [SEP] included. With `mask`, one word near the middle is [MASK]."""
    from transformers import BertTokenizerFast

    from tests.tiny_models import corpus, wordpiece_vocab

    tokenizer = BertTokenizerFast(vocab=dict(wordpiece_vocab()), do_lower_case=True)
    budget = n_tokens - 2
    words: list[str] = []
    used = 0
    sentences = corpus()
    index = 0
    while used < budget:
        for word in sentences[index % len(sentences)].split():
            pieces = len(tokenizer.tokenize(word))
            if used + pieces > budget:
                # Top up with one-piece words so the count comes out exact.
                words.extend(["and"] * (budget - used))
                used = budget
                break
            words.append(word)
            used += pieces
            if used == budget:
                break
        index += 1
    if mask:
        middle = len(words) // 2
        while len(tokenizer.tokenize(words[middle])) != 1:
            middle += 1
        words[middle] = "[MASK]"
    text = " ".join(words)
    count = len(tokenizer(text)["input_ids"])
    if count != n_tokens:
        raise AssertionError(f"long_text({n_tokens}) tokenizes to {count} tokens")
    return text
