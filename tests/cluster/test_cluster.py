"""Several nodes acting as one server: delivery, recovery, presence, outages, crashes.

Every node is a real ``pushwire serve`` process; the broker is a real Redis (or
NATS) server. A publication on any node must reach subscribers on every node,
and a client that reconnects to another node gets exactly what it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx
import jwt
import orjson
from httpx_sse import aconnect_sse
from websockets.asyncio.client import ClientConnection, connect

from tests.cluster.conftest import (
    API_KEY,
    PRESENCE_TTL_SECONDS,
    TOKEN_SECRET,
    ClusterFactory,
    Kind,
    OwnBroker,
)
from tests.server_process import ServerProcess
from tests.waiting import wait_until

KEY = {"X-API-Key": API_KEY}


def ws(node: ServerProcess, query: str) -> str:
    return node.url.replace("http://", "ws://") + "/ws?" + query


def token(user: str, name: str) -> str:
    claims = {"sub": user, "info": {"name": name}, "exp": int(time.time()) + 3600}
    return jwt.encode(claims, TOKEN_SECRET, algorithm="HS256")


async def frame(socket: ClientConnection, seconds: float = 5.0) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(await asyncio.wait_for(socket.recv(), seconds))
    return value


async def frame_of(
    socket: ClientConnection, kind: str, seconds: float = 5.0, user: str | None = None
) -> dict[str, Any]:
    """The next frame of type ``kind`` (about ``user``, if given), skipping others."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        got = await frame(socket, max(deadline - asyncio.get_running_loop().time(), 0.01))
        if got["type"] == kind and (user is None or got.get("user") == user):
            return got


async def publish(node: ServerProcess, channel: str, data: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(
            node.url + "/api/publish", json={"channel": channel, "data": data}, headers=KEY
        )


async def subscribers(node: ServerProcess, channel: str) -> int:
    async with httpx.AsyncClient(timeout=5) as http:
        answer = (await http.get(node.url + "/api/channels", headers=KEY)).json()
    return sum(c["subscribers"] for c in answer["channels"] if c["channel"] == channel)


async def test_a_publication_on_one_node_reaches_every_transport_on_the_others(
    cluster: ClusterFactory,
) -> None:
    a, b, c = cluster(3).nodes
    async with (
        connect(ws(b, "channel=news")) as on_b,
        connect(ws(c, "channel=news")) as on_c,
        httpx.AsyncClient(timeout=10) as http,
        aconnect_sse(http, "GET", c.url + "/sse?channel=news") as sse_on_c,
    ):
        assert (await frame(on_b))["type"] == "subscribed"
        assert (await frame(on_c))["type"] == "subscribed"
        events = sse_on_c.aiter_sse()

        async def next_with_data() -> Any:
            while True:  # past the retry: and id-only events a stream opens with
                event = await asyncio.wait_for(anext(events), 5)
                if event.data:
                    return orjson.loads(event.data)

        # A long poll on B, from now on.
        poll_start = (await http.get(b.url + "/poll?channel=news&timeout=0")).json()["cursor"]
        poll = asyncio.create_task(
            http.get(b.url + f"/poll?channel=news&cursor={poll_start}&timeout=10")
        )
        await wait_until(lambda: subscribers(a, "news"), message="subscribers seen from A")
        await asyncio.sleep(0.1)  # the poll is waiting on B

        answer = await publish(a, "news", {"n": 1})

        assert answer.status_code == 200, answer.text
        cursor = answer.json()["id"]
        for socket in (on_b, on_c):
            message = await frame_of(socket, "message")
            assert (message["data"], message["id"]) == ({"n": 1}, cursor)
        sse_message = await next_with_data()
        assert (sse_message["data"], sse_message["id"]) == ({"n": 1}, cursor)
        polled = (await asyncio.wait_for(poll, 10)).json()
        assert [m["data"] for m in polled["messages"]] == [{"n": 1}]


async def test_channels_are_counted_over_every_node(cluster: ClusterFactory) -> None:
    a, b, c = cluster(3).nodes
    async with (
        connect(ws(b, "channel=counted")) as one,
        connect(ws(c, "channel=counted")) as two,
        connect(ws(c, "channel=counted")) as three,
    ):
        for socket in (one, two, three):
            await frame(socket)

        counts = [await subscribers(node, "counted") for node in (a, b, c)]

    assert counts == [3, 3, 3]


async def test_a_client_moving_to_another_node_recovers_with_no_loss_and_no_repeat(
    cluster: ClusterFactory,
) -> None:
    a, b, c = cluster(3).nodes
    received: list[int] = []
    async with connect(ws(b, "channel=moving")) as on_b:
        await frame(on_b)
        for n in range(5):
            assert (await publish(a, "moving", n)).status_code == 200
        cursor = ""
        while len(received) < 5:
            message = await frame_of(on_b, "message")
            received.append(message["data"])
            cursor = message["id"]
    for n in range(5, 12):  # published while the client is away
        assert (await publish(a, "moving", n)).status_code == 200

    async with connect(ws(c, "")) as on_c:
        subscribe = {"type": "subscribe", "channel": "moving", "cursor": cursor, "ref": 1}
        await on_c.send(orjson.dumps(subscribe).decode())
        subscribed = await frame_of(on_c, "subscribed")
        assert subscribed["recovered"] is True
        while len(received) < 12:
            received.append((await frame_of(on_c, "message"))["data"])
        assert (await publish(a, "moving", 12)).status_code == 200
        received.append((await frame_of(on_c, "message"))["data"])

    assert received == list(range(13))


async def test_join_and_leave_are_told_on_every_node_and_presence_is_cluster_wide(
    cluster: ClusterFactory,
) -> None:
    a, b, c = cluster(3).nodes
    async with connect(ws(c, f"channel=room:1&token={token('bob', 'Bob')}")) as bob:
        await frame(bob)
        async with connect(ws(b, f"channel=room:1&token={token('ann', 'Ann')}")) as ann:
            await frame(ann)
            joined = await frame_of(bob, "join", user="ann")
            assert (joined["user"], joined["info"]) == ("ann", {"name": "Ann"})
            async with httpx.AsyncClient(timeout=5) as http:
                members = await http.get(a.url + "/api/presence?channel=room:1", headers=KEY)
            assert [m["user"] for m in members.json()["members"]] == ["ann", "bob"]
        left = await frame_of(bob, "leave", user="ann")
        assert left["user"] == "ann"


async def test_a_killed_nodes_users_leave_presence_on_the_others_within_the_ttl(
    cluster: ClusterFactory,
) -> None:
    a, b, c = cluster(3).nodes
    async with connect(ws(c, f"channel=room:2&token={token('bob', 'Bob')}")) as bob:
        await frame(bob)
        ann = await connect(ws(b, f"channel=room:2&token={token('ann', 'Ann')}"))
        await frame(ann)
        await frame_of(bob, "join", user="ann")

        b.kill()
        killed_at = time.monotonic()
        left = await frame_of(bob, "leave", seconds=15, user="ann")
        took = time.monotonic() - killed_at
        with contextlib.suppress(Exception):
            await ann.close()

        # Each node finds out for itself (NATS: at its next registry read, a third of the
        # TTL apart), so A may still list her for a moment after C told Bob.
        async with httpx.AsyncClient(timeout=5) as http:

            async def members_seen_from_a() -> list[str] | None:
                answer = await http.get(a.url + "/api/presence?channel=room:2", headers=KEY)
                users = [m["user"] for m in answer.json()["members"]]
                return users if users == ["bob"] else None

            members = await wait_until(
                members_seen_from_a,
                timeout_seconds=PRESENCE_TTL_SECONDS * 2 + 5,
                message="A to list only bob",
            )
    assert left["user"] == "ann"
    assert took < PRESENCE_TTL_SECONDS * 2 + 3  # the TTL and a refresh interval, with slack
    assert members == ["bob"]


async def test_a_broker_restart_loses_nothing_silently_and_delivery_resumes(
    cluster: ClusterFactory, own_broker: OwnBroker, kind: Kind
) -> None:
    """A broker restarting (Redis without persistence: empty): every subscriber either
    has every acknowledged publication or was told of a gap; publishing meanwhile fails."""
    a, b = cluster(2, broker_url=own_broker.url).nodes
    async with connect(ws(b, "channel=outage")) as on_b:
        await frame(on_b)
        acknowledged = []
        for n in range(5):
            answer = await publish(a, "outage", n)
            assert answer.status_code == 200
            acknowledged.append(n)

        own_broker.kill()
        async with httpx.AsyncClient(timeout=5) as http:

            async def degraded() -> bool:
                return (await http.get(a.url + "/health")).status_code == 503

            await wait_until(degraded, timeout_seconds=10, message="A to say it is degraded")
            health = (await http.get(a.url + "/health")).json()
        during = await publish(a, "outage", "lost")
        own_broker.start()

        async with httpx.AsyncClient(timeout=5) as http:

            async def healthy() -> bool:
                answers = [(await http.get(node.url + "/health")).status_code for node in (a, b)]
                return answers == [200, 200]

            await wait_until(healthy, timeout_seconds=15, message="both nodes back")
        after = await publish(a, "outage", "after")

        seen: list[Any] = []
        gaps = 0
        while "after" not in seen:
            got = await frame(on_b, 10)
            if got["type"] == "message":
                seen.append(got["data"])
            elif got["type"] == "gap":
                gaps += 1

    assert health == {
        "status": "degraded",
        "broker": {"name": kind.name, "connected": False},
        "connections": health["connections"],
        "pid": health["pid"],
    }
    assert during.status_code == 503
    assert during.json()["error"] == "broker_unavailable"
    assert after.status_code == 200
    assert "lost" not in seen
    assert seen[: len(acknowledged)] == acknowledged or gaps > 0
    assert seen[-1] == "after"


async def test_a_restarted_broker_that_kept_its_history_means_no_gap(
    cluster: ClusterFactory, own_broker: OwnBroker
) -> None:
    own_broker.kill()
    own_broker.persistent = True
    own_broker.start()
    a, b = cluster(2, broker_url=own_broker.url).nodes
    async with connect(ws(b, "channel=kept")) as on_b:
        await frame(on_b)
        for n in range(5):
            assert (await publish(a, "kept", n)).status_code == 200
        seen = [(await frame_of(on_b, "message"))["data"] for _ in range(5)]
        cursor_before = (await publish(a, "kept", 5)).json()["id"]
        seen.append((await frame_of(on_b, "message"))["data"])

        own_broker.kill()
        own_broker.start()
        async with httpx.AsyncClient(timeout=5) as http:

            async def healthy() -> bool:
                answers = [(await http.get(node.url + "/health")).status_code for node in (a, b)]
                return answers == [200, 200]

            await wait_until(healthy, timeout_seconds=15, message="both nodes back")
        after = await publish(a, "kept", "after")
        kinds = []
        while "after" not in seen:
            got = await frame(on_b, 10)
            kinds.append(got["type"])
            if got["type"] == "message":
                seen.append(got["data"])

    assert seen == [0, 1, 2, 3, 4, 5, "after"]
    assert "gap" not in kinds
    assert after.json()["id"].split("-")[0] == cursor_before.split("-")[0]  # the same epoch


async def test_publishing_over_websocket_during_an_outage_gets_an_error_frame(
    cluster: ClusterFactory, own_broker: OwnBroker
) -> None:
    (a,) = cluster(1, broker_url=own_broker.url).nodes
    async with connect(ws(a, "channel=frames")) as socket:
        await frame(socket)
        own_broker.kill()
        async with httpx.AsyncClient(timeout=5) as http:

            async def degraded() -> bool:
                return (await http.get(a.url + "/health")).status_code == 503

            await wait_until(degraded, timeout_seconds=10, message="A to say it is degraded")
        started = time.monotonic()
        await socket.send(b'{"type": "publish", "channel": "frames", "data": 1, "ref": 7}')
        error = await frame_of(socket, "error")
        took = time.monotonic() - started
        await socket.send(b'{"type": "ping", "ref": 8}')
        pong = await frame_of(socket, "pong")

    assert (error["code"], error["ref"]) == ("broker_unavailable", 7)
    assert took < 2  # at once, not after a timeout
    assert pong["ref"] == 8  # the connection carries on


async def test_a_batch_through_one_node_arrives_in_order_on_another(
    cluster: ClusterFactory,
) -> None:
    a, b = cluster(2).nodes
    async with connect(ws(b, "channel=batch")) as on_b, httpx.AsyncClient(timeout=10) as http:
        await frame(on_b)
        batch = [{"channel": "batch", "data": n} for n in range(200)]
        response = await http.post(a.url + "/api/publish", json=batch, headers=KEY)
        received = [(await frame_of(on_b, "message"))["data"] for _ in range(200)]

    offsets = [int(r["id"].split("-")[1]) for r in response.json()["results"]]
    assert received == list(range(200))
    assert offsets == list(range(offsets[0], offsets[0] + 200))
