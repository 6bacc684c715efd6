"""Fixtures for the demo chat's end-to-end tests: Chromium, pushwire servers, people."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ViewportSize

from tests.chat.support import COUNT_NOTIFICATIONS, ChatPage
from tests.client_js.support import chromium
from tests.server_process import ServerProcess

API_KEY = "chat-test-key"
ServerLauncher = Callable[..., ServerProcess]
PersonFactory = Callable[..., ChatPage]
_names = itertools.count(1)


def start_server(data_dir: Path, *args: str, **env_overrides: str) -> ServerProcess:
    """``pushwire serve`` with SQLite history in ``data_dir`` (the demo chat is on)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHWIRE_")}
    env["PUSHWIRE_API_KEY"] = API_KEY
    env["PUSHWIRE_LOG_LEVEL"] = "warning"
    env.update(env_overrides)
    log = data_dir.parent / f"{data_dir.name}.log"
    return ServerProcess(("--data-dir", str(data_dir), *args), env, log).start()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for a test module: each test uses people of its own (unique names)."""
    server = start_server(tmp_path_factory.mktemp("chat") / "data")
    yield server
    server.kill()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ServerLauncher]:
    """Servers for one test only (it kills or reconfigures them)."""
    started: list[ServerProcess] = []

    def launch(*args: str, **env_overrides: str) -> ServerProcess:
        server = start_server(tmp_path / f"data-{len(started)}", *args, **env_overrides)
        started.append(server)
        return server

    yield launch
    for server in started:
        server.kill()


@pytest.fixture
def unique() -> str:
    """A suffix that keeps this test's people apart from other tests' on a shared server."""
    return str(next(_names))


@pytest.fixture
def new_person(browser: Browser) -> Iterator[PersonFactory]:
    """``new_person(server_url)``: a fresh browser context (its own storage) and tab.

    Fails the test if a script on any page threw an uncaught exception.
    """
    pages: list[ChatPage] = []

    def make(
        base_url: str,
        *,
        viewport: ViewportSize | None = None,
        notifications: bool = False,
    ) -> ChatPage:
        context = browser.new_context(viewport=viewport or {"width": 1280, "height": 800})
        if notifications:
            context.grant_permissions(["notifications"], origin=base_url)
        context.add_init_script(COUNT_NOTIFICATIONS)
        person = ChatPage(context, context.new_page(), base_url)
        pages.append(person)
        return person

    yield make
    errors = [error for person in pages for error in person.errors]
    for person in pages:
        person.context.close()
    assert errors == [], "uncaught exceptions on the chat page"
