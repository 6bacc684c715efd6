"""Connection tokens on every transport, end to end, with tokens minted by PyJWT itself."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import jwt
import orjson
import pytest
from httpx_sse import aconnect_sse
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from pushwire import ChannelRule, Server
from tests.conftest import API_KEY, ServerFactory, recv_json, recv_until, ws_url

SECRET = "s" * 64


def mint(user: str, *, ttl: float = 3600, key: str = SECRET, **claims: Any) -> str:
    now = time.time()
    return jwt.encode({"sub": user, "exp": now + ttl, **claims}, key, algorithm="HS256")


@pytest.fixture
async def server(make_server: ServerFactory) -> Server:
    return await make_server(
        token_secret=SECRET,
        channels=(ChannelRule(prefix="members:", subscribe="authenticated"),),
    )


async def _ws_refusal(server: Server, query: str) -> tuple[int, dict[str, Any]]:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url(server) + query):
            pass
    response = refused.value.response
    return response.status_code, orjson.loads(response.body)


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (mint("alice", ttl=-60), "token_expired"),
        (mint("alice", key="another secret, " * 4), "invalid_token"),
        (mint("alice")[:-3] + "abc", "invalid_token"),
        (jwt.encode({"sub": "alice"}, "", algorithm="none"), "invalid_token"),
        (jwt.encode({"sub": "alice"}, SECRET, algorithm="HS512"), "invalid_token"),
        ("not-a-jwt", "invalid_token"),
        (jwt.encode({"sub": 7}, SECRET, algorithm="HS256"), "invalid_token"),
        (jwt.encode({"sub": "a", "info": [1]}, SECRET, algorithm="HS256"), "invalid_token"),
        ("x" * 9000, "invalid_token"),
    ],
)
async def test_a_refused_token_is_a_401_with_json_on_every_transport(
    server: Server, token: str, code: str
) -> None:
    status, body = await _ws_refusal(server, f"?channel=a&token={token}")
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        answers = [
            await http.get(f"/sse?channel=a&token={token}"),
            await http.get(
                "/poll?channel=a&timeout=0", headers={"Authorization": f"Bearer {token}"}
            ),
            await http.post(f"/publish?token={token}", json={"channel": "a", "data": 1}),
        ]

    assert (status, body["error"]) == (401, code)
    assert [(a.status_code, a.json()["error"]) for a in answers] == [(401, code)] * 3
    assert token[:20] not in body["message"]


async def test_a_user_channel_is_reached_by_its_user_with_a_token(server: Server) -> None:
    async with connect(ws_url(server) + f"?channel=user:alice&token={mint('alice')}") as ws:
        subscribed = await recv_json(ws)
        await server.publish("user:alice", {"to": "alice"})
        message = await recv_json(ws)

    assert subscribed["type"] == "subscribed"
    assert message["data"] == {"to": "alice"}


async def test_a_dm_channel_is_open_to_its_two_users_only(server: Server) -> None:
    channel = "dm:alice,bob"
    async with (
        connect(ws_url(server) + f"?channel={channel}&token={mint('alice')}") as alice,
        connect(ws_url(server) + f"?channel={channel}&token={mint('bob')}") as bob,
        connect(ws_url(server) + f"?channel={channel}&token={mint('carol')}") as carol,
    ):
        assert (await recv_json(alice))["type"] == "subscribed"
        assert (await recv_json(bob))["type"] == "subscribed"
        refused = await recv_json(carol)
        await alice.send(orjson.dumps({"type": "publish", "channel": channel, "data": "hi"}))
        received = await recv_until(bob, "message")

    assert refused["code"] == "permission_denied"
    assert received["data"] == "hi"


async def test_sse_over_post_takes_the_channels_in_the_body_and_the_token_in_a_header(
    server: Server,
) -> None:
    headers = {"Authorization": f"Bearer {mint('alice')}"}
    body = {"channels": ["user:alice", "members:1"]}
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=5) as http,
        aconnect_sse(http, "POST", "/sse", json=body, headers=headers) as source,
    ):
        events = source.aiter_sse()
        opening = [await anext(events), await anext(events)]  # retry:, then the id-only event
        await server.publish("members:1", "hello")
        message = await anext(events)

    assert opening[0].retry == 2000
    assert opening[1].id
    assert orjson.loads(message.data) == {
        "channel": "members:1",
        "id": message.id.split(".")[0],
        "data": "hello",
    }


async def test_anonymous_connections_can_be_forbidden(make_server: ServerFactory) -> None:
    server = await make_server(token_secret=SECRET, allow_anonymous=False)

    status, body = await _ws_refusal(server, "?channel=a")
    async with connect(ws_url(server) + f"?channel=a&token={mint('alice')}") as ws:
        accepted = await recv_json(ws)

    assert (status, body["error"]) == (401, "unauthorized")
    assert accepted["type"] == "subscribed"


async def test_an_expiring_token_is_refreshed_over_the_websocket(
    make_server: ServerFactory,
) -> None:
    server = await make_server(token_secret=SECRET, token_refresh_timeout_seconds=5)
    async with connect(ws_url(server) + f"?channel=user:alice&token={mint('alice', ttl=1)}") as ws:
        await recv_json(ws)
        asked = await recv_json(ws, wait_seconds=5)
        await ws.send(orjson.dumps({"type": "refresh", "token": mint("alice"), "ref": 1}))
        answer = await recv_json(ws)
        await server.publish("user:alice", "still here")
        message = await recv_json(ws)

    assert asked == {"type": "refresh"}
    assert answer == {"type": "refreshed", "ref": 1}
    assert message["data"] == "still here"


async def test_a_token_not_refreshed_in_time_closes_with_4401(make_server: ServerFactory) -> None:
    server = await make_server(token_secret=SECRET, token_refresh_timeout_seconds=0.2)
    async with connect(ws_url(server) + f"?channel=a&token={mint('alice', ttl=1)}") as ws:
        await recv_json(ws)
        assert await recv_json(ws, wait_seconds=5) == {"type": "refresh"}
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_a_refresh_for_another_user_closes_with_4401(server: Server) -> None:
    async with connect(ws_url(server) + f"?channel=a&token={mint('alice')}") as ws:
        await recv_json(ws)
        await ws.send(orjson.dumps({"type": "refresh", "token": mint("mallory")}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401
    assert "another user" in closed.value.rcvd.reason


async def test_publishing_over_the_rate_is_refused_and_a_flood_is_closed_with_4429(
    make_server: ServerFactory,
) -> None:
    server = await make_server(max_publishes_per_second=5)
    async with connect(ws_url(server)) as ws:
        for n in range(12):
            await ws.send(orjson.dumps({"type": "publish", "channel": "a", "data": n, "ref": n}))
        replies = [await recv_json(ws) for _ in range(12)]
        with pytest.raises(ConnectionClosed) as closed:
            await _flood(ws)

    assert [r["type"] for r in replies].count("published") == 5
    assert {r["code"] for r in replies if r["type"] == "error"} == {"rate_limited"}
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4429


async def _flood(ws: ClientConnection) -> None:
    """Publish far over the rate until the server closes the connection (bounded)."""
    for n in range(200):
        await ws.send(orjson.dumps({"type": "publish", "channel": "a", "data": n}))
    while True:
        await asyncio.wait_for(ws.recv(), 5)


async def test_the_api_disconnects_a_user_with_4000_and_takes_channels_away(
    server: Server,
) -> None:
    key = {"X-API-Key": API_KEY}
    async with (
        connect(ws_url(server) + f"?channel=members:1&token={mint('alice')}") as first,
        connect(ws_url(server) + f"?channel=members:2&token={mint('alice')}") as second,
        httpx.AsyncClient(base_url=server.url, timeout=5) as http,
    ):
        await recv_json(first), await recv_json(second)
        taken = await http.post(
            "/api/unsubscribe", json={"user": "alice", "channel": "members:1"}, headers=key
        )
        unsubscribed = await recv_json(first)
        ended = await http.post("/api/disconnect", json={"user": "alice"}, headers=key)
        nobody = await http.post("/api/disconnect", json={"user": "nobody"}, headers=key)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(second.recv(), 5)

    assert taken.json() == {"user": "alice", "channel": "members:1", "unsubscribed": 1}
    assert unsubscribed == {"type": "unsubscribed", "channel": "members:1"}
    assert ended.json() == {"user": "alice", "disconnected": 2}
    assert nobody.json() == {"user": "nobody", "disconnected": 0}
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4000


async def test_connections_per_user_are_limited(make_server: ServerFactory) -> None:
    server = await make_server(token_secret=SECRET, max_connections_per_user=1)
    token = mint("alice")
    async with connect(ws_url(server) + f"?token={token}"):
        status, body = await _ws_refusal(server, f"?token={token}")
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
            sse = await http.get(f"/sse?channel=a&token={token}")

    assert (status, body["error"]) == (429, "limit_exceeded")
    assert sse.status_code == 429


async def test_clients_read_history_of_the_channels_they_may_subscribe_to(server: Server) -> None:
    first = (await server.publish("user:alice", "one")).position.cursor
    await server.publish("user:alice", "two")
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        mine = await http.get(
            "/history?channel=user:alice&limit=10",
            headers={"Authorization": f"Bearer {mint('alice')}"},
        )
        since = await http.get(f"/history?channel=user:alice&since={first}&token={mint('alice')}")
        theirs = await http.get(f"/history?channel=user:alice&token={mint('bob')}")
        anonymous = await http.get("/history?channel=user:alice")

    assert [m["data"] for m in mine.json()["messages"]] == ["one", "two"]
    assert [m["data"] for m in since.json()["messages"]] == ["two"]
    assert since.json()["gap"] is False
    assert (theirs.status_code, theirs.json()["error"]) == (403, "permission_denied")
    assert anonymous.status_code == 401


async def test_a_message_from_a_client_with_a_token_says_who_sent_it(server: Server) -> None:
    token = mint("alice", info={"name": "Alice"})
    async with (
        connect(ws_url(server) + "?channel=room") as reader,
        connect(ws_url(server) + f"?token={token}") as alice,
        connect(ws_url(server)) as anonymous,
        httpx.AsyncClient(base_url=server.url, timeout=5) as http,
    ):
        await recv_json(reader)
        await alice.send(orjson.dumps({"type": "publish", "channel": "room", "data": "hi"}))
        await anonymous.send(orjson.dumps({"type": "publish", "channel": "room", "data": "?"}))
        over_http = await http.post(
            "/publish",
            json={"channel": "room", "data": "web"},
            headers={"Authorization": f"Bearer {token}"},
        )
        received = [await recv_until(reader, "message") for _ in range(3)]
        history = await http.get("/api/history?channel=room", headers={"X-API-Key": API_KEY})

    assert over_http.status_code == 200
    by_data = {m["data"]: m.get("from") for m in received}
    assert by_data == {
        "hi": {"user": "alice", "info": {"name": "Alice"}},
        "?": None,
        "web": {"user": "alice", "info": {"name": "Alice"}},
    }
    assert {m["data"]: m.get("from") for m in history.json()["messages"]} == by_data


async def test_http_publishing_is_rate_limited_per_user(make_server: ServerFactory) -> None:
    server = await make_server(token_secret=SECRET, max_publishes_per_second=3)
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        alice = [
            await http.post(f"/publish?token={mint('alice')}", json={"channel": "room", "data": n})
            for n in range(6)
        ]
        bob = await http.post(f"/publish?token={mint('bob')}", json={"channel": "room", "data": 0})

    assert [a.status_code for a in alice].count(200) == 3
    assert {a.json()["error"] for a in alice if a.status_code != 200} == {"rate_limited"}
    assert bob.status_code == 200  # another user has a bucket of their own
