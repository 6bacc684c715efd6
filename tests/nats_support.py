"""A real NATS for the NATS broker's tests: the shared server, or one a test owns.

The shared nats-server (JetStream on) listens on 127.0.0.1:4222; tests keep apart on it
by a prefix of their own and delete their stream and buckets after. Without it they
skip, unless ``PUSHWIRE_REQUIRE_SERVICES=1`` (CI), where they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import nats
import nats.js.errors
import pytest

from pushwire.brokers.nats import NatsBroker
from pushwire.brokers.registry import BrokerSettings
from tests.server_process import free_port
from tests.services import NATS_URL, require_service, test_prefix
from tests.waiting import wait_until_sync

__all__ = [
    "NATS_URL",
    "NatsServerProcess",
    "delete_prefix",
    "nats_broker",
    "require_nats",
    "unique_prefix",
]


def require_nats() -> None:
    """Skip the test if the shared NATS is not running (fail instead in CI)."""
    require_service("nats-server", 4222)


def unique_prefix() -> str:
    """A prefix no other test (or run, on the shared server) uses."""
    return test_prefix()


def nats_broker(
    prefix: str,
    url: str = NATS_URL,
    *,
    clock: Callable[[], float] | None = None,
    presence_ttl_seconds: float = 6.0,
    timeout_seconds: float = 3.0,
) -> NatsBroker:
    """A broker under ``prefix``, not started, with settings that keep tests short."""
    settings = BrokerSettings(
        prefix=prefix, presence_ttl_seconds=presence_ttl_seconds, timeout_seconds=timeout_seconds
    )
    return NatsBroker(url, settings, clock=clock)


async def delete_prefix(prefix: str, url: str = NATS_URL) -> None:
    """Delete the stream and buckets a test's brokers made under ``prefix``."""
    connection = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
    try:
        js = connection.jetstream(timeout=3)
        for stream in (f"{prefix}_history", f"KV_{prefix}_presence", f"KV_{prefix}_nodes"):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(stream)
    finally:
        await connection.close()


class NatsServerProcess:
    """A nats-server of one test's own, on a free port and its own store directory.

    Killed and started again on the same port and directory: a real NATS restart,
    with JetStream's file storage surviving it.
    """

    #: JetStream's file storage keeps history over a restart (see the cluster tests).
    persistent = True

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> NatsServerProcess:
        executable = shutil.which("nats-server")
        if executable is None:
            if os.environ.get("PUSHWIRE_REQUIRE_SERVICES") == "1":
                pytest.fail("PUSHWIRE_REQUIRE_SERVICES=1 but nats-server is not installed")
            pytest.skip("nats-server is not installed")
        command = [executable, "-a", "127.0.0.1", "-p", str(self.port), "-js"]
        command += ["-sd", str(self.directory / "store")]
        with (self.directory / "nats.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_until_sync(self._listening, timeout_seconds=10, message="nats-server listening")
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash would, and wait until it is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def _listening(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = (self.directory / "nats.log").read_text(errors="replace")
            raise AssertionError(f"nats-server exited: {log[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
        except OSError:
            return False
        return True
