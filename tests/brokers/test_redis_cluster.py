"""The Redis broker's own Redis Cluster rules: URL forms, and what it refuses at start."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest

from pushwire.brokers.redis import RedisBroker
from pushwire.brokers.redis_cluster import node_url, seed_urls
from pushwire.brokers.registry import BrokerSettings
from pushwire.core.broker import HistoryOptions
from pushwire.errors import UsageError
from tests.contract.conftest import RecordingEvents
from tests.redis_cluster import RedisClusterServers, forget_cluster_prefix
from tests.services import REDIS_URL, require_service, test_prefix
from tests.waiting import wait_until


def test_several_hosts_are_seeds_sharing_the_credentials() -> None:
    assert seed_urls("redis://:pw@a:7000,b:7001/0") == [
        "redis://:pw@a:7000/0",
        "redis://:pw@b:7001/0",
    ]
    assert seed_urls("redis://127.0.0.1:6379/9") == ["redis://127.0.0.1:6379/9"]
    assert node_url("rediss://u:pw@a:7000,b:7001/0", "10.0.0.9", 7002) == (
        "rediss://u:pw@10.0.0.9:7002/0"
    )
    with pytest.raises(UsageError, match="empty host"):
        seed_urls("redis://a:7000,,b:7001")


@pytest.mark.integration
async def test_a_database_other_than_0_on_a_cluster_is_refused_at_start(
    redis_cluster: RedisClusterServers,
) -> None:
    url = f"redis://127.0.0.1:{redis_cluster.ports[0]}/9"
    broker = RedisBroker(url, BrokerSettings(prefix=test_prefix()))
    with pytest.raises(UsageError, match="only database 0"):
        await broker.start(RecordingEvents())


@pytest.mark.integration
async def test_several_hosts_that_are_not_a_cluster_are_refused_at_start() -> None:
    require_service("redis", 6379)
    url = REDIS_URL.replace("127.0.0.1:6379", "127.0.0.1:6379,127.0.0.1:6379")
    broker = RedisBroker(url, BrokerSettings(prefix=test_prefix()))
    with pytest.raises(UsageError, match="not a cluster"):
        await broker.start(RecordingEvents())


@pytest.mark.integration
async def test_any_one_seed_that_answers_is_enough(redis_cluster: RedisClusterServers) -> None:
    """The first seed is a closed port: the broker asks the next, and finds the cluster."""
    closed = "127.0.0.1:9"  # discard: nothing listens there on a test machine
    url = f"redis://{closed},127.0.0.1:{redis_cluster.ports[1]}/0"
    broker = RedisBroker(url, BrokerSettings(prefix=test_prefix(), timeout_seconds=3))
    await broker.start(RecordingEvents())
    try:
        assert broker.connected
        assert broker.name == "redis"
    finally:
        await broker.close()


async def _move_slot(servers: RedisClusterServers, key: bytes, target_port: int) -> None:
    """Reshard by hand: ``key``'s slot, with its keys, from its owner to ``target_port``."""
    from redis.asyncio import Redis
    from redis.crc import key_slot

    slot = key_slot(key)
    source_port = servers.owner_of(key)
    clients = {port: Redis(host="127.0.0.1", port=port) for port in servers.ports}
    ask = {
        port: cast(Callable[..., Awaitable[Any]], client.execute_command)
        for port, client in clients.items()
    }
    try:
        ids = {port: (await command("CLUSTER MYID")).decode() for port, command in ask.items()}
        source, target = ask[source_port], ask[target_port]
        await target("CLUSTER SETSLOT", slot, "IMPORTING", ids[source_port])
        await source("CLUSTER SETSLOT", slot, "MIGRATING", ids[target_port])
        while keys := await source("CLUSTER GETKEYSINSLOT", slot, 100):
            await source("MIGRATE", "127.0.0.1", target_port, "", 0, 5000, "KEYS", *keys)
        for command in (target, source, *ask.values()):
            await command("CLUSTER SETSLOT", slot, "NODE", ids[target_port])
    finally:
        for client in clients.values():
            await client.aclose()


@pytest.mark.integration
async def test_a_slot_moved_while_subscribed_relinks_and_loses_nothing(
    redis_cluster: RedisClusterServers,
) -> None:
    """Resharding: the old owner drops the channel's subscription (Redis tells with an
    unasked SUNSUBSCRIBE); the node relinks at the new owner and fills from history,
    which moved with the slot, so it has every publication once, in order."""
    prefix = test_prefix()
    settings = BrokerSettings(prefix=prefix)
    publisher, subscriber = (
        RedisBroker(redis_cluster.url, settings),
        RedisBroker(redis_cluster.url, settings),
    )
    events = RecordingEvents()
    await publisher.start(RecordingEvents())
    await subscriber.start(events)
    channel = "resharded"
    topic = f"{prefix}:{{{channel}}}".encode()
    keep = HistoryOptions(size=100, ttl_seconds=3600)
    try:
        await subscriber.subscribe(channel)
        for n in range(3):
            await publisher.publish(channel, b"%d" % n, event=None, options=keep)
        await wait_until(lambda: len(events.on(channel)) == 3, message="the first three")
        owner = redis_cluster.owner_of(topic)
        target = next(port for port in redis_cluster.ports if port != owner)

        await _move_slot(redis_cluster, topic, target)
        assert redis_cluster.owner_of(topic) == target
        await wait_until(lambda: events.resubscribed >= 1, message="the subscriber to relink")
        for n in range(3, 6):
            await publisher.publish(channel, b"%d" % n, event=None, options=keep)
        await wait_until(lambda: len(events.on(channel)) >= 6, message="all six")
    finally:
        await publisher.close()
        await subscriber.close()
        await forget_cluster_prefix(prefix, redis_cluster.ports)

    assert [p.data for p in events.on(channel)] == [b"%d" % n for n in range(6)]
    assert [p.position.offset for p in events.on(channel)] == list(range(1, 7))
