"""At the door: slow or silent clients are timed out, and the connection caps hold."""

from __future__ import annotations

import asyncio

import httpx
import orjson
from websockets.asyncio.client import connect

from tests.conftest import ServerFactory, recv_json, ws_url


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    """One whole response with a Content-Length body, and not a byte more."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


async def _read_all(reader: asyncio.StreamReader, wait_seconds: float = 5.0) -> bytes:
    return await asyncio.wait_for(reader.read(), wait_seconds)


async def test_half_a_request_head_is_answered_408_and_closed(make_server: ServerFactory) -> None:
    server = await make_server(request_head_timeout_seconds=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and nothing more

    answer = await _read_all(reader)
    writer.close()

    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "request_timeout"


async def test_a_connection_that_never_asks_is_closed(make_server: ServerFactory) -> None:
    server = await make_server(request_head_timeout_seconds=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)

    answer = await _read_all(reader)
    writer.close()

    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not(
    make_server: ServerFactory,
) -> None:
    server = await make_server(keep_alive_timeout_seconds=0.3, request_head_timeout_seconds=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    first = await asyncio.wait_for(_read_response(reader), 5)
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        connect(ws_url(server) + "?channel=a") as ws,
    ):
        await recv_json(ws)
        waiting = asyncio.create_task(http.get("/poll?channel=a&timeout=2"))  # busy for 2 s

        rest = await _read_all(reader)  # the idle one is closed meanwhile
        poll = await asyncio.wait_for(waiting, 5)
        await ws.send('{"type":"ping"}')
        pong = await recv_json(ws)  # WebSockets are not HTTP: no idle timeout
    writer.close()

    assert first.startswith(b"HTTP/1.1 200 OK")
    assert rest == b""
    assert poll.status_code == 200
    assert pong["type"] == "pong"


async def test_connections_over_the_cap_get_503_and_the_others_are_unharmed(
    make_server: ServerFactory,
) -> None:
    server = await make_server(max_connections=2)
    async with connect(ws_url(server) + "?channel=a") as first, connect(ws_url(server)) as second:
        await recv_json(first)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        refused = await _read_all(reader)
        writer.close()
        await server.publish("a", "still here")
        message = await recv_json(first)
        await second.send('{"type":"ping"}')
        pong = await recv_json(second)

    assert refused.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b'"server_busy"' in refused
    assert message["data"] == "still here"
    assert pong["type"] == "pong"


async def test_connections_per_address_can_be_capped(make_server: ServerFactory) -> None:
    server = await make_server(max_connections_per_ip=1)
    async with connect(ws_url(server)):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        refused = await _read_all(reader)
        writer.close()
    async with httpx.AsyncClient(base_url=server.url) as http:
        again = await http.get("/health")  # the first went: room again

    assert refused.startswith(b"HTTP/1.1 503 ")
    assert again.status_code == 200


async def test_more_than_a_hundred_headers_are_refused(make_server: ServerFactory) -> None:
    server = await make_server()
    headers = {f"x-h{n}": "1" for n in range(120)}
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/health", headers=headers)

    assert response.status_code == 431
