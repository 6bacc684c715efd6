"""The WebSocket transport against a scripted server: odd frames, resubscribing with cursors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from pushwire.client import Client, Message
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
