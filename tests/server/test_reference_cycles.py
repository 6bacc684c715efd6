"""A closed connection is freed by reference counting, never left to the cyclic collector.

``pushwire serve`` runs the cyclic garbage collector rarely (``cli._tune_garbage_collector``:
under the soak's load a full collection came every few hours), so anything a connection
leaves in a reference cycle stays in memory until then, and a busy server grows for
hours. The soak found one: each closed HTTP connection stayed with its parser, whose
callbacks point back at it. Here the collector is off while real clients use every kind
of connection and go, and afterwards the collector must find no server object to free.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import struct
from collections.abc import Iterator

import httpx
import orjson
from websockets.asyncio.client import connect

from tests.conftest import API_KEY, ServerFactory, api_publish, recv_until, ws_url
from tests.waiting import wait_until

_RST = struct.pack("ii", 1, 0)


@contextlib.contextmanager
def _collector_off() -> Iterator[None]:
    gc.collect()  # what came before this test is not its concern
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _server_garbage() -> list[str]:
    """Type names of the server's objects that only the cyclic collector would free."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = [type(o) for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    names = {f"{t.__module__}.{t.__qualname__}" for t in found}
    # The clients in this process (httpx, websockets) may leave cycles of their own.
    return sorted(n for n in names if n.startswith("pushwire.") and ".client." not in n)


def _raw(port: int, request: bytes, *, reset: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
            return b""
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


async def test_every_kind_of_connection_is_freed_without_the_cycle_collector(
    make_server: ServerFactory,
) -> None:
    server = await make_server()
    loop = asyncio.get_running_loop()
    with _collector_off():
        # Keep-alive HTTP: publishes, history, health; closed by the client.
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
            await api_publish(http, "room", {"n": 1})
            history = await http.get("/api/history?channel=room", headers={"X-API-Key": API_KEY})
            assert history.status_code == 200
            assert (await http.get("/health")).status_code == 200
            # A short poll and a long poll answered by a publication.
            assert (await http.get("/poll?channel=room&timeout=0")).status_code == 200
            waiting = asyncio.create_task(http.get("/poll?channel=quiet&timeout=5"))
            await asyncio.sleep(0.1)
            async with httpx.AsyncClient(base_url=server.url, timeout=5) as other:
                await api_publish(other, "quiet", {"n": 2})
            assert (await waiting).status_code == 200
        # Connection: close, a refused request, a bad request head, a vanished client.
        head = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        assert (await loop.run_in_executor(None, _raw, server.port, head)).startswith(
            b"HTTP/1.1 200"
        )
        unauthorised = (
            b"POST /api/publish HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Length: 2\r\n\r\n{}"
        )
        assert b" 401 " in await loop.run_in_executor(None, _raw, server.port, unauthorised)
        assert b" 400 " in await loop.run_in_executor(None, _raw, server.port, b"NOT HTTP\r\n\r\n")
        await loop.run_in_executor(
            None, lambda: _raw(server.port, b"GET /poll?channel=x&timeout=5 HTTP/1.1\r\n"
                               b"Host: x\r\n\r\n", reset=True)
        )  # fmt: skip
        # An SSE stream that gets a message, then leaves.
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=5) as http,
            http.stream("GET", "/sse?channel=room") as stream,
        ):
            lines = stream.aiter_lines()
            await api_publish(http, "room", {"n": 3})
            async for line in lines:
                if line.startswith("data:"):
                    break
        # A WebSocket that subscribes, publishes, gets its message and closes; one refused.
        async with connect(ws_url(server)) as ws:
            await ws.send(orjson.dumps({"type": "subscribe", "channel": "room"}))
            await recv_until(ws, "subscribed")
            await ws.send(orjson.dumps({"type": "publish", "channel": "room", "data": 4}))
            await recv_until(ws, "message")
        async with connect(ws_url(server)) as ws:
            await ws.send(b"not json")
            await recv_until(ws, "error")
        await wait_until(
            lambda: not server.connections,
            message=lambda: f"every connection closed ({len(server.connections)} open)",
        )

        left = _server_garbage()

    assert left == [], f"freed only by the cycle collector: {left}"
