"""/ws end to end: the websockets client against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode

from pushwire import ChannelRule, Server
from pushwire.transports import websocket as websocket_transport
from tests.conftest import (
    API_KEY,
    ServerFactory,
    api_publish,
    recv_json,
    recv_until,
    subscriber_count,
    ws_url,
)
from tests.waiting import wait_until


async def test_url_channels_are_subscribed_and_receive_publications(
    server: Server, http: httpx.AsyncClient
) -> None:
    async with connect(ws_url(server) + "?channel=news&channel=alerts") as ws:
        replies = {(await recv_json(ws))["channel"], (await recv_json(ws))["channel"]}
        news_id = await api_publish(http, "news", {"title": "hello"})
        alert_id = await api_publish(http, "alerts", [1, 2], event="siren")

        first, second = await recv_json(ws), await recv_json(ws)

    assert replies == {"news", "alerts"}
    assert first == {
        "type": "message",
        "channel": "news",
        "id": news_id,
        "data": {"title": "hello"},
    }
    assert second == {
        "type": "message",
        "channel": "alerts",
        "id": alert_id,
        "event": "siren",
        "data": [1, 2],
    }


async def test_subscribe_publish_unsubscribe_and_ping_echo_their_ref(server: Server) -> None:
    async with connect(ws_url(server)) as ws:
        await ws.send('{"type":"subscribe","channel":"room","ref":1}')
        subscribed = await recv_json(ws)
        await ws.send('{"type":"publish","channel":"room","data":{"n":1},"ref":"two"}')
        published = await recv_until(ws, "published")
        message = await recv_until(ws, "message")
        await ws.send('{"type":"ping","ref":3}')
        pong = await recv_json(ws)
        await ws.send('{"type":"unsubscribe","channel":"room","ref":4}')
        unsubscribed = await recv_json(ws)

    assert subscribed["type"] == "subscribed"
    assert subscribed["ref"] == 1
    assert "recovered" not in subscribed
    assert published["ref"] == "two"
    assert published["id"] == message["id"]
    assert message["data"] == {"n": 1}
    assert pong == {"type": "pong", "ref": 3}
    assert unsubscribed == {"type": "unsubscribed", "ref": 4, "channel": "room"}


async def test_unsubscribed_connection_no_longer_receives(
    server: Server, http: httpx.AsyncClient
) -> None:
    async with connect(ws_url(server) + "?channel=a&channel=b") as ws:
        await recv_json(ws), await recv_json(ws)
        await ws.send('{"type":"unsubscribe","channel":"a"}')
        await recv_until(ws, "unsubscribed")

        await api_publish(http, "a", "not for me")
        b_id = await api_publish(http, "b", "for me")

        assert (await recv_json(ws))["id"] == b_id


async def test_resubscribing_with_a_cursor_recovers_exactly_what_was_missed(
    server: Server, http: httpx.AsyncClient
) -> None:
    async with connect(ws_url(server) + "?channel=feed") as ws:
        await recv_json(ws)
        await api_publish(http, "feed", 1)
        last_seen = (await recv_json(ws))["id"]
    missed = [await api_publish(http, "feed", n) for n in (2, 3, 4)]

    async with connect(ws_url(server)) as ws:
        await ws.send(orjson.dumps({"type": "subscribe", "channel": "feed", "cursor": last_seen}))
        subscribed = await recv_json(ws)
        replayed = [await recv_json(ws) for _ in missed]
        live_id = await api_publish(http, "feed", 5)
        live = await recv_json(ws)

    assert subscribed["recovered"] is True
    assert subscribed["cursor"] == missed[-1]
    assert [m["id"] for m in replayed] == missed
    assert [m["data"] for m in replayed] == [2, 3, 4]
    assert live["id"] == live_id


async def test_cursor_older_than_history_reports_a_gap_instead_of_replaying(
    make_server: ServerFactory,
) -> None:
    server = await make_server(channels=(ChannelRule(prefix="short:", history_size=2),))
    async with httpx.AsyncClient(base_url=server.url) as http:
        first = await api_publish(http, "short:x", 1)
        for n in (2, 3, 4):
            await api_publish(http, "short:x", n)

        async with connect(ws_url(server)) as ws:
            await ws.send(
                orjson.dumps({"type": "subscribe", "channel": "short:x", "cursor": first})
            )
            subscribed = await recv_json(ws)
            live_id = await api_publish(http, "short:x", 5)
            after = await recv_json(ws)

    assert subscribed["recovered"] is False
    assert after["id"] == live_id  # nothing replayed: the next frame is live


async def test_cursor_from_another_epoch_is_a_gap(server: Server) -> None:
    async with connect(ws_url(server)) as ws:
        await ws.send('{"type":"subscribe","channel":"e","cursor":"deadbeef-3"}')
        subscribed = await recv_json(ws)

    assert subscribed["recovered"] is False


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "invalid_json"),
        ("[1,2]", "bad_request"),
        ('{"type":"dance","ref":9}', "unknown_type"),
        ('{"type":"subscribe","channel":"bad channel!","ref":9}', "invalid_channel"),
        ('{"type":"subscribe","channel":"ok","cursor":"nope","ref":9}', "invalid_cursor"),
        ('{"type":"subscribe","channel":"ok","cursor":5,"ref":9}', "bad_request"),
        ('{"type":"publish","channel":"ok","ref":9}', "bad_request"),
        ('{"type":"publish","channel":"ok","data":1,"event":"a\\nb","ref":9}', "bad_request"),
        ('{"type":"ping","ref":[1]}', "bad_request"),
    ],
)
async def test_bad_frames_get_an_error_and_the_connection_stays_open(
    server: Server, frame: str, code: str
) -> None:
    async with connect(ws_url(server)) as ws:
        await ws.send(frame)
        error = await recv_json(ws)
        await ws.send('{"type":"ping","ref":"still-open"}')
        pong = await recv_json(ws)

    assert error["type"] == "error"
    assert error["code"] == code
    assert error["message"]
    if '"ref":9' in frame:
        assert error["ref"] == 9
    assert pong == {"type": "pong", "ref": "still-open"}


async def test_binary_frames_carrying_json_are_commands_too(server: Server) -> None:
    async with connect(ws_url(server)) as ws:
        await ws.send(b'{"type":"ping","ref":1}')
        pong = await recv_json(ws)
        await ws.send(b"\x00\x01")
        error = await recv_json(ws)

    assert pong == {"type": "pong", "ref": 1}
    assert error["code"] == "invalid_json"


async def test_subscribing_twice_is_an_error(server: Server) -> None:
    async with connect(ws_url(server) + "?channel=dup") as ws:
        await recv_json(ws)
        await ws.send('{"type":"subscribe","channel":"dup","ref":2}')
        error = await recv_json(ws)

    assert error["code"] == "already_subscribed"
    assert error["ref"] == 2


async def test_channel_limit_per_connection(make_server: ServerFactory) -> None:
    server = await make_server(max_channels_per_connection=2)
    async with connect(ws_url(server) + "?channel=a&channel=b") as ws:
        await recv_json(ws), await recv_json(ws)
        await ws.send('{"type":"subscribe","channel":"c"}')
        error = await recv_json(ws)

    assert error["code"] == "limit_exceeded"


async def test_client_publish_can_be_forbidden_per_prefix(make_server: ServerFactory) -> None:
    rules = (ChannelRule(prefix="announce:", publish="none"),)
    server = await make_server(channels=rules)
    async with connect(ws_url(server)) as ws:
        await ws.send('{"type":"publish","channel":"announce:all","data":1,"ref":1}')
        denied = await recv_json(ws)
        await ws.send('{"type":"publish","channel":"chat:all","data":1,"ref":2}')
        allowed = await recv_json(ws)

    assert denied["code"] == "permission_denied"
    assert allowed["type"] == "published"


async def test_oversize_message_closes_with_1009_and_others_are_unharmed(
    make_server: ServerFactory,
) -> None:
    server = await make_server(max_message_bytes=1024)
    async with connect(ws_url(server) + "?channel=calm") as bystander:
        await recv_json(bystander)
        async with connect(ws_url(server)) as offender:
            await offender.send('{"type":"publish","channel":"x","data":"' + "a" * 2000 + '"}')
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(offender.recv(), 5)
        await bystander.send('{"type":"ping"}')
        pong = await recv_json(bystander)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    assert pong["type"] == "pong"


async def test_invalid_utf8_closes_with_1007(server: Server) -> None:
    async with connect(ws_url(server)) as ws:
        # Send a text frame with invalid UTF-8 through the protocol layer directly.
        ws.protocol.send_frame(Frame(Opcode.TEXT, b"\xff\xfe"))
        ws.send_data()
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1007


async def test_server_pings_and_closes_a_connection_that_never_pongs(
    make_server: ServerFactory,
) -> None:
    server = await make_server(ws_ping_interval_seconds=0.2, ws_ping_timeout_seconds=0.2)
    # A client that answers pings (the websockets default) stays connected...
    async with connect(ws_url(server), ping_interval=None) as healthy:
        # ...while one whose pongs never leave is closed by the server with 4001.
        async with connect(ws_url(server), ping_interval=None) as silent:
            silent.protocol.send_pong = lambda data: None  # type: ignore[method-assign]
            silent.protocol.recv_frame = _swallow_pings(silent.protocol.recv_frame)  # type: ignore[method-assign,assignment]
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(silent.recv(), 5)
        await healthy.send('{"type":"ping"}')
        pong = await recv_json(healthy)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4001
    assert pong["type"] == "pong"


def _swallow_pings(recv_frame: Callable[[Frame], None]) -> Callable[[Frame], None]:
    """Wrap a client protocol's recv_frame so that ping frames get no pong."""

    def receive(frame: Frame) -> None:
        if frame.opcode is not Opcode.PING:
            recv_frame(frame)

    return receive


async def test_slow_consumer_is_cut_off_while_fast_ones_get_everything(
    make_server: ServerFactory,
) -> None:
    server = await make_server(max_buffer_bytes=64 * 1024)
    async with (
        connect(ws_url(server) + "?channel=flood") as slow,
        connect(ws_url(server) + "?channel=flood", max_size=None) as fast,
    ):
        await recv_json(slow), await recv_json(fast)
        assert subscriber_count(server, "flood") == 2
        # The slow client stops reading: its kernel buffers fill, then the server's.
        slow.transport.pause_reading()
        received: list[str] = []

        async def drain() -> None:
            while True:
                received.append((await recv_json(fast))["id"])

        reader = asyncio.create_task(drain())
        published = 0
        for _ in range(5000):  # bounded: ~40 MB at most
            await server.publish("flood", "x" * 8000)
            published += 1
            await asyncio.sleep(0)
            if subscriber_count(server, "flood") == 1:
                break
        await wait_until(
            lambda: len(received) == published, message="every publication on the fast client"
        )
        reader.cancel()

    assert subscriber_count(server, "flood") <= 1, "the slow consumer was never cut off"
    assert len(received) == published  # the fast subscriber lost nothing


async def test_a_close_between_fragments_closes_normally(make_server: ServerFactory) -> None:
    server = await make_server(echo=True)
    async with connect(ws_url(server, "/echo")) as ws:
        ws.protocol.send_frame(Frame(Opcode.TEXT, b"frag", fin=False))
        ws.send_data()
        await ws.close()

    assert ws.protocol.close_rcvd is not None
    assert ws.protocol.close_rcvd.code == 1000


async def test_a_publish_that_arrives_with_the_close_is_not_lost(server: Server) -> None:
    publish = orjson.dumps({"type": "publish", "channel": "last-words", "data": "bye"})
    async with connect(ws_url(server) + "?channel=last-words") as listener:
        await recv_json(listener)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        # The command and the close in one write: the server reads them in one go.
        writer.write(
            Frame(Opcode.TEXT, publish).serialize(mask=True, extensions=[])
            + Frame(Opcode.CLOSE, b"\x03\xe8").serialize(mask=True, extensions=[])
        )
        await asyncio.wait_for(reader.read(), 5)
        writer.close()

        message = await recv_json(listener)

    assert message["data"] == "bye"


async def test_echo_endpoint_echoes_text_and_binary(make_server: ServerFactory) -> None:
    server = await make_server(echo=True)
    async with connect(ws_url(server, "/echo")) as ws:
        await ws.send("héllo")
        text = await ws.recv()
        await ws.send(b"\x00\xff")
        binary = await ws.recv()

    assert text == "héllo"
    assert binary == b"\x00\xff"


async def test_a_handshake_that_fails_by_our_own_bug_is_logged_and_answered_500(
    server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(request: object) -> None:
        raise RuntimeError("a bug in pushwire")

    monkeypatch.setattr(websocket_transport._validator, "process_request", broken)

    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url(server) + "?channel=a"):
            pass

    assert refused.value.response.status_code == 500
    assert b"a bug in pushwire" not in refused.value.response.body
    assert any(
        record.exc_info and "a bug in pushwire" in str(record.exc_info[1])
        for record in caplog.records
    )


async def test_a_refused_handshake_is_a_400_with_the_reason(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/ws", headers={"Connection": "Upgrade", "Upgrade": "websocket"})

    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert "Sec-WebSocket-Key" in response.json()["message"]


@pytest.mark.parametrize("history", ["sqlite", "memory"])
async def test_a_burst_of_publishes_on_one_socket_is_answered_and_delivered_in_order(
    make_server: ServerFactory, tmp_path: Path, history: str
) -> None:
    server = await make_server(history=history, data_dir=str(tmp_path))
    commands = [
        orjson.dumps(
            {"type": "publish", "channel": "b" if n % 3 == 0 else "a", "data": n, "ref": n}
        )
        for n in range(30)
    ]
    commands.insert(10, b'{"type":"ping","ref":"p"}')  # waits its turn among the publishes
    # Masked client frames, all in one write: the server reads them in one go.
    frames = b"".join(Frame(Opcode.TEXT, c).serialize(mask=True, extensions=[]) for c in commands)
    async with connect(ws_url(server) + "?channel=a") as sub, connect(ws_url(server)) as pub:
        await recv_json(sub)
        pub.transport.write(frames)
        replies = [await recv_json(pub) for _ in commands]
        received = [await recv_json(sub) for n in range(30) if n % 3]

    refs = [reply["ref"] for reply in replies]
    assert refs == [*range(10), "p", *range(10, 30)]
    assert {reply["type"] for reply in replies} == {"published", "pong"}
    assert [message["data"] for message in received] == [n for n in range(30) if n % 3]
    by_ref = {reply["ref"]: reply for reply in replies}
    assert [message["id"] for message in received] == [by_ref[n]["id"] for n in range(30) if n % 3]


async def test_publishes_in_flight_when_the_client_leaves_are_kept_and_raise_nothing(
    make_server: ServerFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_server(history="sqlite", data_dir=str(tmp_path))
    commands = [
        orjson.dumps({"type": "publish", "channel": "gone", "data": n, "ref": n}) for n in range(30)
    ]
    frames = b"".join(Frame(Opcode.TEXT, c).serialize(mask=True, extensions=[]) for c in commands)
    async with connect(ws_url(server)) as pub:
        pub.transport.write(frames)
        pub.transport.abort()  # gone before any reply: the commits find it closed

    async with httpx.AsyncClient(base_url=server.url) as http:

        async def all_stored() -> bool:
            page = await http.get("/api/history?channel=gone", headers={"X-API-Key": API_KEY})
            return len(page.json()["messages"]) == 30

        await wait_until(all_stored, message="the 30 publications in history")
        page = await http.get("/api/history?channel=gone", headers={"X-API-Key": API_KEY})

    assert [m["data"] for m in page.json()["messages"]] == list(range(30))
    assert [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")] == []
