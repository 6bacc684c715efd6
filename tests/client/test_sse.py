"""The SSE transport: the fallback when WebSocket is out of reach, and odd events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from pushwire.client import AsyncApiClient, Client, Message
from tests.server_process import free_port
from tests.waiting import wait_until

from .conftest import API_KEY, ServerLauncher, fast_options


@pytest.mark.parametrize("ws_path", ["/not-a-websocket", "closed-port"])
async def test_an_unreachable_websocket_falls_back_to_sse(
    launch_server: ServerLauncher, ws_path: str
) -> None:
    server = launch_server()
    if ws_path == "closed-port":
        ws_url = f"ws://127.0.0.1:{free_port()}/ws"
    else:
        ws_url = f"ws://127.0.0.1:{server.port}{ws_path}"
    received: list[Message] = []
    async with (
        AsyncApiClient(server.url, API_KEY) as api,
        Client(server.url, fast_options(ws_url=ws_url)) as client,
    ):
        await client.subscribe("fallback", on_message=received.append)
        ids = [(await api.publish("fallback", n)).id for n in range(3)]
        await wait_until(
            lambda: len(received) == 3, timeout_seconds=10, message="three messages over SSE"
        )

        assert client.transport == "sse"
    assert received == [Message("fallback", id_, n) for n, id_ in enumerate(ids)]


async def test_unexpected_events_are_skipped_and_delivery_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = (
        b"retry: 10\n\n"
        b"id: e-0\n\n"
        b": a comment\n\n"
        b"data: this is not JSON\n\n"
        b'data: {"no": "message fields"}\n\n'
        b'event: surprise\ndata: {"channel": "odd", "id": "e-1", "event": "surprise", "data": 1}\n'
        b"id: e-1\n\n"
        # The same message again, as a buggy proxy might repeat it.
        b'data: {"channel": "odd", "id": "e-1", "event": "surprise", "data": 1}\nid: e-1\n\n'
        b'data: {"channel": "odd", "id": "e-2", "data": 2}\nid: e-2\n\n'
    )
    async with fake_sse_server(events) as url:
        received: list[Message] = []
        async with Client(url, fast_options(transports=("sse",))) as client:
            await client.subscribe("odd", on_message=received.append)
            await wait_until(
                lambda: len(received) == 2, timeout_seconds=10, message="the two good messages"
            )

    assert received == [Message("odd", "e-1", 1, "surprise"), Message("odd", "e-2", 2)]
    assert "ignoring a malformed event" in caplog.text


async def test_a_silent_stream_is_presumed_dead_and_reopened() -> None:
    async with fake_sse_server(b"retry: 10\n\nid: e-0\n\n") as url:
        disconnects: list[str] = []
        options = fast_options(transports=("sse",), sse_read_timeout_seconds=0.2)
        async with Client(url, options, on_disconnect=disconnects.append) as client:
            await client.subscribe("quiet")

            await wait_until(
                lambda: len(disconnects) >= 2, timeout_seconds=10, message="two timeouts"
            )

    assert all("ReadTimeout" in reason for reason in disconnects)


class _FakeSSE:
    """Answers /health, and /sse with fixed events, over raw HTTP/1.1."""

    def __init__(self, events: bytes) -> None:
        self.events = events

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(100):
                head = await reader.readuntil(b"\r\n\r\n")
                if head.startswith(b"GET /health"):
                    body = b'{"status": "ok"}'
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                    )
                    await writer.drain()
                    continue
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Connection: close\r\n\r\n" + self.events
                )
                await writer.drain()
                await reader.read()  # hold the stream open until the client leaves
                return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


@asynccontextmanager
async def fake_sse_server(events: bytes) -> AsyncIterator[str]:
    fake = _FakeSSE(events)
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()
