"""What the Redis broker does beyond the contract: several nodes on one Redis, expiry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from pushwire.brokers.redis import RedisBroker
from pushwire.brokers.registry import BrokerSettings
from pushwire.core.broker import HistoryOptions
from pushwire.core.presence import Member
from tests.contract.conftest import RecordingEvents
from tests.services import REDIS_URL, forget_redis_prefix, require_service, test_prefix
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

KEEP = HistoryOptions(size=100, ttl_seconds=3600)


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    require_service("redis", 6379)
    name = test_prefix()
    yield name
    await forget_redis_prefix(name)


async def _node(
    prefix: str, *, meta_ttl_seconds: float = 3600.0
) -> tuple[RedisBroker, RecordingEvents]:
    settings = BrokerSettings(prefix=prefix, history_meta_ttl_seconds=meta_ttl_seconds)
    broker = RedisBroker(REDIS_URL, settings)
    events = RecordingEvents()
    await broker.start(events)
    return broker, events


async def test_two_nodes_publishing_at_once_get_distinct_consecutive_offsets(prefix: str) -> None:
    (a, _), (b, events) = await _node(prefix), await _node(prefix)
    await b.subscribe("race")

    published = await asyncio.gather(
        *(
            node.publish("race", b"%d" % n, event=None, options=KEEP)
            for n in range(100)
            for node in (a, b)
        )
    )
    await wait_until(lambda: len(events.on("race")) >= 200, message="every delivery on B")
    await a.close()
    await b.close()

    assert sorted(p.position.offset for p in published) == list(range(1, 201))
    assert len({p.position.epoch for p in published}) == 1


async def test_a_publication_on_one_node_is_delivered_on_the_other_with_its_publisher(
    prefix: str,
) -> None:
    (a, _), (b, events) = await _node(prefix), await _node(prefix)
    await b.subscribe("news")

    sent = await a.publish(
        "news", b'{"x":1}', event="named", options=KEEP, publisher=b'{"user":"ann"}'
    )
    await wait_until(lambda: events.on("news"), message="the delivery on B")
    await a.close()
    await b.close()

    assert events.on("news") == [sent]


async def test_presence_is_summed_over_nodes_and_a_join_is_told_once(prefix: str) -> None:
    (a, heard_a), (b, heard_b) = await _node(prefix), await _node(prefix)
    for node in (a, b):
        await node.subscribe("room")

    await a.join("room", Member("ann", {"name": "Ann"}, 2))
    await b.join("room", Member("ann", {"name": "Ann"}, 1))
    await wait_until(lambda: heard_a.joins and heard_b.joins, message="the join on both")
    members = await b.members("room")
    await a.leave("room", "ann")
    await asyncio.sleep(0.2)  # a wrong leave (ann is still on B) would have arrived
    early_leaves = list(heard_b.leaves)
    await b.leave("room", "ann")
    await wait_until(lambda: heard_a.leaves, message="the leave once ann is gone from both")
    await a.close()
    await b.close()

    assert heard_a.joins == heard_b.joins == [("room", "ann", {"name": "Ann"})]
    assert members == [Member("ann", {"name": "Ann"}, 3)]
    assert early_leaves == []


async def test_a_survey_is_answered_by_every_live_node(prefix: str) -> None:
    (a, events_a), (b, events_b) = await _node(prefix), await _node(prefix)
    events_a.answer, events_b.answer = b'"a"', b'"b"'

    answers = await a.survey(b"question")
    await a.close()
    await b.close()

    assert sorted(answers) == [b'"a"', b'"b"']
    assert events_b.questions == [b"question"]


async def test_a_channels_metadata_expires_when_nobody_publishes(prefix: str) -> None:
    broker, _ = await _node(prefix, meta_ttl_seconds=1)
    first = await broker.publish("quiet", b"1", event=None, options=HistoryOptions(10, 1))
    await asyncio.sleep(2.2)  # Redis expires the stream and its metadata

    again = await broker.publish("quiet", b"2", event=None, options=HistoryOptions(10, 1))
    await broker.close()

    assert again.position.offset == 1
    assert again.position.epoch != first.position.epoch
