"""The WebSocket transport against a scripted server: odd frames, resubscribing with cursors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from pushwire.client import Client, Gap, Message
from tests.waiting import wait_until

from .conftest import fast_options

Script = Callable[[ServerConnection, dict[str, Any], int], Awaitable[None]]


class ScriptedServer:
    """What a scripted server saw."""

    def __init__(self) -> None:
        self.url = ""
        self.pings = 0


@asynccontextmanager
async def scripted_server(on_subscribe: Script) -> AsyncIterator[ScriptedServer]:
    """A ``/ws`` server that answers pings and runs ``on_subscribe(ws, frame, number)``,
    where ``number`` counts connections from 1."""
    seen = ScriptedServer()
    connections = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        number = connections
        async for raw in ws:
            frame = orjson.loads(raw)
            if frame["type"] == "ping":
                seen.pings += 1
                await ws.send(orjson.dumps({"type": "pong", "ref": frame["ref"]}).decode())
            elif frame["type"] == "subscribe":
                await on_subscribe(ws, frame, number)

    async with serve(handler, "127.0.0.1", 0) as server:
        seen.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        yield seen


def message(channel: str, id_: str, data: Any) -> str:
    return orjson.dumps({"type": "message", "channel": channel, "id": id_, "data": data}).decode()


def subscribed(frame: dict[str, Any], cursor: str, recovered: bool | None = None) -> str:
    """The reply to the subscribe ``frame``."""
    reply = {
        "type": "subscribed",
        "ref": frame["ref"],
        "channel": frame["channel"],
        "cursor": cursor,
    }
    if recovered is not None:
        reply["recovered"] = recovered
    return orjson.dumps(reply).decode()


def gap(channel: str, cursor: str) -> str:
    return orjson.dumps({"type": "gap", "channel": channel, "cursor": cursor}).decode()


async def test_unexpected_frames_are_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    async def on_subscribe(ws: ServerConnection, frame: dict[str, Any], number: int) -> None:
        await ws.send(b"\x00\x01binary")
        await ws.send("not json")
        await ws.send("[1, 2]")
        await ws.send('{"type": "surprise"}')
        await ws.send('{"type": "message", "channel": "odd"}')
        await ws.send('{"type": "error", "code": "internal", "message": "unprompted"}')
        await ws.send('{"type": "published", "ref": 999, "channel": "odd", "id": "x"}')
        reply = {"type": "subscribed", "ref": frame["ref"], "channel": "odd", "cursor": "e-0"}
        await ws.send(orjson.dumps(reply).decode())
        await ws.send(message("odd", "e-1", 1))
        await ws.send(message("elsewhere", "e-9", "not subscribed"))
        await ws.send(message("odd", "e-1", 1))  # the same message again
        await ws.send(message("odd", "e-2", 2))

    received: list[Message] = []
    disconnects: list[str] = []
    async with (
        scripted_server(on_subscribe) as server,
        Client(
            server.url, fast_options(ping_interval_seconds=0.02), on_disconnect=disconnects.append
        ) as client,
    ):
        await client.subscribe("odd", on_message=received.append)
        await wait_until(
            lambda: len(received) == 2, timeout_seconds=10, message="the two good messages"
        )
        # The heartbeat carries on through all that: the connection stays up.
        await wait_until(lambda: server.pings >= 5, timeout_seconds=10, message="five pings")

    assert received == [Message("odd", "e-1", 1), Message("odd", "e-2", 2)]
    assert disconnects == []
    for complaint in ("binary frame", "not JSON", "not an object", "unknown type", "malformed"):
        assert complaint in caplog.text
    assert "unprompted" in caplog.text


async def test_a_reconnect_resubscribes_from_the_last_message_id() -> None:
    subscribes: list[dict[str, Any]] = []

    async def on_subscribe(ws: ServerConnection, frame: dict[str, Any], number: int) -> None:
        subscribes.append(frame)
        if number == 1:
            reply = {"type": "subscribed", "ref": frame["ref"], "channel": "c", "cursor": "e-0"}
            await ws.send(orjson.dumps(reply).decode())
            await ws.send(message("c", "e-1", 1))
            await ws.send(message("c", "e-2", 2))
            await ws.close(1011, "internal error")
        else:
            reply = {
                "type": "subscribed",
                "ref": frame["ref"],
                "channel": "c",
                "cursor": "e-3",
                "recovered": True,
            }
            await ws.send(orjson.dumps(reply).decode())
            await ws.send(message("c", "e-2", 2))  # a replay overlapping what was delivered
            await ws.send(message("c", "e-3", 3))

    received: list[Message] = []
    async with (
        scripted_server(on_subscribe) as server,
        Client(server.url, fast_options()) as client,
    ):
        subscription = await client.subscribe("c", on_message=received.append)
        await wait_until(lambda: len(received) == 3, timeout_seconds=10, message="three messages")

        assert subscription.cursor == "e-3"
    assert [m.data for m in received] == [1, 2, 3]
    assert [frame.get("cursor") for frame in subscribes] == [None, "e-2"]


async def test_a_gap_frame_reaches_the_application_between_the_messages() -> None:
    subscribes: list[dict[str, Any]] = []

    async def on_subscribe(ws: ServerConnection, frame: dict[str, Any], number: int) -> None:
        subscribes.append(frame)
        if number == 1:
            await ws.send(subscribed(frame, "e-0"))
            await ws.send(message("news", "e-1", 1))
            await ws.send(message("news", "e-2", 2))
            await ws.send(gap("news", "e-7"))
            await ws.send(message("news", "e-8", 8))
            await ws.send(message("news", "e-9", 9))
            await ws.close(1011, "internal error")
        else:
            await ws.send(subscribed(frame, "e-9", recovered=True))

    items: list[Message | Gap] = []
    async with (
        scripted_server(on_subscribe) as server,
        Client(server.url, fast_options()) as client,
    ):
        subscription = client.subscribe("news", on_message=items.append, on_gap=items.append)
        await wait_until(lambda: len(subscribes) == 2, message="a second subscribe")
        await wait_until(lambda: len(items) == 5, message="four messages and a gap")

        assert subscription.cursor == "e-9"
    assert items == [
        Message("news", "e-1", 1),
        Message("news", "e-2", 2),
        Gap("news", "e-7", "e-2"),
        Message("news", "e-8", 8),
        Message("news", "e-9", 9),
    ]
    assert [frame.get("cursor") for frame in subscribes] == [None, "e-9"]


async def test_a_reconnect_right_after_a_gap_frame_resumes_from_its_cursor() -> None:
    subscribes: list[dict[str, Any]] = []

    async def on_subscribe(ws: ServerConnection, frame: dict[str, Any], number: int) -> None:
        subscribes.append(frame)
        if number == 1:
            await ws.send(subscribed(frame, "e-0"))
            await ws.send(message("news", "e-1", 1))
            await ws.send(gap("news", "e-7"))
            await ws.close(1011, "internal error")
        else:
            await ws.send(subscribed(frame, "e-8", recovered=True))
            await ws.send(message("news", "e-8", 8))

    items: list[Message | Gap] = []
    async with (
        scripted_server(on_subscribe) as server,
        Client(server.url, fast_options()) as client,
    ):
        subscription = client.subscribe("news")

        async def read() -> None:
            async for item in subscription:
                items.append(item)

        reader = asyncio.create_task(read())
        await wait_until(lambda: len(items) == 3, message="a message, a gap, a message")
        await subscription.unsubscribe()
        await asyncio.wait_for(reader, 5)

    assert items == [
        Message("news", "e-1", 1),
        Gap("news", "e-7", "e-1"),
        Message("news", "e-8", 8),
    ]
    assert [frame.get("cursor") for frame in subscribes] == [None, "e-7"]


async def test_a_malformed_gap_frame_is_logged_and_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="pushwire.client")

    async def on_subscribe(ws: ServerConnection, frame: dict[str, Any], number: int) -> None:
        await ws.send(subscribed(frame, "e-0"))
        await ws.send(message("news", "e-1", 1))
        await ws.send('{"type": "gap"}')
        await ws.send('{"type": "gap", "channel": "news"}')
        await ws.send('{"type": "gap", "channel": "news", "cursor": 7}')
        await ws.send('{"type": "gap", "channel": "news", "cursor": ""}')
        await ws.send('{"type": "gap", "channel": ["news"], "cursor": "e-7"}')
        await ws.send(gap("elsewhere", "e-7"))
        await ws.send(message("news", "e-2", 2))

    items: list[Message | Gap] = []
    disconnects: list[str] = []
    async with (
        scripted_server(on_subscribe) as server,
        Client(server.url, fast_options(), on_disconnect=disconnects.append) as client,
    ):
        subscription = client.subscribe("news", on_message=items.append, on_gap=items.append)
        await wait_until(lambda: len(items) == 2, message="the two messages")

        assert subscription.cursor == "e-2"
    assert items == [Message("news", "e-1", 1), Message("news", "e-2", 2)]
    assert caplog.text.count("ignoring a malformed gap frame") == 5
    assert "ignoring a gap on 'elsewhere': not subscribed" in caplog.text
    assert disconnects == []


async def test_a_rate_limit_close_is_followed_by_a_reconnect() -> None:
    async def on_subscribe(ws: ServerConnection, frame: dict[str, Any], number: int) -> None:
        await ws.send(subscribed(frame, "e-0"))
        if number == 1:
            await ws.close(4429, "rate limit exceeded")
        else:
            await ws.send(message("c", "e-1", "back"))

    connects: list[str] = []
    disconnects: list[str] = []
    received: list[Message] = []
    async with (
        scripted_server(on_subscribe) as server,
        Client(
            server.url,
            fast_options(),
            on_connect=connects.append,
            on_disconnect=disconnects.append,
        ) as client,
    ):
        client.subscribe("c", on_message=received.append)

        await wait_until(lambda: received, timeout_seconds=10, message="the message after it")

    assert len(connects) == 2
    assert "4429" in disconnects[0]
    assert received == [Message("c", "e-1", "back")]
