"""Malformed HTTP and WebSocket handshakes over raw sockets: clear errors, no harm done."""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import re

import orjson
import pytest
from websockets.asyncio.client import connect

from pushwire import Server
from tests.conftest import recv_json, ws_url


async def _exchange(server: Server, request: bytes, wait_seconds: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes (or the answer looks complete)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(request)
    await writer.drain()
    received = b""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), wait_seconds)
            if not chunk:
                break
            received += chunk
    except TimeoutError:
        pass
    writer.close()
    return received


def _status_and_body(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    return status, orjson.loads(body)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n", 400),
        (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
        (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"POST /api/publish HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
    ],
)
async def test_malformed_http_gets_a_json_error_and_a_close(
    server: Server, request_bytes: bytes, status: int
) -> None:
    raw = await _exchange(server, request_bytes)

    code, body = _status_and_body(raw)
    assert code == status
    assert body["error"]
    assert body["message"]
    assert b"Traceback" not in raw


async def test_websocket_handshake_errors_are_json(server: Server) -> None:
    no_key = (
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    plain_get = b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"

    bad_status, bad_body = _status_and_body(await _exchange(server, no_key))
    plain_status, plain_body = _status_and_body(await _exchange(server, plain_get))

    assert bad_status == 400
    assert "Sec-WebSocket-Key" in str(bad_body["message"])
    assert plain_status == 426
    assert plain_body["error"] == "bad_request"


async def test_upgrade_to_an_unknown_path_is_404(server: Server) -> None:
    request = (
        b"GET /elsewhere HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )

    status, body = _status_and_body(await _exchange(server, request))

    assert status == 404
    assert body["error"] == "not_found"


async def test_echo_is_off_by_default(server: Server) -> None:
    with pytest.raises(Exception, match="404"):
        async with connect(ws_url(server, "/echo")):
            pass


async def test_pipelined_requests_are_answered_in_order(server: Server) -> None:
    one = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

    raw = await _exchange(server, one * 3 + last)

    statuses = [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]
    assert statuses == [200, 200, 200, 404]


async def test_garbage_after_a_websocket_upgrade_closes_only_that_connection(
    server: Server,
) -> None:
    async with connect(ws_url(server) + "?channel=safe") as bystander:
        await recv_json(bystander)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            b"\x81\x05hello"  # unmasked client frame: a protocol error
        )
        await writer.drain()
        received = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        await server.publish("safe", "still here")
        message = await recv_json(bystander)

    assert received.startswith(b"HTTP/1.1 101")
    assert b"\x88" in received  # a close frame came back before the connection ended
    assert message["data"] == "still here"


async def test_the_handshake_answers_with_a_complete_101(server: Server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET /ws?channel=news HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    first_frame = await asyncio.wait_for(reader.read(2), 5)
    writer.close()

    status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers = {name.lower(): value for name, _, value in (ln.partition(": ") for ln in lines)}
    assert status_line == "HTTP/1.1 101 Switching Protocols"
    assert headers["upgrade"] == "websocket"
    assert headers["connection"] == "Upgrade"
    # The worked example of RFC 6455 §1.3.
    assert headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    sent_at = email.utils.parsedate_to_datetime(headers["date"])
    assert abs((sent_at - datetime.datetime.now(datetime.UTC)).total_seconds()) < 60
    assert first_frame[0] == 0x81  # the "subscribed" reply follows at once, as a text frame


async def test_http_goes_on_after_an_upgrade_request_that_did_not_upgrade(
    server: Server,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"OPTIONS /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: keep-alive, Upgrade\r\nOrigin: http://example.com\r\n\r\n"
    )
    preflight = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    health = await asyncio.wait_for(reader.read(), 5)
    writer.close()

    assert preflight.startswith(b"HTTP/1.1 204 ")
    assert health.startswith(b"HTTP/1.1 200 ")


async def test_head_answers_with_the_head_only_and_keeps_the_connection_in_step(
    server: Server,
) -> None:
    """A body after a HEAD answer would be read as the next answer by a keep-alive client."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"
        b"HEAD /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    heads = []
    for _ in range(3):
        heads.append(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5))
    length = int(re.search(rb"Content-Length: (\d+)", heads[2])[1])  # type: ignore[index]
    body = await asyncio.wait_for(reader.readexactly(length), 5)
    writer.write(b"HEAD /sse?channel=news HTTP/1.1\r\nHost: x\r\n\r\n")
    stream_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    after = await asyncio.wait_for(reader.read(), 5)  # the server ends the connection
    writer.close()

    assert heads[0].startswith(b"HTTP/1.1 200 ")
    assert heads[1].startswith(b"HTTP/1.1 404 ")
    assert heads[2].startswith(b"HTTP/1.1 200 ")
    assert orjson.loads(body)["status"] == "ok"
    assert b"text/event-stream" in stream_head
    assert after == b""


@pytest.mark.parametrize(
    "target", ["/poll?channel=news&timeout=0", "/poll?channel=news&leave=1", "/health"]
)
async def test_a_request_that_says_connection_close_is_answered_and_closed(
    server: Server, target: str
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    answer = await asyncio.wait_for(reader.read(), 5)  # to the end: the server closes
    writer.close()

    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nConnection: close\r\n" in answer
