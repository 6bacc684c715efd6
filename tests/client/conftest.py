"""Real pushwire servers in subprocesses for the client tests, and waiting helpers.

The servers log to a file, never to a pipe nobody reads, so a chatty or a
stopped (SIGSTOP) server can never block on its own output.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pushwire.client import Backoff, ClientOptions

API_KEY = "client-test-key"
ServerLauncher = Callable[..., "ServerProcess"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``python -m pushwire serve`` on a fixed port: can be killed, paused and restarted."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = args
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        """Start the process; returns at once (see :meth:`wait_ready`)."""
        command = [sys.executable, "-m", "pushwire", "serve", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, *self.args], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout_seconds: float = 15.0) -> None:
        """Block until ``GET /health`` answers (for setup, before any event loop work)."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if httpx.get(self.url + "/health", timeout=0.5).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.02)
        raise RuntimeError(f"server not healthy in {timeout_seconds} s:\n{self.log()}")

    async def wait_ready_async(self, timeout_seconds: float = 15.0) -> None:
        """Like :meth:`wait_ready`, letting the test's own tasks run meanwhile."""
        async with httpx.AsyncClient(timeout=0.5) as http:
            deadline = time.monotonic() + timeout_seconds
            while time.monotonic() < deadline:
                self._check_alive()
                try:
                    if (await http.get(self.url + "/health")).status_code == 200:
                        return
                except httpx.TransportError:
                    await asyncio.sleep(0.02)
        raise RuntimeError(f"server not healthy in {timeout_seconds} s:\n{self.log()}")

    def send(self, sig: signal.Signals) -> None:
        assert self.process is not None
        assert self.process.poll() is None
        self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, as a crash would: no goodbye to the clients."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGCONT)  # a stopped process dies too, but later
                self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    async def terminate(self, timeout_seconds: float = 15.0) -> int:
        """SIGTERM, as an orderly shutdown; waits for the exit without blocking the loop."""
        assert self.process is not None
        process = self.process
        process.send_signal(signal.SIGTERM)
        for _ in range(int(timeout_seconds / 0.01)):
            if process.poll() is not None:
                self.process = None
                return process.returncode
            await asyncio.sleep(0.01)
        raise AssertionError(f"server did not exit within {timeout_seconds} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"server process is not running:\n{self.log()}")


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


async def wait_until(
    condition: Callable[[], bool], *, timeout_seconds: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``condition`` every 10 ms until true; fail the test after ``timeout_seconds``."""
    deadline = time.monotonic() + timeout_seconds
    for _ in range(int(timeout_seconds / 0.01) + 1):
        if condition():
            return
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {timeout_seconds} s waiting for {what}")
