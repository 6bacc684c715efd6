"""The brokers the contract runs against, each started with a recording BrokerEvents.

To add a broker, add a factory to ``BROKERS`` and its name to ``BROKER_PARAMS``;
a broker that needs a server (Redis, NATS) goes in as
``pytest.param("redis", marks=pytest.mark.integration)``. A factory gets a
directory of its own and the contract's clock, and must take publication times
and history expiry from that clock (see ``ContractClock``). Brokers made in one
test share a server's state (nats: one prefix per test); what they leave on a
shared server goes after the test (``CLEANUPS``). ``redis-cluster`` runs on a
real three-primary Redis Cluster the session starts (``tests/redis_cluster.py``).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from pushwire.brokers.memory import MemoryBroker
from pushwire.brokers.memory_history import MemoryHistoryStore
from pushwire.brokers.registry import BrokerSettings
from pushwire.brokers.sqlite_history import SqliteHistoryStore
from pushwire.core.broker import Broker
from pushwire.core.history import Publication
from tests.nats_support import delete_prefix, nats_broker, require_nats
from tests.redis_cluster import RedisClusterServers, forget_cluster_prefix
from tests.services import REDIS_URL, forget_redis_prefix, require_service, test_prefix


class ContractClock:
    """The broker's wall clock, standing still until a test moves it on."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingEvents:
    """A node as a broker sees it (``core.broker.BrokerEvents``): it keeps what arrives."""

    def __init__(self) -> None:
        self.publications: list[Publication] = []
        self.resubscribed = 0
        self.joins: list[tuple[str, str, dict[str, object] | None]] = []
        self.leaves: list[tuple[str, str, dict[str, object] | None]] = []
        self.questions: list[bytes] = []
        self.answer = b"[]"

    def on_publication(self, publication: Publication) -> None:
        self.publications.append(publication)

    def on_resubscribed(self) -> None:
        self.resubscribed += 1

    def on_join(self, channel: str, user: str, info: dict[str, object] | None) -> None:
        self.joins.append((channel, user, info))

    def on_leave(self, channel: str, user: str, info: dict[str, object] | None) -> None:
        self.leaves.append((channel, user, info))

    def on_survey(self, question: bytes) -> bytes:
        self.questions.append(question)
        return self.answer

    def on(self, channel: str) -> list[Publication]:
        return [p for p in self.publications if p.channel == channel]


BrokerFactory = Callable[[], Broker]


def _redis(directory: Path, clock: ContractClock, prefix: str) -> Broker:
    from pushwire.brokers.redis import RedisBroker

    require_service("redis", 6379)
    return RedisBroker(REDIS_URL, BrokerSettings(prefix=prefix), clock=clock)


def _redis_cluster(
    servers: RedisClusterServers,
) -> Callable[[Path, ContractClock, str], Broker]:
    def make(directory: Path, clock: ContractClock, prefix: str) -> Broker:
        from pushwire.brokers.redis import RedisBroker

        return RedisBroker(servers.url, BrokerSettings(prefix=prefix), clock=clock)

    return make


def _nats(directory: Path, clock: ContractClock, prefix: str) -> Broker:
    require_nats()
    return nats_broker(prefix, clock=clock)


# name -> (factory: directory, clock, the test's prefix -> broker; cleanup of a prefix)
BROKERS: dict[str, Callable[[Path, ContractClock, str], Broker]] = {
    "memory": lambda directory, clock, prefix: MemoryBroker(MemoryHistoryStore(), clock=clock),
    "sqlite": lambda directory, clock, prefix: MemoryBroker(
        SqliteHistoryStore(directory / "history.db"), clock=clock
    ),
    "redis": _redis,
    "nats": _nats,
}
# What a test leaves on a shared server, removed after it (given the test's prefix).
CLEANUPS: dict[str, Callable[[str], Awaitable[None]]] = {
    "redis": forget_redis_prefix,
    "nats": delete_prefix,
}
BROKER_PARAMS = [
    "memory",
    "sqlite",
    pytest.param("redis", marks=pytest.mark.integration),
    pytest.param("redis-cluster", marks=pytest.mark.integration),
    pytest.param("nats", marks=pytest.mark.integration),
]


@pytest.fixture
def clock() -> ContractClock:
    return ContractClock()


@pytest.fixture
def events() -> RecordingEvents:
    return RecordingEvents()


@pytest.fixture(params=BROKER_PARAMS)
async def new_broker(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ContractClock
) -> AsyncIterator[BrokerFactory]:
    """Makes brokers of one kind, not started (each in its own directory); after the
    test, removes what they left on a shared server."""
    cleanup = CLEANUPS.get(request.param)
    if request.param == "redis-cluster":
        servers: RedisClusterServers = request.getfixturevalue("redis_cluster")
        factory = _redis_cluster(servers)

        async def cleanup(prefix: str) -> None:
            await forget_cluster_prefix(prefix, servers.ports)

    else:
        factory = BROKERS[request.param]
    prefix = test_prefix()  # brokers made by one test share it: they are one cluster
    made = 0

    def make() -> Broker:
        nonlocal made
        made += 1
        directory = tmp_path / f"broker-{made}"
        directory.mkdir()
        return factory(directory, clock, prefix)

    yield make
    if cleanup is not None and made:
        await cleanup(prefix)


@pytest.fixture
async def broker(new_broker: BrokerFactory, events: RecordingEvents) -> AsyncIterator[Broker]:
    """A started broker of each kind, delivering to ``events``; closed after the test."""
    started = new_broker()
    await started.start(events)
    yield started
    await started.close()


@pytest.fixture
def fresh() -> Callable[[str], str]:
    """Channel names no other test (or earlier run, on a shared server) has used."""
    run = secrets.token_hex(4)
    return lambda name: f"{name}-{run}"
