"""Presence, join and leave in the client, against scripted /ws and /sse servers
(the real server's presence is tested end to end in its own suite)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from pushwire.client import Client, Join, Leave, Member, Message
from pushwire.errors import BadRequestError, PermissionDeniedError
from tests.waiting import wait_until

from .conftest import fast_options

MEMBERS = [
    {"user": "alice", "info": {"name": "Alice"}, "connections": 2},
    {"user": "bob", "info": None, "connections": 1},
]
EXPECTED_MEMBERS = [Member("alice", {"name": "Alice"}, 2), Member("bob", None, 1)]


def _frame(**fields: Any) -> str:
    return orjson.dumps(fields).decode()


def room_frames(channel: str) -> list[str]:
    """What the scripted /ws server sends after each subscribe: a join, a message and a
    leave, with malformed and stray ones in between that must be skipped."""
    return [
        _frame(type="join", channel=channel, user="alice", info={"name": "Alice"}),
        _frame(type="join", channel=channel, info=None),  # no user
        _frame(type="leave", channel=channel, user="bob", info=[1]),  # info not an object
        _frame(type="join", channel="elsewhere", user="carol", info=None),  # not subscribed
        _frame(type="message", channel=channel, id="e-1", data="hi"),
        _frame(type="leave", channel=channel, user="bob", info=None),
        _frame(type="message", channel=channel, id="e-2", data="bye"),
    ]


class ScriptedWebSocket:
    """What the scripted /ws server saw: every frame, and the URL of each connection."""

    def __init__(self) -> None:
        self.url = ""
        self.frames: list[dict[str, Any]] = []
        self.paths: list[str] = []


@asynccontextmanager
async def scripted_ws_server() -> AsyncIterator[ScriptedWebSocket]:
    seen = ScriptedWebSocket()

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        seen.paths.append(ws.request.path)
        async for raw in ws:
            frame = orjson.loads(raw)
            seen.frames.append(frame)
            if frame["type"] == "subscribe":
                reply = {"type": "subscribed", "ref": frame["ref"], "channel": frame["channel"]}
                await ws.send(orjson.dumps({**reply, "cursor": "e-0"}).decode())
                for sent in room_frames(frame["channel"]):
                    await ws.send(sent)
            elif frame["type"] == "presence":
                await ws.send(_presence_reply(frame))

    async with serve(handler, "127.0.0.1", 0) as server:
        seen.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        yield seen


def _presence_reply(frame: dict[str, Any]) -> str:
    ref, channel = frame["ref"], frame["channel"]
    if channel == "room":
        return _frame(type="presence", ref=ref, channel=channel, members=MEMBERS)
    if channel == "quiet":
        return _frame(type="error", ref=ref, code="bad_request", message="presence is off")
    return _frame(type="error", ref=ref, code="permission_denied", message="not subscribed")


async def test_joins_and_leaves_reach_their_callbacks_in_order_with_the_messages(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[Message | Join | Leave] = []
    disconnects: list[str] = []
    async with (
        scripted_ws_server() as server,
        Client(server.url, fast_options(), on_disconnect=disconnects.append) as client,
    ):
        client.subscribe("room", on_message=seen.append, on_join=seen.append, on_leave=seen.append)

        await wait_until(lambda: len(seen) == 4, message="a join, two messages and a leave")

    assert seen == [
        Join("room", "alice", {"name": "Alice"}),
        Message("room", "e-1", "hi"),
        Leave("room", "bob", None),
        Message("room", "e-2", "bye"),
    ]
    assert caplog.text.count("ignoring a malformed join") == 1
    assert caplog.text.count("ignoring a malformed leave") == 1
    assert disconnects == []


async def test_the_iterator_yields_only_messages_and_calls_on_join_as_it_reaches_one() -> None:
    seen: list[object] = []
    async with scripted_ws_server() as server, Client(server.url, fast_options()) as client:
        with_joins = client.subscribe("room", on_join=seen.append)
        async with asyncio.timeout(10):
            async for item in with_joins:
                seen.append(item)
                if len(seen) == 3:
                    break
        plain = client.subscribe("plain")
        async with asyncio.timeout(10):
            plain_items = [await anext(plain), await anext(plain)]

    assert seen == [
        Join("room", "alice", {"name": "Alice"}),
        Message("room", "e-1", "hi"),
        Message("room", "e-2", "bye"),
    ]
    assert plain_items == [Message("plain", "e-1", "hi"), Message("plain", "e-2", "bye")]


async def test_presence_over_the_websocket_returns_members_or_raises_the_servers_error() -> None:
    async with scripted_ws_server() as server, Client(server.url, fast_options()) as client:
        await client.wait_connected()
        # Asked at once: subscribe() has only just scheduled its request.
        room = client.subscribe("room")
        async with asyncio.timeout(10):  # not wait_for: its own task would run later
            members = await room.presence()
        with pytest.raises(PermissionDeniedError) as denied:
            await asyncio.wait_for(client.subscribe("secret").presence(), 10)
        with pytest.raises(BadRequestError) as off:
            await asyncio.wait_for(client.subscribe("quiet").presence(), 10)

    assert members == EXPECTED_MEMBERS
    assert (denied.value.code, off.value.code) == ("permission_denied", "bad_request")
    # The subscribe goes first: the server answers presence to subscribers only.
    kinds = [(frame["type"], frame["channel"]) for frame in server.frames if "channel" in frame]
    assert kinds.index(("subscribe", "room")) < kinds.index(("presence", "room"))


async def test_the_websocket_carries_the_token_in_its_url() -> None:
    async with (
        scripted_ws_server() as server,
        Client(server.url, fast_options(), token="a.b+c") as client,
    ):
        await client.wait_connected()

    assert server.paths == ["/ws?token=a.b%2Bc"]


class ScriptedSSE:
    """Answers /health, /presence and /sse over raw HTTP/1.1; keeps each request's head."""

    def __init__(self, stream: bytes) -> None:
        self.stream = stream
        self.heads: list[bytes] = []
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                if head.startswith(b"GET /sse"):
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                        b"Connection: close\r\n\r\n" + self.stream
                    )
                    await writer.drain()
                    await reader.read()  # held open until the client leaves
                    return
                if head.startswith(b"GET /presence?channel=room "):
                    body = orjson.dumps({"channel": "room", "members": MEMBERS})
                    status = b"200 OK"
                elif head.startswith(b"GET /presence"):
                    body = b'{"error": "bad_request", "message": "presence is off"}'
                    status = b"400 Bad Request"
                else:
                    body, status = b'{"status": "ok"}', b"200 OK"
                writer.write(
                    b"HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (status, len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


@asynccontextmanager
async def scripted_sse_server(stream: bytes) -> AsyncIterator[ScriptedSSE]:
    fake = ScriptedSSE(stream)
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield fake
    finally:
        server.close()
        await server.wait_closed()


def _event(name: str | None, id_: str, data: object) -> bytes:
    event = b"" if name is None else b"event: %s\n" % name.encode()
    return b"%sid: %s\ndata: %s\n\n" % (event, id_.encode(), orjson.dumps(data))


async def test_sse_join_and_leave_events_reach_their_callbacks_in_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = b"retry: 10\n\nid: e-0\n\n" + b"".join(
        [
            _event("pushwire.join", "e-0", {"channel": "room", "user": "alice", "info": None}),
            _event("pushwire.join", "e-0", {"channel": "room", "info": None}),
            b"event: pushwire.leave\ndata: not json\n\n",
            _event("pushwire.leave", "e-0", {"channel": "other", "user": "x", "info": None}),
            _event(None, "e-1", {"channel": "room", "id": "e-1", "data": 1}),
            _event("pushwire.leave", "e-1", {"channel": "room", "user": "alice", "info": {}}),
        ]
    )
    seen: list[Message | Join | Leave] = []
    disconnects: list[str] = []
    async with (
        scripted_sse_server(stream) as fake,
        Client(
            fake.url, fast_options(transports=("sse",)), on_disconnect=disconnects.append
        ) as client,
    ):
        client.subscribe("room", on_message=seen.append, on_join=seen.append, on_leave=seen.append)

        await wait_until(lambda: len(seen) == 3, message="a join, a message and a leave")

    assert seen == [
        Join("room", "alice", None),
        Message("room", "e-1", 1),
        Leave("room", "alice", {}),
    ]
    assert caplog.text.count("ignoring a malformed join event") == 1
    assert caplog.text.count("ignoring a malformed leave event") == 1
    assert "ignoring a leave event for another channel" in caplog.text
    assert disconnects == []


async def test_presence_over_sse_asks_get_presence_with_the_bearer_token() -> None:
    async with (
        scripted_sse_server(b"retry: 10\n\nid: e-0\n\n") as fake,
        Client(fake.url, fast_options(transports=("sse",)), token="t0ken") as client,
    ):
        members = await asyncio.wait_for(client.subscribe("room").presence(), 10)
        with pytest.raises(BadRequestError):
            await asyncio.wait_for(client.subscribe("quiet").presence(), 10)

    assert members == EXPECTED_MEMBERS
    asked = [head for head in fake.heads if head.startswith(b"GET /presence?channel=room ")]
    assert len(asked) == 1
    assert b"authorization: bearer t0ken\r\n" in asked[0].lower()
    streams = [head for head in fake.heads if head.startswith(b"GET /sse")]
    assert all(b"authorization: bearer t0ken\r\n" in head.lower() for head in streams)
