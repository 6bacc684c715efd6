"""Fixtures for the admin page's browser tests: Chromium, one server, a page per test."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.client_js.support import chromium
from tests.server_process import ServerProcess

API_KEY = "admin-test-key"
TOKEN_SECRET = "admin-test-token-secret-long-enough-for-hs256"
_numbers = itertools.count(1)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``pushwire serve`` with tokens and presence on ``room:``; each test uses its own channels."""
    folder = tmp_path_factory.mktemp("admin")
    config = folder / "pushwire.toml"
    config.write_text(
        f'token_secret = "{TOKEN_SECRET}"\n'
        '[[channels]]\nprefix = "room:"\npresence = true\njoin_leave = true\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHWIRE_")}
    env.update(PUSHWIRE_API_KEY=API_KEY, PUSHWIRE_LOG_LEVEL="warning")
    server = ServerProcess(
        ("--memory", "--no-demo", "--config", str(config)), env, folder / "server.log"
    ).start()
    yield server
    server.kill()


@pytest.fixture
def unique() -> str:
    """A suffix that keeps this test's channels and users apart from the others'."""
    return str(next(_numbers))


@pytest.fixture
def page(browser: Browser, admin_server: ServerProcess) -> Iterator[Page]:
    """A fresh tab (its own sessionStorage) on /admin; fails on any uncaught exception."""
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"{error.name}: {error.message}"))
    page.goto(admin_server.url + "/admin")
    yield page
    context.close()
    assert errors == [], "uncaught exceptions on the admin page"


def screenshots_dir() -> Path:
    return Path(__file__).resolve().parent.parent.parent / "docs" / "images"
