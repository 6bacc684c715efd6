"""``python -m pushwire serve`` as a real process, for every suite that needs one.

Killable (a crash), stoppable (SIGTERM), pausable (a hung server or a dead link)
and restartable on the same port and data directory. Output goes to a file: a
pipe nobody reads would block a chatty server.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.waiting import wait_until, wait_until_sync

__all__ = ["ServerProcess", "free_port"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One server on a fixed port; :meth:`start` again after a stop restarts it there."""

    def __init__(self, args: Sequence[str], env: dict[str, str], log_path: Path) -> None:
        self.args = list(args)
        self.env = env
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    # Starting.

    def start(self, timeout_seconds: float = 15.0) -> ServerProcess:
        """Start and wait until ``GET /health`` answers."""
        self.spawn()
        self.wait_ready(timeout_seconds)
        return self

    def spawn(self) -> None:
        """Start the process; returns at once (see :meth:`wait_ready`)."""
        command = [sys.executable, "-m", "pushwire", "serve", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, *self.args], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout_seconds: float = 15.0) -> None:
        """Block until ``GET /health`` answers (for setup, before any event loop work)."""

        def healthy() -> bool:
            self._check_alive()
            try:
                return httpx.get(self.url + "/health", timeout=0.5).status_code == 200
            except httpx.TransportError:
                return False

        wait_until_sync(
            healthy,
            timeout_seconds=timeout_seconds,
            interval_seconds=0.02,
            message=self._describe_health,
        )

    async def wait_ready_async(self, timeout_seconds: float = 15.0) -> None:
        """Like :meth:`wait_ready`, letting the test's own tasks run meanwhile."""
        async with httpx.AsyncClient(timeout=0.5) as http:

            async def healthy() -> bool:
                self._check_alive()
                try:
                    return (await http.get(self.url + "/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(
                healthy,
                timeout_seconds=timeout_seconds,
                interval_seconds=0.02,
                message=self._describe_health,
            )

    # Signals.

    def send(self, sig: signal.Signals) -> None:
        assert self.process is not None
        assert self.process.poll() is None
        self.process.send_signal(sig)

    def pause(self) -> None:
        """SIGSTOP: sockets stay open but nothing answers."""
        self.send(signal.SIGSTOP)

    def resume(self) -> None:
        self.send(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, as a crash would: no goodbye to the clients."""
        self.stop(signal.SIGKILL)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        """End with ``sig`` (SIGTERM: an orderly shutdown); returns the exit code and the log."""
        process, self.process = self.process, None
        if process is None:
            return 0, self.log()
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
            process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return process.returncode, self.log()

    async def terminate(self, timeout_seconds: float = 15.0) -> int:
        """SIGTERM; waits for the exit without blocking the event loop."""
        assert self.process is not None
        process = self.process
        process.send_signal(signal.SIGTERM)
        await wait_until(
            lambda: process.poll() is not None,
            timeout_seconds=timeout_seconds,
            message=lambda: f"the server to exit; its log:\n{self.log()}",
        )
        self.process = None
        return process.returncode

    # Looking at it.

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def publish(self, channel: str, data: Any, event: str | None = None) -> str:
        """Publish with the backend API (``POST /api/publish``); returns the message id."""
        body: dict[str, Any] = {"channel": channel, "data": data}
        if event is not None:
            body["event"] = event
        response = httpx.post(
            self.url + "/api/publish", json=body, headers=self._key_header(), timeout=5
        )
        assert response.status_code == 200, response.text
        cursor = response.json()["id"]
        assert isinstance(cursor, str)
        return cursor

    def wait_for_subscriber(self, channel: str, timeout_seconds: float = 10) -> None:
        """Poll ``GET /api/channels`` until ``channel`` has a subscriber."""

        def subscribed() -> bool:
            response = httpx.get(self.url + "/api/channels", headers=self._key_header(), timeout=5)
            counts = {c["channel"]: c["subscribers"] for c in response.json()["channels"]}
            return bool(counts.get(channel, 0) > 0)

        wait_until_sync(
            subscribed,
            timeout_seconds=timeout_seconds,
            interval_seconds=0.02,
            message=f"a subscriber on {channel!r}",
        )

    def _describe_health(self) -> str:
        return f"GET /health to answer 200; the server's log:\n{self.log()}"

    def _key_header(self) -> dict[str, str]:
        return {"X-API-Key": self.env.get("PUSHWIRE_API_KEY", "")}

    def _check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"server process is not running:\n{self.log()}")
