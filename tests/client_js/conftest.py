"""Fixtures for the browser-client tests: Chromium, pages, pushwire server processes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.client_js.support import (
    API_KEY,
    Harness,
    StaticSite,
    chromium,
)
from tests.server_process import ServerProcess

ServerLauncher = Callable[..., ServerProcess]


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="package")
def site() -> Iterator[StaticSite]:
    with StaticSite() as site:
        yield site


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context()
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A page that fails the test if any script on it throws an uncaught exception."""
    page = context.new_page()
    uncaught: list[str] = []
    page.on("pageerror", lambda error: uncaught.append(f"{error.name}: {error.message}"))
    yield page
    assert uncaught == [], "uncaught exceptions on the page"


@pytest.fixture
def harness(page: Page, site: StaticSite) -> Harness:
    return Harness(page, site)


@pytest.fixture
def pushwire_server(tmp_path: Path, site: StaticSite) -> Iterator[ServerLauncher]:
    """Start ``pushwire serve`` processes: ``pushwire_server("--memory", PUSHWIRE_X="1")``.

    Without ``--memory`` history is SQLite under this test's ``tmp_path``, so a restart
    on the same port (``.kill()`` then ``.start()``) finds it again.
    """
    started: list[ServerProcess] = []

    def launch(*args: str, **env_overrides: str) -> ServerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHWIRE_")}
        env["PUSHWIRE_API_KEY"] = API_KEY
        env["PUSHWIRE_LOG_LEVEL"] = "warning"
        env["PUSHWIRE_ALLOWED_ORIGINS"] = site.url  # the pages are served from there
        env.update(env_overrides)
        if "--memory" not in args:
            args = ("--data-dir", str(tmp_path / f"data-{len(started)}"), *args)
        process = ServerProcess(args, env, tmp_path / f"server-{len(started)}.log")
        started.append(process.start())
        return process

    yield launch
    for process in started:
        process.kill()
