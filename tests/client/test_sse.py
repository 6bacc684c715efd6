"""The SSE transport: the fallback when WebSocket is out of reach, and odd events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import pytest

from pushwire.client import AsyncApiClient, Client, Gap, Message
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
    async with fake_sse_server(events) as fake:
        received: list[Message] = []
        async with Client(fake.url, fast_options(transports=("sse",))) as client:
            await client.subscribe("odd", on_message=received.append)
            await wait_until(
                lambda: len(received) == 2, timeout_seconds=10, message="the two good messages"
            )

    assert received == [Message("odd", "e-1", 1, "surprise"), Message("odd", "e-2", 2)]
    assert "ignoring a malformed event" in caplog.text


async def test_a_silent_stream_is_presumed_dead_and_reopened() -> None:
    async with fake_sse_server(b"retry: 10\n\nid: e-0\n\n") as fake:
        disconnects: list[str] = []
        options = fast_options(transports=("sse",), sse_read_timeout_seconds=0.2)
        async with Client(fake.url, options, on_disconnect=disconnects.append) as client:
            await client.subscribe("quiet")

            await wait_until(
                lambda: len(disconnects) >= 2, timeout_seconds=10, message="two timeouts"
            )

    assert all("ReadTimeout" in reason for reason in disconnects)


def _event(id_: str, data: object) -> bytes:
    return b"id: %s\ndata: %s\n\n" % (id_.encode(), orjson.dumps(data))


def _gap_event(id_: str, data: object) -> bytes:
    return b"id: %s\nevent: pushwire.gap\ndata: %s\n\n" % (id_.encode(), orjson.dumps(data))


def _news(id_: str, data: int) -> bytes:
    return _event(id_, {"channel": "news", "id": id_, "data": data})


async def test_a_gap_in_mid_stream_reaches_the_application_between_the_messages() -> None:
    first = (
        b"retry: 10\n\nid: e-0\n\n"
        + _news("e-1", 1)
        + _news("e-2", 2)
        + _gap_event("e-7", {"channel": "news", "cursor": "e-7", "recovered": False})
        + _news("e-8", 8)
    )
    second = b"retry: 10\n\nid: e-8\n\n" + _news("e-9", 9)
    items: list[Message | Gap] = []
    async with (
        fake_sse_server(first, second) as fake,
        Client(fake.url, fast_options(transports=("sse",))) as client,
    ):
        subscription = client.subscribe("news", on_message=items.append, on_gap=items.append)
        await wait_until(lambda: len(items) == 5, message="four messages and a gap")

        assert subscription.cursor == "e-9"
    assert items == [
        Message("news", "e-1", 1),
        Message("news", "e-2", 2),
        Gap("news", "e-7", "e-2"),
        Message("news", "e-8", 8),
        Message("news", "e-9", 9),
    ]
    assert b"last-event-id" not in fake.requests[0].lower()
    assert b"last-event-id: e-8\r\n" in fake.requests[1].lower()


async def test_a_malformed_gap_in_mid_stream_is_logged_and_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = (
        b"retry: 10\n\nid: e-0\n\n"
        + _news("e-1", 1)
        # No cursor of its own: the id e-1 it inherits is not where delivery goes on.
        + b"event: pushwire.gap\ndata: {}\n\n"
        + b"event: pushwire.gap\ndata: not json\n\n"
        + _gap_event("e-5", {"channel": "news", "cursor": 5, "recovered": False})
        + _gap_event("e-5", {"cursor": "e-5", "recovered": False})
        + _gap_event("e-5", {"channel": "elsewhere", "cursor": "e-5", "recovered": False})
        + _news("e-6", 6)
    )
    items: list[Message | Gap] = []
    disconnects: list[str] = []
    async with (
        fake_sse_server(events) as fake,
        Client(
            fake.url, fast_options(transports=("sse",)), on_disconnect=disconnects.append
        ) as client,
    ):
        client.subscribe("news", on_message=items.append, on_gap=items.append)
        await wait_until(lambda: len(items) == 2, message="the two messages")

    assert items == [Message("news", "e-1", 1), Message("news", "e-6", 6)]
    assert caplog.text.count("ignoring a malformed gap event") == 5
    assert disconnects == []


async def test_a_malformed_gap_opening_a_stream_does_not_keep_it_from_going_live() -> None:
    events = b"retry: 10\n\nevent: pushwire.gap\ndata: {}\n\n" + _news("e-1", 1)
    items: list[Message] = []
    async with (
        fake_sse_server(events) as fake,
        Client(fake.url, fast_options(transports=("sse",))) as client,
    ):
        subscription = client.subscribe("news", on_message=items.append)

        await asyncio.wait_for(subscription.wait_subscribed(), 5)
        await wait_until(lambda: len(items) == 1, message="the message")

    assert items == [Message("news", "e-1", 1)]


class _FakeSSE:
    """Answers /health, and /sse with fixed events, over raw HTTP/1.1.

    The n-th /sse request gets the n-th of ``streams`` (the last one again and again).
    Each stream but the last ends after its events; the last is held open.
    """

    def __init__(self, *streams: bytes) -> None:
        self.streams = streams
        self.requests: list[bytes] = []  # the head of each /sse request
        self.url = ""

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
                number = len(self.requests)
                self.requests.append(head)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Connection: close\r\n\r\n" + self.streams[min(number, len(self.streams) - 1)]
                )
                await writer.drain()
                if number < len(self.streams) - 1:
                    return  # the stream ends: the client reconnects
                await reader.read()  # hold the stream open until the client leaves
                return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


@asynccontextmanager
async def fake_sse_server(*streams: bytes) -> AsyncIterator[_FakeSSE]:
    fake = _FakeSSE(*streams)
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield fake
    finally:
        server.close()
        await server.wait_closed()
