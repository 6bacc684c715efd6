"""Channel rules on every transport, for anonymous connections over real sockets.

(Tokens add identities; these cases need none: a user channel is refused to an
anonymous connection on every transport, a members-only prefix likewise.)
"""

from __future__ import annotations

import httpx
import pytest
from websockets.asyncio.client import connect

from pushwire import ChannelRule
from tests.conftest import ServerFactory, recv_json, ws_url

RULES = (
    ChannelRule(prefix="members:", subscribe="authenticated"),
    ChannelRule(prefix="news:", publish="none"),
)


async def test_a_refused_websocket_subscribe_is_an_error_frame_and_the_connection_stays(
    make_server: ServerFactory,
) -> None:
    server = await make_server(channels=RULES)
    async with connect(ws_url(server) + "?channel=user:alice&channel=lobby") as ws:
        first, second = await recv_json(ws), await recv_json(ws)
        await ws.send('{"type":"subscribe","channel":"members:1","ref":7}')
        refused = await recv_json(ws)
        await ws.send('{"type":"publish","channel":"news:1","data":1,"ref":8}')
        forbidden = await recv_json(ws)
        await ws.send('{"type":"ping","ref":9}')
        pong = await recv_json(ws)

    assert {first["type"], second["type"]} == {"error", "subscribed"}
    error = first if first["type"] == "error" else second
    assert error["code"] == "unauthorized"
    assert refused == {
        "type": "error",
        "ref": 7,
        "code": "unauthorized",
        "message": "subscribing to 'members:1' needs a token",
    }
    assert forbidden["code"] == "permission_denied"
    assert pong == {"type": "pong", "ref": 9}


@pytest.mark.parametrize("path", ["/sse", "/poll"])
@pytest.mark.parametrize(
    ("channel", "status", "code"),
    [("user:alice", 401, "unauthorized"), ("members:1", 401, "unauthorized")],
)
async def test_http_subscribers_are_refused_with_json(
    make_server: ServerFactory, path: str, channel: str, status: int, code: str
) -> None:
    server = await make_server(channels=RULES)
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        response = await http.get(f"{path}?channel=lobby&channel={channel}&timeout=0")

    assert response.status_code == status
    assert response.json()["error"] == code


async def test_http_client_publishing_follows_the_publish_rule(make_server: ServerFactory) -> None:
    server = await make_server(channels=RULES)
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        refused = await http.post("/publish", json={"channel": "news:1", "data": 1})
        allowed = await http.post("/publish", json={"channel": "lobby", "data": 1})

    assert refused.status_code == 403
    assert refused.json()["error"] == "permission_denied"
    assert allowed.status_code == 200


async def test_clients_channel_names_are_limited_by_max_channel_length(
    make_server: ServerFactory,
) -> None:
    server = await make_server(max_channel_length=8)
    async with connect(ws_url(server) + "?channel=short&channel=much-too-long") as ws:
        replies = [await recv_json(ws), await recv_json(ws)]
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        refused = await http.get("/sse?channel=much-too-long")

    assert sorted(r["type"] for r in replies) == ["error", "subscribed"]
    assert next(r for r in replies if r["type"] == "error")["code"] == "invalid_channel"
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_channel")
