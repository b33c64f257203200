"""A short concurrency soak for CI (issue 12): 8 visitors for a minute on one public-mode server.

The long version, with its report, is `bench/soak.py` (20 visitors for 5 minutes). Here the same
simulated visitors (Streamlit's websocket protocol, no browser) must see no error at all, and
the memory their visits took must come back within a minute of their leaving.

The memory bound. When nobody is visiting, the server should hold what it held after the first
visit (`loaded_rss`: Python, Streamlit, torch and the embedded model) plus what is shared across
visitors by design and bounded: the result store (128 MiB in public mode, `ui/cache.py`, counted
by the memory blocks its entries hold, `ui/store.py`) and whatever `st.cache_data` reports
holding, plus an allowance for the allocator, which keeps some freed blocks in its arenas, and
for the rest measured in `ALLOCATOR_SLACK_MB`. What a visitor's session keeps alive
after it left (issue 12, item 1: each session's last results stayed reachable through widget
callbacks defined at page level) is outside this bound and fails the test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest

from bench.soak import LEAVE_TAIL, count_log_errors, loaded_rss, rss_mb, soak
from tests.e2e.harness import running_app

pytestmark = pytest.mark.e2e

VISITORS = 8
SECONDS = 60.0
WARMUP = 10.0
LONG_SHARE = 1.0
"""Every text typed is over the 256-token cap, as in issue 12's experiment: each result is then
large enough (MiniLM, 256 tokens: 19 MB of attention alone) that results kept alive by eight
visitors' sessions stand out from the allocator's slack."""
ACTIONS = 4
"""Actions per session: visitors come and go (about three sessions each in the minute), as on a
public app, and a session that is gone must not keep its results alive."""
PUBLIC_STORE_MB = 128.0  # the result store's public budget (MiB, as rss_mb reports)
ALLOCATOR_SLACK_MB = 100.0
"""What the process keeps beyond the floor, the store and st.cache_data once visitors left,
measured by taking the server apart after this soak (`python bench/soak.py --probe`, 2026-12-07;
bench/RESULTS.md, "CI soak margin"): ≈25 MB that no allocator call gives back (Python's object
arenas, thread stacks), ≈8 MB free in glibc's arenas (two, as the app configures it; arrays
above 128 KiB are mmapped and go back at once), now and then cyclic garbage the collector has
not reached yet (0–22 MB), and the sessions Streamlit keeps for reconnection (< 0.1 MB for
33). With results kept alive by page code (issue 12) the server stayed at 2.7 GB."""


def test_eight_visitors_for_a_minute_without_errors_and_memory_comes_back():
    # The visits run in a thread of their own: Playwright's sync API (the other browser tests)
    # leaves an event loop running in this one, where asyncio.run() refuses to start.
    with (
        running_app(env={"ATLAS_PUBLIC": "1"}) as app,
        concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool,
    ):
        floor = pool.submit(loaded_rss, app.port, app.pid).result()
        stats, samples = pool.submit(
            asyncio.run,
            soak(
                app.port,
                app.pid,
                VISITORS,
                SECONDS,
                WARMUP,
                idle_tail=LEAVE_TAIL,
                pause=0.0,
                long_share=LONG_SHARE,
                actions=ACTIONS,
            ),
        ).result()
        end_rss = rss_mb(app.pid)
        log_errors = count_log_errors(app)
        log = app.log.read_text(errors="replace")

    # The server log's traceback is the only trace an intermittent failure leaves: show it.
    assert stats.errors == [] and log_errors == 0, (stats.errors, log[-6000:])
    assert stats.requests >= VISITORS * 4, "the visitors hardly ran anything"
    cached = samples.caches[-1][1] if samples.caches else 0.0
    bound = floor + PUBLIC_STORE_MB + cached + ALLOCATOR_SLACK_MB
    after = samples.after_leaving(LEAVE_TAIL)
    assert after, "no RSS sample after the visitors left"
    # Shown with `pytest -s`: the figures the bound is judged on.
    print(
        f"\nsoak: {stats.requests} runs, {stats.sessions} sessions; RSS floor {floor:.0f} MB, "
        f"peak {samples.peak:.0f} MB, when leaving {samples.at(samples.left_at):.0f} MB, "
        f"{LEAVE_TAIL:g} s later {after[-1]:.0f} MB; st.cache_data {cached:.0f} MB; "
        f"bound {bound:.0f} MB"
    )
    assert min(after[-5:]) <= bound, (
        f"{LEAVE_TAIL:g} s after {VISITORS} visitors left the server holds "
        f"{after[-1]:.0f} MB (now {end_rss:.0f} MB), more than the {bound:.0f} MB it should "
        f"come back to: {floor:.0f} MB with the model loaded + {PUBLIC_STORE_MB:.0f} MB result "
        f"store + {cached:.0f} MB st.cache_data + {ALLOCATOR_SLACK_MB:.0f} MB allocator slack "
        f"(peak {samples.peak:.0f} MB)"
    )
