"""Several pushwire nodes as separate processes, sharing a real broker.

``cluster(kind, nodes=3)`` starts the nodes on one broker (its own key prefix, or
stream names, per test, removed afterwards). ``own_redis`` is a Redis server of
the test's own, on a free port, for tests that stop and start the broker: the
shared one on 6379 is never stopped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from tests.server_process import ServerProcess, free_port
from tests.services import (
    NATS_URL,
    REDIS_URL,
    forget_redis_prefix,
    require_service,
    test_prefix,
)
from tests.waiting import wait_until_sync

API_KEY = "cluster-key"
TOKEN_SECRET = "cluster-token-secret-of-32-bytes!!"
#: Rooms keep presence and tell join and leave; every other channel is plain.
CHANNELS = '[{"prefix": "room", "presence": true, "join_leave": true}, {"prefix": ""}]'
PRESENCE_TTL_SECONDS = 3.0  # small for a fast test, with room for a loaded machine


@dataclass
class Kind:
    """A broker the cluster suite runs on: its URL, the port to check, its cleanup."""

    name: str
    url: str
    port: int
    forget: Callable[[str, str], Awaitable[None]]


async def _forget_redis(url: str, prefix: str) -> None:
    await forget_redis_prefix(prefix, url)


async def _forget_nats(url: str, prefix: str) -> None:
    from tests.nats_support import delete_prefix

    await delete_prefix(prefix, url)


KINDS = {
    "redis": Kind("redis", REDIS_URL, 6379, _forget_redis),
    "nats": Kind("nats", NATS_URL, 4222, _forget_nats),
}
KIND_PARAMS = [pytest.param(name, marks=pytest.mark.integration) for name in KINDS]


class Cluster:
    def __init__(self, nodes: list[ServerProcess], prefix: str, url: str) -> None:
        self.nodes = nodes
        self.prefix = prefix
        self.url = url


ClusterFactory = Callable[..., Cluster]


def node_env(broker_url: str, prefix: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PUSHWIRE_BROKER": broker_url,
        "PUSHWIRE_BROKER_PREFIX": prefix,
        "PUSHWIRE_API_KEY": API_KEY,
        "PUSHWIRE_TOKEN_SECRET": TOKEN_SECRET,
        "PUSHWIRE_CHANNELS": CHANNELS,
        "PUSHWIRE_PRESENCE_TTL_SECONDS": str(PRESENCE_TTL_SECONDS),
        "PUSHWIRE_MAX_PUBLISHES_PER_SECOND": "0",
        "PUSHWIRE_DEMO": "false",
        **extra,
    }


@pytest.fixture(params=KIND_PARAMS)
def kind(request: pytest.FixtureRequest) -> Kind:
    """The broker the test runs on: every cluster test runs on each."""
    chosen = KINDS[request.param]
    require_service(chosen.name, chosen.port)
    return chosen


@pytest.fixture
async def cluster(kind: Kind, tmp_path: Path) -> AsyncIterator[ClusterFactory]:
    """Starts nodes of one cluster on the test's broker (or on ``broker_url``)."""
    prefix = test_prefix()
    started: list[ServerProcess] = []

    def start(nodes: int = 3, broker_url: str | None = None) -> Cluster:
        url = broker_url or kind.url
        made = []
        for _ in range(nodes):
            number = len(started)
            data_dir = tmp_path / f"node-{number}"
            process = ServerProcess(
                ["--data-dir", str(data_dir)],
                node_env(url, prefix),
                tmp_path / f"node-{number}.log",
            )
            started.append(process)
            made.append(process)
            process.spawn()
        for process in made:
            process.wait_ready()
        return Cluster(made, prefix, url)

    yield start
    for process in started:
        process.stop()
    await kind.forget(kind.url, prefix)


class OwnRedis:
    """A redis-server of a test's own: stoppable, restartable on the same port."""

    def __init__(self, directory: Path) -> None:
        self.persistent = False  # True: an append-only file, synced on every write
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.process = subprocess.Popen(
            [
                binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes" if self.persistent else "no",
                "--appendfsync", "always", "--dir", str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until_sync(self._answers, timeout_seconds=10, message="redis-server to start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def _answers(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class OwnBroker(Protocol):
    url: str
    persistent: bool

    def start(self) -> object: ...

    def kill(self) -> None: ...


@pytest.fixture
def own_broker(kind: Kind, tmp_path: Path) -> Iterator[OwnBroker]:
    """A broker server of the test's own kind, on a free port: to stop and start."""
    directory = tmp_path / "own-broker"
    directory.mkdir()
    server: OwnBroker
    if kind.name == "nats":
        from tests.nats_support import NatsServerProcess

        server = NatsServerProcess(directory)  # JetStream's file store: always kept
    else:
        if shutil.which("redis-server") is None:
            if os.environ.get("PUSHWIRE_REQUIRE_SERVICES") == "1":
                pytest.fail("redis-server is not installed")
            pytest.skip("redis-server is not installed")
        server = OwnRedis(directory)
    server.start()
    yield server
    server.kill()


__all__ = ["API_KEY", "TOKEN_SECRET", "Cluster", "ClusterFactory", "Kind", "OwnBroker"]
