"""Real-browser fixtures: one `streamlit run` server and one headless Chromium per session.

Fixtures
--------
``app``      (session) the running server (:class:`tests.e2e.harness.App`): ``app.url(path, **q)``;
             its Corpus page stores runs in a temporary file.
``browser``  (session) headless system Chromium driven by Playwright's sync API.
``page``     a fresh browser context and page (so a fresh Streamlit session) per test; on a
             failure it saves ``artifacts/screenshots/failed-<test>.png`` and prints the end of
             the server log.
``blocked_requests``  URLs the page tried to fetch from anywhere but 127.0.0.1 (all aborted).

Without Playwright or Chromium the tests are skipped, except under CI (env ``CI`` set), where
that is a failure: CI must install them.
"""

from __future__ import annotations

import os

import pytest

from tests.e2e.harness import (
    SCREENSHOTS,
    BrowserUnavailable,
    block_external_requests,
    chromium_executable,
    launch_browser,
    running_app,
)

VIEWPORT = {"width": 1400, "height": 1000}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: drives the real app in headless Chromium")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    # Keep each phase's report on the item so the page fixture can tell a failed test apart.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _browser_problem() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    try:
        chromium_executable()
    except BrowserUnavailable as error:
        return str(error)
    return None


@pytest.fixture(scope="session")
def sync_playwright_api():
    problem = _browser_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(
                f"End-to-end browser tests cannot run: {problem}. CI must install the playwright "
                "package and Debian's chromium.",
                pytrace=False,
            )
        pytest.skip(f"end-to-end browser tests need Playwright and Chromium: {problem}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory):
    # The Corpus page stores its runs: in a temporary file, never the user's cache.
    store = tmp_path_factory.mktemp("e2e-corpus") / "corpus.duckdb"
    with running_app(env={"ATLAS_CORPUS_STORE": str(store)}) as server:
        yield server


@pytest.fixture(scope="session")
def browser(sync_playwright_api):
    browser = launch_browser(sync_playwright_api)
    yield browser
    browser.close()


@pytest.fixture
def browser_context(browser):
    context = browser.new_context(viewport=VIEWPORT)
    blocked = block_external_requests(context)
    yield context, blocked
    context.close()


@pytest.fixture
def blocked_requests(browser_context) -> list[str]:
    return browser_context[1]


@pytest.fixture
def page(browser_context, app, request: pytest.FixtureRequest):
    context, _ = browser_context
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        yield page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            name = request.node.name.replace("/", "_").replace("[", "-").rstrip("]")
            try:
                page.screenshot(path=str(SCREENSHOTS / f"failed-{name}.png"), full_page=True)
            except Exception as error:  # the page may be what broke; the log still helps
                print(f"no failure screenshot: {error}")
            print(f"--- end of the streamlit log ---\n{app.log_tail()}")
        page.close()
