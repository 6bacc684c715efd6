"""The Redis broker's own Redis Cluster rules: URL forms, and what it refuses at start."""

from __future__ import annotations

import pytest

from pushwire.brokers.redis import RedisBroker
from pushwire.brokers.redis_cluster import node_url, seed_urls
from pushwire.brokers.registry import BrokerSettings
from pushwire.errors import UsageError
from tests.contract.conftest import RecordingEvents
from tests.redis_cluster import RedisClusterServers
from tests.services import REDIS_URL, require_service, test_prefix


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
