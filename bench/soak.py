"""Soak test: many visitors at once on one `streamlit run` server, for minutes.

Run by hand (≈6 minutes; everything stays on 127.0.0.1 and the script stops by itself):

    python bench/soak.py                      # 10 visitors, 5 minutes, public mode, prints a report
    python bench/soak.py --write              # … and puts it in bench/RESULTS.md
    python bench/soak.py --clients 4 --duration 60 --warmup 20   # a quick check
    python bench/soak.py --server-env MALLOC_ARENA_MAX=16       # glibc's allocator defaults
    python bench/soak.py --clients 20 --write                   # issue 12's 20-visitor target
    python bench/soak.py --heavy --clients 3 --duration 120 --write   # fair CPU, see below
    python bench/soak.py --heavy --heavy-sessions 4 --clients 3 --duration 120   # four heavy tabs
    python bench/soak.py --probe              # the CI soak, then what the server holds, by part

It starts `streamlit run streamlit_app.py` on a free port of 127.0.0.1 with the public-deploy
policy on (ATLAS_PUBLIC=1: presets only, 256-token cap), then runs N simulated visitors
concurrently. Each visitor speaks Streamlit's own websocket protocol (the protobuf messages the
browser sends and receives) instead of driving a headless browser: ten Chromiums rendering Vega
charts would eat this 2-core machine and measure the browsers, not the server. A visitor:

1. opens a random page as a new session (a fresh websocket, like a new browser tab);
2. then, with a think time of 0.2–1.0 s between actions, alternately types a new text into the
   sidebar (a never-seen sentence of 4–60 words, sometimes with [MASK], one in ten ≈300 words,
   beyond the token cap) and moves to the next page (attention → overview → masked → compare);
3. leaves after 12 actions and comes back as a new session, until the time is up.

A request is one script run, from the message sent to `script_finished`. Errors are any
exception element, any st.error (every text is valid, so none is expected), an attention page
without its charts or not showing the text just typed, a run that does not finish within 60 s,
or a dropped connection. The server's resident memory (RSS, /proc) and what st.cache_data holds
(/_stcore/metrics) are sampled every 5 s. Under load RSS swings by hundreds of MB with the runs
in flight, so growth is measured at rest: the visitors pause (connected) for 25 s after the
warm-up (first model load, caches filling) and again for 25 s at the end, before leaving.

After the visitors leave, RSS is sampled for `--idle-tail` seconds (default 60): memory that
does not come back then is held by something that outlived the sessions.

`--server-env MALLOC_ARENA_MAX=16` runs the server with glibc's default allocator settings
(the app only tunes them when that variable is unset), for comparison.

`--heavy` measures fair CPU instead: one server with `ATLAS_MAX_TOKENS=512`, `--clients`
ordinary visitors for `--duration` seconds alone, then the same again with one heavy visitor
beside them, who does the heaviest things the deployment allows, over and over: a new 512-token
text on the attention page opened by a link with `method=flow` (the flow the page starts for
it), every download button on that page and on the overview page fetched (the file is built on
the server when asked for). The report compares the ordinary visitors' p95 page time without
and with the heavy one (target: at most 2×).

`--probe` runs the CI soak (tests/e2e/test_soak.py: its visitors, minute and bound) on a server
with the memory probe of `bench/soak_probe/` loaded, and after the idle tail asks it what the
server holds: sessions (connected and kept for reconnection) with their state, media files, the
result store, st.cache_data, cyclic garbage and the allocator's free blocks, each measured by
taking it away (`bench/soak_probe/sitecustomize.py`). The app itself never loads the probe.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import sys
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import websockets
from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.harness import running_app  # noqa: E402
from ui.explorer.component import COMPONENT_NAME as EXPLORER_COMPONENT  # noqa: E402
from ui.explorer.payload import unpack  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Many users at once"
PAGES = ("attention", "overview", "masked", "compare")
ACTIONS_PER_SESSION = 12
REQUEST_TIMEOUT = 60.0
HEAVY_REQUEST_TIMEOUT = 600.0
"""A 512-token flow or a large export may take minutes on a loaded machine; it is not an error."""
HEAVY_TOKENS = 512
LEAVE_TAIL = 60.0
"""Seconds after the visitors left within which RSS should have come back (issue 12)."""
QUIET = 25.0
"""Seconds the visitors pause after the warm-up (and wait after leaving) so RSS can be taken at
rest: under load it swings by hundreds of MB with the runs in flight."""
WORDS = tuple(
    " ".join(
        [
            "the a cat dog bird sat ran flew on under over mat tree house river because it was",
            "tired happy hungry and but then quickly slowly small large red green old new city",
            "garden morning night rain sun bright dark teacher student book letter wrote read",
            "found lost near far behind every some many people children music played loud quiet",
            "window door kitchen table chair ocean mountain train station ticket coffee bread",
        ]
    ).split()
)


# ---------------------------------------------------------------- the server
def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of `pid` in MB; `field="VmHWM"` gives its peak since it started."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for process {pid}")


# ---------------------------------------------------------------- visitors
@dataclass
class Stats:
    started: float = field(default_factory=time.monotonic)
    times: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: {p: [] for p in PAGES}
    )
    """Per page: (seconds since the start, page time) of every completed request."""
    errors: list[str] = field(default_factory=list)
    sessions: int = 0
    texts: int = 0
    texts_seen: int = 0
    """Attention pages whose charts showed the visitor's latest text (proof the typing took)."""

    @property
    def requests(self) -> int:
        return sum(len(t) for t in self.times.values())

    def page_times(self, page: str | None = None, after: float = 0.0) -> list[float]:
        pages = PAGES if page is None else (page,)
        return [d for p in pages for t, d in self.times[p] if t >= after]


class RunFailed(Exception):
    """A script run that ended in an error the visitor would see."""


class Visitor:
    request_timeout = REQUEST_TIMEOUT

    def __init__(
        self,
        number: int,
        url: str,
        stats: Stats,
        seed: int,
        quiet: tuple[tuple[float, float], ...] = (),
        long_share: float = 0.1,
        actions: int = ACTIONS_PER_SESSION,
    ) -> None:
        self.number = number
        self.quiet = quiet
        """Windows of seconds (since the start) in which the visitor stays connected, idle."""
        self.url = url
        self.stats = stats
        self.rng = random.Random(seed)
        self.texts = 0
        self.long_share = long_share
        self.actions = actions
        """Actions per session before the visitor leaves and comes back as a new session."""
        """Share of texts of ≈300 words, beyond the 256-token cap."""
        self.marker: str | None = None
        self.session_id = ""
        self.query = ""
        self.pages: dict[str, str] = {}
        self.text_widget = ""
        self.downloads: dict[str, str] = {}
        """Deferred download buttons of the last run: label -> file id."""
        self.notes: list[str] = []
        """Info and warning boxes of the last run (their text)."""

    def new_text(self) -> str:
        self.texts += 1
        self.stats.texts += 1
        roll = self.rng.random()
        count = 300 if roll < self.long_share else self.rng.randint(4, 60)
        words = [self.rng.choice(WORDS) for _ in range(count)]
        if roll > 0.7:
            words[self.rng.randrange(len(words))] = "[MASK]"
        # The visitor number and counter make every text new to the server's caches, and let
        # the visitor check that the charts show this text.
        self.marker = f'"visitor","{self.number}","text","{self.texts}"'
        return f"Visitor {self.number} text {self.texts}: " + " ".join(words) + "."

    async def run(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                await self.session(deadline)
            except (OSError, websockets.ConnectionClosed, TimeoutError) as error:
                self.stats.errors.append(f"connection: {type(error).__name__}: {error}")
                await asyncio.sleep(1.0)

    async def session(self, deadline: float) -> None:
        async with websockets.connect(
            self.url,
            subprotocols=[websockets.Subprotocol("streamlit")],
            max_size=64 * 2**20,
            open_timeout=30,
            close_timeout=5,
        ) as ws:
            self.stats.sessions += 1
            self.query, self.pages, self.text_widget, self.marker = "", {}, "", None
            await self.visit(ws, deadline)

    async def visit(self, ws: websockets.ClientConnection, deadline: float) -> None:
        """One session's actions: a random page, then texts and pages in turn."""
        page = self.rng.choice(PAGES)
        await self.request(ws, page, page_name="" if page == "attention" else page)
        for action in range(self.actions):
            await asyncio.sleep(self.rng.uniform(0.2, 1.0))
            elapsed = time.monotonic() - self.stats.started
            for start, end in self.quiet:
                if start <= elapsed < end:
                    await asyncio.sleep(end - elapsed)
            if time.monotonic() >= deadline:
                return
            if action % 2 == 0 and self.text_widget:
                await self.request(ws, page, text=self.new_text())
            else:
                page = PAGES[(PAGES.index(page) + 1) % len(PAGES)]
                await self.request(ws, page, page_hash=self.pages.get(page, ""))

    async def request(
        self,
        ws: websockets.ClientConnection,
        page: str,
        *,
        page_name: str = "",
        page_hash: str = "",
        text: str | None = None,
    ) -> None:
        message = BackMsg()
        state = message.rerun_script
        state.query_string = self.query
        state.page_script_hash = page_hash
        state.page_name = page_name
        state.context_info.timezone = "UTC"
        if text is not None:
            widget = state.widget_states.widgets.add()
            widget.id = self.text_widget
            widget.string_value = text
        started = time.perf_counter()
        await ws.send(message.SerializeToString())
        try:
            charts = await asyncio.wait_for(self.receive_run(ws), self.request_timeout)
            # The explorer (matrix and bars, a component) up to its 512 tokens; beyond, three
            # Vega charts (a block overview, an exact detail and the bars).
            if page == "attention" and len(charts) not in (1, 3):
                raise RunFailed(f"attention page drew {len(charts)} charts instead of 1 or 3")
            if page == "attention" and self.marker is not None:
                if not any(self.marker in spec.replace(" ", "") for spec in charts):
                    raise RunFailed("the charts do not show the text just typed")
                self.stats.texts_seen += 1
        except RunFailed as error:
            self.stats.errors.append(f"{page}: {error}")
        except TimeoutError:
            self.stats.errors.append(f"{page}: no answer within {self.request_timeout:.0f} s")
            raise
        else:
            finished = time.perf_counter()
            self.stats.times[page].append(
                (time.monotonic() - self.stats.started, finished - started)
            )

    async def receive_run(self, ws: websockets.ClientConnection) -> list[str]:
        """Read messages until the run finishes; returns the Vega-Lite specs drawn."""
        charts: list[str] = []
        problems: list[str] = []
        self.downloads = {}
        self.notes = []
        while True:
            message = ForwardMsg()
            message.ParseFromString(await ws.recv())
            kind = message.WhichOneof("type")
            if kind == "new_session":
                self.session_id = message.new_session.initialize.session_id
            elif kind == "navigation":
                self.pages = {
                    p.url_pathname or "attention": p.page_script_hash
                    for p in message.navigation.app_pages
                }
            elif kind == "page_info_changed":
                self.query = message.page_info_changed.query_string
            elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
                element = message.delta.new_element
                what = element.WhichOneof("type")
                if what == "vega_lite_chart":
                    charts.append(element.vega_lite_chart.spec)
                elif what == "bidi_component" and element.bidi_component.component_name == (
                    EXPLORER_COMPONENT
                ):
                    # Its payload is the explorer's binary message (`ui.explorer.pack`); the
                    # token labels are what shows the visitor's text.
                    payload = unpack(element.bidi_component.bytes)
                    charts.append(json.dumps([payload.get("rows"), payload.get("cols")]))
                elif what == "text_area" and element.text_area.label == "Text":
                    self.text_widget = element.text_area.id
                elif what == "download_button" and element.download_button.deferred_file_id:
                    button = element.download_button
                    self.downloads[button.label] = button.deferred_file_id
                elif what == "exception":
                    # The message and the last frames say where: an intermittent exception
                    # under load cannot be reproduced afterwards, so the report must carry it.
                    exception = element.exception
                    frames = " | ".join(line.strip() for line in exception.stack_trace[-4:])
                    problems.append(
                        f"exception {exception.type}: {exception.message[:300]} [{frames[:600]}]"
                    )
                elif what == "alert" and element.alert.format == Alert.ERROR:
                    problems.append(f"st.error: {element.alert.body[:120]}")
                elif what == "alert":
                    self.notes.append(element.alert.body)
            elif kind == "session_event" and message.session_event.WhichOneof("type"):
                problems.append(f"session event {message.session_event.WhichOneof('type')}")
            elif kind == "script_finished":
                status = message.script_finished
                if status == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    charts = []  # the run that counts follows
                    continue
                if status != ForwardMsg.FINISHED_SUCCESSFULLY:
                    problems.append(f"script finished with status {status}")
                if problems:
                    raise RunFailed("; ".join(problems))
                return charts


class HeavyVisitor(Visitor):
    """One visitor doing the heaviest things the deployment allows, over and over.

    A new session opens the attention page from a link carrying a new `HEAVY_TOKENS`-token
    text and `method=flow` (so the page starts a flow for it), fetches every download the page
    offers, moves to the overview page and fetches its downloads too. Its page times and
    downloads are kept apart from the ordinary visitors' (`Stats`), which are what is measured.
    """

    request_timeout = HEAVY_REQUEST_TIMEOUT

    def __init__(self, url: str, http: str, stats: Stats, seed: int) -> None:
        super().__init__(-1, url, stats, seed)
        self.http = http
        self.download_bytes = 0
        self.download_count = 0
        self.download_seconds: list[float] = []

    def heavy_text(self) -> str:
        # Common one-piece words: about one token each, so this reaches the token cap.
        self.texts += 1
        words = [self.rng.choice(WORDS) for _ in range(HEAVY_TOKENS + 40)]
        return f"Heavy text {self.texts}: " + " ".join(words) + "."

    async def visit(self, ws: websockets.ClientConnection, deadline: float) -> None:
        self.query = urllib.parse.urlencode(
            {"text": self.heavy_text(), "method": "flow", "layer": "-1"}
        )
        await self.request(ws, "attention")
        await self.fetch_downloads(ws)
        if time.monotonic() < deadline and "overview" in self.pages:
            await self.request(ws, "overview", page_hash=self.pages["overview"])
            await self.fetch_downloads(ws)

    async def fetch_downloads(self, ws: websockets.ClientConnection) -> None:
        """Ask for every deferred download of the last run, as a browser click does, and read
        the file from the URL the server answers with."""
        for label, file_id in list(self.downloads.items()):
            message = BackMsg()
            request = message.backend_operation_request
            request.request_id = str(uuid.uuid4())
            request.session_id = self.session_id
            request.deferred_file.file_id = file_id
            started = time.perf_counter()
            await ws.send(message.SerializeToString())
            try:
                url = await asyncio.wait_for(
                    self.receive_download(ws, request.request_id), HEAVY_REQUEST_TIMEOUT
                )
                size = await asyncio.to_thread(self.read, url)
            except (RunFailed, OSError) as error:
                self.stats.errors.append(f"download {label}: {error}")
                continue
            self.download_seconds.append(time.perf_counter() - started)
            self.download_bytes += size
            self.download_count += 1

    async def receive_download(self, ws: websockets.ClientConnection, request_id: str) -> str:
        while True:
            message = ForwardMsg()
            message.ParseFromString(await ws.recv())
            if message.WhichOneof("type") != "backend_operation_response":
                continue
            answer = message.backend_operation_response
            if answer.request_id != request_id:
                continue
            if answer.error_msg:
                raise RunFailed(answer.error_msg)
            return answer.deferred_file.url

    def read(self, url: str) -> int:
        with urllib.request.urlopen(urllib.parse.urljoin(self.http, url), timeout=600) as answer:
            return sum(len(chunk) for chunk in iter(lambda: answer.read(2**20), b""))


# ---------------------------------------------------------------- the run
@dataclass
class Samples:
    points: list[tuple[float, float]] = field(default_factory=list)
    """(seconds since the start, server RSS in MB)."""
    caches: list[tuple[float, float, int]] = field(default_factory=list)
    """(seconds, st.cache_data in MB, sessions) from the server's /_stcore/metrics."""
    left_at: float = float("nan")
    """Seconds since the start when the last visitor had left."""
    peak: float = 0.0
    """The server's peak RSS in MB (VmHWM) when the visitors left."""

    def after_leaving(self, seconds: float) -> list[float]:
        """RSS samples from the moment the visitors left to `seconds` later."""
        return [mb for t, mb in self.points if self.left_at <= t <= self.left_at + seconds]

    def at(self, second: float) -> float:
        """RSS of the first sample at or after `second` (the last one if none)."""
        return next((mb for t, mb in self.points if t >= second), self.points[-1][1])

    def median(self, start: float, end: float) -> float:
        return statistics.median(mb for t, mb in self.points if start <= t <= end)


def server_metrics(port: int) -> tuple[float, int]:
    """(MB held by st.cache_data, sessions held) from Streamlit's OpenMetrics endpoint."""
    url = f"http://127.0.0.1:{port}/_stcore/metrics"
    with urllib.request.urlopen(url, timeout=5) as answer:
        text = answer.read().decode()
    cached = sessions = 0.0
    for line in text.splitlines():
        if line.startswith("cache_memory_bytes{") and "st_cache_data" in line:
            cached += float(line.rsplit(" ", 1)[1])
        elif line.startswith("active_sessions "):
            sessions = float(line.rsplit(" ", 1)[1])
    return cached / 2**20, int(sessions)


async def sample_rss(
    pid: int, port: int, samples: Samples, started: float, stop: asyncio.Event
) -> None:
    """RSS every second (the 60 s after leaving needs that resolution), metrics every 5 s."""
    tick = 0
    while True:
        now = time.monotonic() - started
        samples.points.append((now, rss_mb(pid)))
        if tick % 5 == 0:
            with contextlib.suppress(OSError):
                cached, sessions = await asyncio.to_thread(server_metrics, port)
                samples.caches.append((now, cached, sessions))
        tick += 1
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def one_visit(port: int) -> None:
    """One session opening the attention page once, then leaving: loads the model."""
    stats = Stats()
    visitor = Visitor(0, f"ws://127.0.0.1:{port}/_stcore/stream", stats, seed=0)
    async with websockets.connect(
        visitor.url, subprotocols=[websockets.Subprotocol("streamlit")], max_size=64 * 2**20
    ) as ws:
        await visitor.request(ws, "attention")
    if stats.errors:
        raise RuntimeError(f"the first visit failed: {stats.errors}")


def loaded_rss(app_port: int, pid: int, settle: float = 5.0) -> float:
    """RSS with the model loaded and one visit done, `settle` seconds after it left: the floor
    the server should come back to when no one is visiting."""
    asyncio.run(one_visit(app_port))
    time.sleep(settle)
    return rss_mb(pid)


async def soak(
    port: int,
    pid: int,
    clients: int,
    duration: float,
    warmup: float,
    idle_tail: float,
    pause: float = QUIET,
    long_share: float = 0.1,
    actions: int = ACTIONS_PER_SESSION,
) -> tuple[Stats, Samples]:
    """`clients` visitors for `duration` s of load, pausing `pause` s (connected, idle) after
    `warmup` s and again before leaving; RSS is sampled until `idle_tail` s after they left.
    `long_share` of the texts typed are ≈300 words long (cut at the token cap); a visitor comes
    back as a new session every `actions` actions."""
    stats, samples = Stats(), Samples()
    started = stats.started
    # `duration` seconds of load, a pause after the warm-up and one before leaving.
    deadline = started + duration + 2 * pause
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(pid, port, samples, started, stop))
    url = f"ws://127.0.0.1:{port}/_stcore/stream"
    quiet = ((warmup, warmup + pause), (duration + pause, duration + 2 * pause)) if pause else ()
    visitors = [
        Visitor(n, url, stats, seed=n, quiet=quiet, long_share=long_share, actions=actions)
        for n in range(clients)
    ]
    tasks = [asyncio.create_task(v.run(deadline)) for v in visitors]
    # Visitors stop at the deadline; the last request may take up to its own timeout.
    done, pending = await asyncio.wait(tasks, timeout=duration + 2 * pause + REQUEST_TIMEOUT + 30)
    for task in pending:
        task.cancel()
        stats.errors.append("a visitor had to be cancelled after the deadline")
    for task in done:
        if task.exception() is not None:
            stats.errors.append(f"visitor crashed: {task.exception()!r}")
    samples.left_at = time.monotonic() - started
    samples.peak = rss_mb(pid, "VmHWM")
    # Keep sampling after the visitors left: what does not come back was held by something
    # that outlived their sessions.
    await asyncio.sleep(idle_tail)
    stop.set()
    await sampler
    return stats, samples


async def fair_cpu(
    port: int, clients: int, duration: float, warmup: float, heavy_sessions: int = 1
) -> tuple[Stats, Stats, Stats, list[HeavyVisitor]]:
    """Ordinary visitors alone for `duration` s, then with `heavy_sessions` `HeavyVisitor`s
    (each its own session, like tabs) for `duration` s.

    Returns the ordinary visitors' stats without and with the heavy ones, the heavy ones'
    stats (shared), and the heavy visitors (downloads).
    """
    url = f"ws://127.0.0.1:{port}/_stcore/stream"

    async def phase(seconds: float, heavy: list[HeavyVisitor], seed: int) -> Stats:
        stats = Stats()
        deadline = time.monotonic() + seconds
        visitors = [Visitor(n, url, stats, seed=seed + n) for n in range(clients)]
        tasks = [asyncio.create_task(v.run(deadline)) for v in visitors]
        heavy_tasks = [asyncio.create_task(h.run(deadline)) for h in heavy]
        await asyncio.wait(tasks, timeout=seconds + REQUEST_TIMEOUT + 30)
        for heavy_task in heavy_tasks:
            # Its last flow may run on for minutes: leaving stops it, as a closed tab does.
            heavy_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heavy_task
        for task in tasks:
            if not task.done():
                task.cancel()
                stats.errors.append("a visitor had to be cancelled after the deadline")
            elif task.exception() is not None:
                stats.errors.append(f"visitor crashed: {task.exception()!r}")
        return stats

    await phase(warmup, [], seed=1000)  # first loads, caches, allocator arenas
    alone = await phase(duration, [], seed=2000)
    heavy_stats = Stats()
    heavy = [
        HeavyVisitor(url, f"http://127.0.0.1:{port}/", heavy_stats, seed=7 + n)
        for n in range(heavy_sessions)
    ]
    beside = await phase(duration, heavy, seed=2000)
    await asyncio.sleep(5.0)  # let the heavy visitors' cancelled runs notice and stop
    return alone, beside, heavy_stats, heavy


PROBE = ROOT / "bench" / "soak_probe"


def probe_soak(extra_env: dict[str, str]) -> str:
    """The CI soak (`tests/e2e/test_soak.py`'s settings) on a server with the memory probe;
    its figures and the probe's report, as JSON."""
    import tempfile

    from tests.e2e import test_soak as ci

    with tempfile.TemporaryDirectory(prefix="atlas-probe-") as folder:
        path = os.pathsep.join(filter(None, (str(PROBE), os.environ.get("PYTHONPATH"))))
        env = {"ATLAS_PUBLIC": "1", "ATLAS_SOAK_PROBE": folder, "PYTHONPATH": path, **extra_env}
        with running_app(env=env) as app:
            floor = loaded_rss(app.port, app.pid)
            at_floor = ask_probe(Path(folder), "look")
            stats, samples = asyncio.run(
                soak(
                    app.port,
                    app.pid,
                    ci.VISITORS,
                    ci.SECONDS,
                    ci.WARMUP,
                    idle_tail=LEAVE_TAIL,
                    pause=0.0,
                    long_share=ci.LONG_SHARE,
                    actions=ci.ACTIONS,
                )
            )
            probe = ask_probe(Path(folder), "dismantle")
            errors = count_log_errors(app)
    cached = samples.caches[-1][1] if samples.caches else 0.0
    after = samples.after_leaving(LEAVE_TAIL)
    figures = {
        "requests": stats.requests,
        "sessions": stats.sessions,
        "errors": stats.errors[:5] + ([f"{errors} server log errors"] if errors else []),
        "floor_mb": round(floor),
        "peak_mb": round(samples.peak),
        "after_leaving_mb": round(after[-1]) if after else None,
        "lowest_of_last_5_mb": round(min(after[-5:])) if after else None,
        "bound_mb": round(floor + ci.PUBLIC_STORE_MB + cached + ci.ALLOCATOR_SLACK_MB),
        "cache_data_mb": round(cached, 1),
        "load_average": os.getloadavg(),
    }
    return json.dumps({"soak": figures, "at_floor": at_floor, "probe": probe}, indent=1)


def ask_probe(folder: Path, what: str) -> dict:
    """The probe's answer to `what` ("look": RSS and allocator figures; "dismantle": all)."""
    answer = folder / "report.json"
    answer.unlink(missing_ok=True)
    (folder / "request").write_text(what)
    deadline = time.monotonic() + 120
    while not answer.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    return json.loads(answer.read_text()) if answer.exists() else {"error": "no answer"}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def report(
    stats: Stats,
    samples: Samples,
    args: argparse.Namespace,
    rss_idle: float,
    log_errors: int,
    rss_loaded: float = float("nan"),
) -> str:
    rss = dict(samples.points)
    tail = samples.after_leaving(LEAVE_TAIL)
    rss_after = tail[-1] if tail else float("nan")
    load_end = args.duration + QUIET
    # At rest, in the same state (visitors connected, idle): the last 10 s of the pauses after
    # the warm-up and before leaving (runs in flight when a pause starts take up to ≈12 s).
    warm = samples.median(args.warmup + QUIET - 10, args.warmup + QUIET)
    end = samples.median(load_end + QUIET - 10, load_end + QUIET)
    growth = (end - warm) / warm * 100
    # Under load single samples swing by hundreds of MB; medians of a minute less so.
    first = samples.median(args.warmup + QUIET, args.warmup + QUIET + 60)
    last = samples.median(load_end - 60, load_end)

    def times(page: str | None, label: str) -> str:
        every, after = stats.page_times(page), stats.page_times(page, args.warmup)
        return (
            f"| {label} | {len(every)} | {percentile(every, 50):.2f} s / "
            f"{percentile(every, 95):.2f} s | {percentile(after, 50):.2f} s / "
            f"{percentile(after, 95):.2f} s |"
        )

    lines = [
        SECTION,
        "",
        f"`python bench/soak.py` on {time.strftime('%Y-%m-%d')}: one `streamlit run` server "
        f"(public mode: presets only, 256-token cap) and {args.clients} concurrent simulated "
        f"visitors for {args.duration / 60:g} minutes on {os.cpu_count()} CPU cores, all on "
        "127.0.0.1. Visitors speak Streamlit's websocket protocol directly (cheaper than "
        f"{args.clients} headless Chromiums on this machine, which would measure the browsers): "
        "each opens a random page, then alternately types a new, never-seen text (4–60 words, "
        "some with [MASK], one in ten ≈300 words, over the cap) and moves to the next page, "
        "0.2–1.0 s apart, reconnecting as a new session every 12 actions. After the warm-up "
        f"and at the end the visitors pause for {QUIET:g} s, staying connected: RSS is "
        "compared at those two moments of rest, in the same state, because under load it "
        "swings by hundreds of MB with the runs in flight. The model is the "
        "embedded all-MiniLM-L6-v2. A page time runs from the request to `script_finished` "
        "(server work plus delivery, not browser rendering).",
        "",
        "| Measure | Value |",
        "| --- | --- |",
        f"| Requests completed | {stats.requests} ({stats.requests / args.duration:.1f}/s "
        "under load) |",
        f"| Sessions opened | {stats.sessions} |",
        f"| Texts typed / attention pages checked to show the latest text | {stats.texts} / "
        f"{stats.texts_seen} |",
        f"| Errors | {len(stats.errors)} |",
        f"| Server log lines with a traceback or error | {log_errors} |",
        f"| Machine load average (1 min) before / after | {args.load_before:.2f} / "
        f"{os.getloadavg()[0]:.2f} |",
        f"| Server RSS idle (before any visitor) | {rss_idle:.0f} MB |",
        f"| Server RSS at rest after the warm-up ({args.warmup:g} s of load) | {warm:.0f} MB |",
        f"| Server RSS at rest at the end ({args.duration:g} s of load) | {end:.0f} MB |",
        f"| Growth at rest after warm-up (target ≤ 10 %) | {growth:+.1f} % |",
        f"| Server RSS under load: median of the first / last minute | {first:.0f} MB / "
        f"{last:.0f} MB ({(last - first) / first * 100:+.1f} %) |",
        f"| Server RSS maximum sampled (every 1 s) / peak (VmHWM) | "
        f"{max(mb for _, mb in samples.points):.0f} MB / {samples.peak:.0f} MB |",
        f"| Server RSS with the model loaded after one visit (before the soak) | "
        f"{rss_loaded:.0f} MB |",
        f"| Server RSS {LEAVE_TAIL:g} s after the visitors left (target ≤ 900 MB) / lowest "
        f"in those {LEAVE_TAIL:g} s | {rss_after:.0f} MB / {min(tail, default=float('nan')):.0f} "
        "MB |",
        "",
        f"| Page | Runs | p50 / p95, whole run | p50 / p95 after warm-up ({args.warmup:g} s) |",
        "| --- | --- | --- | --- |",
        times(None, "all pages"),
        *(times(page, page) for page in PAGES),
        "",
        *(
            [f"Server environment added: {' '.join(args.server_env)}.", ""]
            if args.server_env
            else []
        ),
        *([args.note, ""] if args.note else []),
        "Every 30 s: server RSS / st.cache_data held (pickled size, from /_stcore/metrics) / "
        "sessions connected: "
        + ", ".join(
            f"{t:.0f} s {rss.get(t, float('nan')):.0f} MB / {cached:.0f} MB / {sessions}"
            for t, cached, sessions in samples.caches
            if round(t) % 30 < 5
        )
        + f" (visitors idle from {args.warmup:g} to {args.warmup + QUIET:g} s and from "
        f"{load_end:g} s; they left at {samples.left_at:.0f} s). After they left, every 10 s: "
        + ", ".join(
            f"{offset} s {samples.at(samples.left_at + offset):.0f} MB"
            for offset in range(0, int(args.idle_tail) + 1, 10)
        )
        + ".",
    ]
    if stats.errors:
        counts: dict[str, int] = {}
        for error in stats.errors:
            counts[error] = counts.get(error, 0) + 1
        lines += ["", "Errors:", ""]
        lines += [f"- {n} × {error}" for error, n in sorted(counts.items(), key=lambda e: -e[1])]
    return "\n".join(lines) + "\n"


def heavy_report(
    alone: Stats,
    beside: Stats,
    heavy_stats: Stats,
    heavy: list[HeavyVisitor],
    args: argparse.Namespace,
    log_errors: int,
) -> str:
    p95_alone, p95_beside = percentile(alone.page_times(), 95), percentile(beside.page_times(), 95)
    heavy_times = heavy_stats.page_times()
    sessions = len(heavy)
    who = "one heavy visitor" if sessions == 1 else f"{sessions} heavy sessions"
    downloads = sum(h.download_count for h in heavy)
    download_mb = sum(h.download_bytes for h in heavy) / 1e6
    download_seconds = [s for h in heavy for s in h.download_seconds]
    lines = [
        f"### Fair CPU: {who} beside ordinary ones",
        "",
        f"`python bench/soak.py --heavy --heavy-sessions {sessions} --clients {args.clients} "
        f"--duration {args.duration:g}` "
        f"on {time.strftime('%Y-%m-%d %H:%M')} UTC, {os.cpu_count()} CPU cores, server with "
        f"ATLAS_PUBLIC=1 and ATLAS_MAX_TOKENS={HEAVY_TOKENS}. {args.clients} ordinary visitors "
        f"(as above) for {args.duration:g} s alone, then {args.duration:g} s with {who} "
        f"beside them (after a {args.warmup:g} s warm-up). Each heavy session opens the "
        f"attention page from a link with a new {HEAVY_TOKENS}-token text and `method=flow`, "
        "fetches every download of that page and of the overview page, and starts again.",
        "",
        f"| Measure | Without {who} | With {'it' if sessions == 1 else 'them'} |",
        "| --- | --- | --- |",
        f"| Ordinary page runs | {alone.requests} | {beside.requests} |",
        f"| Ordinary p50 / p95 page time | {percentile(alone.page_times(), 50):.2f} s / "
        f"{p95_alone:.2f} s | {percentile(beside.page_times(), 50):.2f} s / {p95_beside:.2f} s |",
        f"| p95 ratio (target ≤ 2×) | | {p95_beside / p95_alone:.2f}× |",
        f"| Ordinary errors | {len(alone.errors)} | {len(beside.errors)} |",
        f"| Heavy visitor: page runs, p50 / max | | {len(heavy_times)}, "
        f"{percentile(heavy_times, 50):.1f} s / {max(heavy_times, default=float('nan')):.1f} s |",
        f"| Heavy visitor: downloads, total size, p50 time | | {downloads}, "
        f"{download_mb:.0f} MB, {percentile(download_seconds, 50):.1f} s |",
        f"| Heavy visitor: errors | | {len(heavy_stats.errors)} |",
        f"| Server log lines with a traceback or error | {log_errors} | |",
        f"| Machine load average (1 min) before / after | {args.load_before:.2f} / "
        f"{os.getloadavg()[0]:.2f} | |",
    ]
    if args.note:
        lines += ["", args.note]
    errors = [*alone.errors, *beside.errors, *(f"heavy: {e}" for e in heavy_stats.errors)]
    if errors:
        counts: dict[str, int] = {}
        for error in errors:
            counts[error] = counts.get(error, 0) + 1
        lines += ["", "Errors:", ""]
        lines += [f"- {n} × {error}" for error, n in sorted(counts.items(), key=lambda e: -e[1])]
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    """Replace this benchmark's section of RESULTS.md (or append it); others stay as they are."""
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    lines = current.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == SECTION), None)
    if start is None:
        RESULTS.write_text(current.rstrip("\n") + "\n\n" + text)
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = "".join(lines[end:])
    RESULTS.write_text("".join(lines[:start]) + text + ("\n" + tail if tail else ""))


def count_log_errors(app) -> int:
    """Lines of the server log with a traceback or an error."""
    log = app.log.read_text(errors="replace")
    return sum(1 for line in log.splitlines() if "Traceback" in line or " ERROR " in line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before RSS counts")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    parser.add_argument(
        "--idle-tail",
        type=float,
        default=LEAVE_TAIL,
        help="seconds to keep sampling RSS after the visitors left",
    )
    parser.add_argument(
        "--heavy",
        action="store_true",
        help="fair CPU: ordinary visitors' page times without and with heavy visitors",
    )
    parser.add_argument(
        "--heavy-sessions",
        type=int,
        default=1,
        help="with --heavy: heavy sessions at once (tabs of heavy visitors)",
    )
    parser.add_argument("--note", default="", help="a sentence added to the report")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the server, e.g. MALLOC_ARENA_MAX=2",
    )
    parser.add_argument(
        "--probe",
        action="store_true",
        help="run the CI soak with the memory probe and print what the server holds",
    )
    args = parser.parse_args()

    args.load_before = os.getloadavg()[0]
    extra_env = dict(item.split("=", 1) for item in args.server_env)
    if args.probe:
        print(probe_soak(extra_env))
        return
    if args.heavy:
        extra_env.setdefault("ATLAS_MAX_TOKENS", str(HEAVY_TOKENS))
        with running_app(env={"ATLAS_PUBLIC": "1", **extra_env}) as app:
            alone, beside, heavy_stats, heavy = asyncio.run(
                fair_cpu(app.port, args.clients, args.duration, args.warmup, args.heavy_sessions)
            )
        text = heavy_report(alone, beside, heavy_stats, heavy, args, count_log_errors(app))
        print(text)
        return
    with running_app(env={"ATLAS_PUBLIC": "1", **extra_env}) as app:
        rss_idle = rss_mb(app.pid)
        rss_loaded = loaded_rss(app.port, app.pid)
        stats, samples = asyncio.run(
            soak(app.port, app.pid, args.clients, args.duration, args.warmup, args.idle_tail)
        )
    log = app.log.read_text(errors="replace")
    log_errors = count_log_errors(app)
    text = report(stats, samples, args, rss_idle, log_errors, rss_loaded)
    print(text)
    if log_errors:
        print("Server log excerpt:\n" + "\n".join(log.splitlines()[-40:]), file=sys.stderr)
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()
