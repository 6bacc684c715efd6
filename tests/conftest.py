"""Shared fixtures: real pushwire servers on 127.0.0.1, in-process or as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection

from pushwire import Config, Server
from tests.redis_cluster import RedisClusterServers
from tests.server_process import ServerProcess

API_KEY = "test-key"
ServerFactory = Callable[..., Awaitable[Server]]


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """A real Redis Cluster (three primaries, processes of ours) for the whole session."""
    servers = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster"))
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


@pytest.fixture
async def make_server() -> AsyncIterator[ServerFactory]:
    """Start in-process servers (real sockets, port 0) with config overrides; stop them after."""
    servers: list[Server] = []

    async def start(**overrides: Any) -> Server:
        settings: dict[str, Any] = {"port": 0, "history": "memory", "api_key": API_KEY}
        settings.update(overrides)
        server = Server(Config(**settings))
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def server(make_server: ServerFactory) -> Server:
    return await make_server()


def ws_url(server: Server, path: str = "/ws") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


async def recv_json(ws: ClientConnection, wait_seconds: float = 5.0) -> dict[str, Any]:
    """The next frame as JSON, failing the test if none arrives within ``wait_seconds``."""
    raw = await asyncio.wait_for(ws.recv(), wait_seconds)
    value = orjson.loads(raw)
    assert isinstance(value, dict)
    return value


async def recv_until(ws: ClientConnection, kind: str, wait_seconds: float = 5.0) -> dict[str, Any]:
    """Skip frames until one of ``type`` ``kind`` arrives."""
    deadline = time.monotonic() + wait_seconds
    while True:
        frame = await recv_json(ws, max(deadline - time.monotonic(), 0.01))
        if frame["type"] == kind:
            return frame


async def api_publish(
    client: httpx.AsyncClient, channel: str, data: Any, event: str | None = None
) -> str:
    body: dict[str, Any] = {"channel": channel, "data": data}
    if event is not None:
        body["event"] = event
    response = await client.post("/api/publish", json=body, headers={"X-API-Key": API_KEY})
    assert response.status_code == 200, response.text
    cursor = response.json()["id"]
    assert isinstance(cursor, str)
    return cursor


def subscriber_count(server: Server, channel: str) -> int:
    """Local subscribers of ``channel`` on ``server`` (every transport), as the API counts them."""
    counts = {stats.channel: stats.subscribers for stats in server.node.hub.statistics()}
    return counts.get(channel, 0)


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client


# Subprocess servers, for what only a real process shows: the CLI, signals, restarts.


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def launch(*args: str, api_key: str | None = API_KEY) -> ServerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHWIRE_")}
        if api_key is not None:
            env["PUSHWIRE_API_KEY"] = api_key
        env.setdefault("PUSHWIRE_DATA_DIR", str(tmp_path / "data"))
        process = ServerProcess(list(args), env, tmp_path / f"server-{len(started)}.log")
        started.append(process.start())
        return process

    yield launch
    for process in started:
        process.kill()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[Callable[[], str]]:
    """Make Redis key prefixes for servers a test starts; delete their keys after the test.

    Servers leave keys with TTLs (presence, stream metadata, the node registry) that would
    otherwise sit in the test database until they expire.
    """
    from redis.exceptions import ConnectionError as RedisUnreachable

    from tests.services import forget_redis_prefix, test_prefix

    made: list[str] = []

    def make() -> str:
        made.append(test_prefix())
        return made[-1]

    yield make
    for prefix in made:
        # Redis not running: the test skipped or failed already.
        with contextlib.suppress(RedisUnreachable):
            await forget_redis_prefix(prefix)
