"""Several pushwire nodes on a real Redis Cluster: three primaries, no replicas.

The nodes are real ``pushwire serve`` processes given the cluster's URL; the
channels are picked so that their slots lie on different primaries. One test
kills a primary (its own process) and starts it again: without persistence it
comes back empty, so its channels' subscribers get every publication or a gap.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from pushwire.core.history import StreamPosition
from tests.cluster.conftest import ClusterFactory, Kind
from tests.cluster.test_cluster import KEY, frame, frame_of, publish, subscribers, token, ws
from tests.redis_cluster import RedisClusterServers, forget_cluster_prefix
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def kind(redis_cluster: RedisClusterServers) -> Kind:
    """The cluster suite's broker, here the session's Redis Cluster (all seeds in the URL)."""

    async def forget(url: str, prefix: str) -> None:
        await forget_cluster_prefix(prefix, redis_cluster.ports)

    return Kind("redis", redis_cluster.url, redis_cluster.ports[0], forget)


def one_per_primary(servers: RedisClusterServers, stem: str) -> dict[int, str]:
    """A channel name for each primary (by port), its slot owned by that primary."""
    chosen: dict[int, str] = {}
    for n in range(1000):
        name = f"{stem}-{n}"
        chosen.setdefault(servers.owner_of(f"x:{{{name}}}".encode()), name)
        if len(chosen) == len(servers.ports):
            return chosen
    raise AssertionError("no channel names spread over every primary")


def offset(message: dict[str, Any]) -> int:
    return StreamPosition.from_cursor(message["id"]).offset


async def messages(socket: ClientConnection, count: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < count:
        got.append(await frame_of(socket, "message"))
    return got


async def subscribe(socket: ClientConnection, channel: str, cursor: str = "") -> dict[str, Any]:
    """Subscribe and wait for the answer (skipping, so losing, frames before it)."""
    command: dict[str, Any] = {"type": "subscribe", "channel": channel, "ref": channel}
    if cursor:
        command["cursor"] = cursor
    await socket.send(orjson.dumps(command).decode())
    return await frame_of(socket, "subscribed")


async def test_channels_on_every_primary_travel_between_nodes_in_order(
    cluster: ClusterFactory, redis_cluster: RedisClusterServers
) -> None:
    a, b = cluster(2).nodes
    channels = list(one_per_primary(redis_cluster, "spread").values())
    async with connect(ws(b, "")) as on_b:
        for channel in channels:
            await subscribe(on_b, channel)
        for channel in channels:
            await wait_until(partial(subscribers, a, channel), message="B seen from A")
        for n in range(4):
            for channel in channels:
                assert (await publish(a, channel, n)).status_code == 200
        got = await messages(on_b, 4 * len(channels))

    for channel in channels:
        mine = [m for m in got if m["channel"] == channel]
        assert [m["data"] for m in mine] == [0, 1, 2, 3]
        assert [offset(m) for m in mine] == [1, 2, 3, 4]


async def test_a_client_moving_nodes_recovers_on_every_primary_with_no_loss_and_no_repeat(
    cluster: ClusterFactory, redis_cluster: RedisClusterServers
) -> None:
    a, b, c = cluster(3).nodes
    channels = list(one_per_primary(redis_cluster, "moving").values())
    received: dict[str, list[int]] = {channel: [] for channel in channels}
    cursors: dict[str, str] = {}
    async with connect(ws(b, "")) as on_b:
        for channel in channels:
            await subscribe(on_b, channel)
        for channel in channels:
            for n in range(3):
                assert (await publish(a, channel, n)).status_code == 200
        for message in await messages(on_b, 3 * len(channels)):
            received[message["channel"]].append(message["data"])
            cursors[message["channel"]] = message["id"]
    for channel in channels:  # published while the client is away
        for n in range(3, 7):
            assert (await publish(a, channel, n)).status_code == 200

    async with connect(ws(c, "")) as on_c:
        recovered = []
        for channel in channels:  # what it missed follows each "subscribed" at once
            recovered.append((await subscribe(on_c, channel, cursors[channel]))["recovered"])
            for message in await messages(on_c, 4):
                received[message["channel"]].append(message["data"])

    assert recovered == [True] * len(channels)
    assert received == {channel: list(range(7)) for channel in channels}
    async with httpx.AsyncClient(timeout=5) as http:  # history, read through a third node
        history = await http.get(
            a.url + "/api/history", params={"channel": channels[-1], "limit": 10}, headers=KEY
        )
    assert [m["data"] for m in history.json()["messages"]] == list(range(7))


async def test_presence_and_join_leave_are_cluster_wide(
    cluster: ClusterFactory, redis_cluster: RedisClusterServers
) -> None:
    a, b, c = cluster(3).nodes
    for room in one_per_primary(redis_cluster, "room:r").values():
        async with connect(ws(c, f"channel={room}&token={token('bob', 'Bob')}")) as bob:
            await frame(bob)
            async with connect(ws(b, f"channel={room}&token={token('ann', 'Ann')}")) as ann:
                await frame(ann)
                joined = await frame_of(bob, "join", user="ann")
                assert (joined["user"], joined["info"]) == ("ann", {"name": "Ann"})
                async with httpx.AsyncClient(timeout=5) as http:
                    members = await http.get(
                        a.url + "/api/presence", params={"channel": room}, headers=KEY
                    )
                assert [m["user"] for m in members.json()["members"]] == ["ann", "bob"]
            assert (await frame_of(bob, "leave", user="ann"))["user"] == "ann"


async def test_a_killed_primary_means_503_and_degraded_then_nothing_lost_silently(
    cluster: ClusterFactory, redis_cluster: RedisClusterServers
) -> None:
    """Kill one primary (no replica to take over): every node reports degraded and
    refuses publishes; once it is back (empty), delivery resumes, and the channel
    whose slot it owns gives its subscribers every acknowledged message or a gap."""
    a, b = cluster(2).nodes
    spread = one_per_primary(redis_cluster, "outage")
    victim = redis_cluster.ports[1]
    lost_channel = spread[victim]
    kept_channel = spread[redis_cluster.ports[0]]
    try:
        async with connect(ws(b, "")) as on_b, httpx.AsyncClient(timeout=10) as http:
            for channel in (lost_channel, kept_channel):
                await subscribe(on_b, channel)
            for channel in (lost_channel, kept_channel):
                await wait_until(partial(subscribers, a, channel), message="B seen from A")
                for n in range(3):
                    assert (await publish(a, channel, n)).status_code == 200

            redis_cluster.kill_node(victim)

            async def degraded() -> bool:
                return (await http.get(a.url + "/health")).status_code == 503

            await wait_until(degraded, timeout_seconds=10, message="A to say it is degraded")
            health = (await http.get(a.url + "/health")).json()
            during = {c: await publish(a, c, "refused") for c in (lost_channel, kept_channel)}

            redis_cluster.start_node(victim)
            redis_cluster.wait_ok()

            async def healthy() -> bool:
                answers = [(await http.get(node.url + "/health")).status_code for node in (a, b)]
                return answers == [200, 200]

            await wait_until(healthy, timeout_seconds=20, message="both nodes back")
            after = {c: await publish(a, c, "after") for c in (lost_channel, kept_channel)}

            seen: dict[str, list[Any]] = {lost_channel: [], kept_channel: []}
            gaps: dict[str, int] = {lost_channel: 0, kept_channel: 0}
            for _ in range(100):
                if all("after" in data for data in seen.values()):
                    break
                got = await frame(on_b, 10)
                if got["type"] == "message":
                    seen[got["channel"]].append(got["data"])
                elif got["type"] == "gap":
                    gaps[got["channel"]] += 1
    finally:
        if victim not in redis_cluster.processes:
            redis_cluster.start_node(victim)
        await asyncio.to_thread(redis_cluster.wait_ok)

    assert health["status"] == "degraded"
    assert health["broker"] == {"name": "redis", "connected": False}
    for channel in (lost_channel, kept_channel):
        assert during[channel].status_code == 503
        assert during[channel].json()["error"] == "broker_unavailable"
        assert after[channel].status_code == 200
        assert "refused" not in seen[channel]
        assert seen[channel][-1] == "after"
    assert seen[kept_channel] == [0, 1, 2, "after"]  # its primary kept everything
    assert gaps[kept_channel] == 0
    # Its primary came back empty (a new epoch): what was kept was delivered, and
    # the subscriber was told that history before "after" is gone.
    assert seen[lost_channel] == [0, 1, 2, "after"]
    assert gaps[lost_channel] > 0
