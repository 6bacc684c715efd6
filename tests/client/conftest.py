"""Real pushwire servers in subprocesses for the client tests, and fast client options.

The servers log to a file, never to a pipe nobody reads, so a chatty or a
stopped (SIGSTOP) server can never block on its own output.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pushwire.client import Backoff, ClientOptions
from tests.server_process import ServerProcess

API_KEY = "client-test-key"
ServerLauncher = Callable[..., ServerProcess]


@pytest.fixture
def launch_server(tmp_path: Path) -> Iterator[ServerLauncher]:
    """Start servers: ``launch_server()`` keeps history in memory,
    ``launch_server(persistent=True)`` in SQLite under the test's tmp_path."""
    started: list[ServerProcess] = []

    def launch(*, persistent: bool = False, env: dict[str, str] | None = None) -> ServerProcess:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PUSHWIRE_")}
        environment.update({"PUSHWIRE_API_KEY": API_KEY, "PUSHWIRE_LOG_LEVEL": "warning"})
        environment.update(env or {})
        number = len(started)
        args = ["--data-dir", str(tmp_path / f"data{number}")] if persistent else ["--memory"]
        server = ServerProcess(args, environment, tmp_path / f"server{number}.log")
        started.append(server)
        server.spawn()
        server.wait_ready()
        return server

    yield launch
    for server in started:
        server.kill()


def fast_options(**changes: Any) -> ClientOptions:
    """Client options for tests: reconnect within tens of milliseconds."""
    settings: dict[str, Any] = {
        "backoff": Backoff(min_delay_seconds=0.02, max_delay_seconds=0.2),
        "connect_timeout_seconds": 2.0,
        "request_timeout_seconds": 5.0,
        "close_timeout_seconds": 1.0,
    }
    settings.update(changes)
    return ClientOptions(**settings)
