"""Fixtures for browser journeys (Playwright + Debian Chromium).

    def test_sign_in(live_server, page):
        page.goto("/accounts/login/")       # base_url is live_server.url
        ...
        assert_accessible(page)

Fixtures:
  browser               session  one headless Chromium per test session (per xdist worker)
  locale                function "en-US"; override with @pytest.mark.parametrize("locale", [...])
  browser_context_args  function dict for browser.new_context(); base_url = live_server.url
                                 when the test uses live_server
  context               function a fresh browser context (cookies, storage), closed after
  page                  function a page in `context`, with a ConsoleWatcher attached;
                                 after the test it fails on any CSP violation or uncaught
                                 page error (mark allow_console_errors to opt out)
  console               function the ConsoleWatcher of `page` (console.assert_clean())
  new_page              function factory: new_page(locale="ru-RU") -> Page in its own
                                 context (console-checked like `page`), e.g. a patient
                                 and a doctor in one journey
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.e2e.harness import DEFAULT_TIMEOUT_MS, ConsoleWatcher, launch_browser, watch_console

# Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from
# a thread with a running loop unless told otherwise. Set before live_server starts.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

E2E_DIR = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "allow_console_errors: do not fail the test on console errors or CSP violations "
        "seen by the page fixture",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    playwright = sync_playwright().start()
    try:
        browser = launch_browser(playwright)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture
def locale() -> str:
    return "en-US"


@pytest.fixture
def browser_context_args(request: pytest.FixtureRequest, locale: str) -> dict[str, Any]:
    args: dict[str, Any] = {
        "locale": locale,
        "viewport": {"width": 1280, "height": 900},
        "timezone_id": "Europe/Moscow",
        "service_workers": "block",
    }
    if "live_server" in request.fixturenames:
        args["base_url"] = request.getfixturevalue("live_server").url
    return args


def _new_context(browser: Browser, args: dict[str, Any]) -> BrowserContext:
    context = browser.new_context(**args)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    return context


@pytest.fixture
def context(browser: Browser, browser_context_args: dict[str, Any]) -> Iterator[BrowserContext]:
    context = _new_context(browser, browser_context_args)
    yield context
    context.close()


@pytest.fixture
def console(context: BrowserContext) -> ConsoleWatcher:
    # The page and its watcher are made together; `page` depends on this fixture.
    return watch_console(context.new_page())


@pytest.fixture
def page(request: pytest.FixtureRequest, console: ConsoleWatcher) -> Iterator[Page]:
    page = console.page
    yield page
    if _should_check_console(request) and not page.is_closed():
        console.assert_clean()


@pytest.fixture
def new_page(
    request: pytest.FixtureRequest, browser: Browser, browser_context_args: dict[str, Any]
) -> Iterator[Callable[..., Page]]:
    opened: list[tuple[BrowserContext, ConsoleWatcher]] = []

    def make(**overrides: Any) -> Page:
        context = _new_context(browser, {**browser_context_args, **overrides})
        watcher = watch_console(context.new_page())
        opened.append((context, watcher))
        return watcher.page

    yield make
    try:
        if _should_check_console(request):
            for _, watcher in opened:
                if not watcher.page.is_closed():
                    watcher.assert_clean()
    finally:
        for context, _ in opened:
            context.close()


def _should_check_console(request: pytest.FixtureRequest) -> bool:
    if request.node.get_closest_marker("allow_console_errors") is not None:
        return False
    report = getattr(request.node, "rep_call", None)
    return report is None or report.passed


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    # Keep each phase's report on the item, so `page` skips its console check after a
    # test that already failed (one failure, not two).
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
