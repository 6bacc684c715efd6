"""NatsBroker as a cluster: two brokers (two nodes) on one prefix, against a real NATS.

The contract (tests/contract) runs each guarantee against one node; these tests are
about what only several nodes, a crash or a NATS restart show.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from pushwire.brokers.nats import NatsBroker
from pushwire.core.broker import HistoryOptions
from pushwire.core.history import StreamPosition
from pushwire.core.presence import Member
from pushwire.errors import BrokerUnavailableError
from tests.contract.conftest import RecordingEvents
from tests.nats_support import (
    NatsServerProcess,
    delete_prefix,
    nats_broker,
    require_nats,
    unique_prefix,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

KEEP = HistoryOptions(size=1000, ttl_seconds=3600)
Node = tuple[NatsBroker, RecordingEvents]
StartNode = Callable[..., Awaitable[Node]]


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    require_nats()
    prefix = unique_prefix()
    yield prefix
    await delete_prefix(prefix)


@pytest.fixture
async def start_node(prefix: str) -> AsyncIterator[StartNode]:
    """Starts brokers on the test's prefix, each recording its events; closes them after."""
    started: list[NatsBroker] = []

    async def start(*, presence_ttl_seconds: float = 6.0) -> Node:
        broker = nats_broker(prefix, presence_ttl_seconds=presence_ttl_seconds)
        events = RecordingEvents()
        await broker.start(events)
        started.append(broker)
        return broker, events

    yield start
    for broker in started:
        await broker.close()


async def test_a_publication_on_one_node_reaches_the_other(start_node: StartNode) -> None:
    (a, _), (b, b_events) = await start_node(), await start_node()
    await b.subscribe("news")

    publication = await a.publish("news", b'{"n":1}', event="update", options=KEEP)
    await wait_until(lambda: b_events.on("news"), message="the delivery on the other node")

    assert b_events.on("news") == [publication]


async def test_concurrent_publishes_from_two_nodes_take_distinct_consecutive_offsets(
    start_node: StartNode,
) -> None:
    (a, _), (b, _) = await start_node(), await start_node()

    async def publish_many(broker: NatsBroker, name: bytes) -> list[StreamPosition]:
        positions = []
        for n in range(15):
            publication = await broker.publish(
                "race", b'"%s%d"' % (name, n), event=None, options=KEEP
            )
            positions.append(publication.position)
        return positions

    from_a, from_b = await asyncio.gather(publish_many(a, b"a"), publish_many(b, b"b"))
    page = await a.history("race", since=None, limit=100, options=KEEP)

    assert sorted(p.offset for p in from_a + from_b) == list(range(1, 31))
    assert len({p.epoch for p in from_a + from_b}) == 1
    assert [p.position for p in page.publications] == sorted(
        from_a + from_b, key=lambda p: p.offset
    )


async def test_history_reads_from_anywhere_in_a_long_stream_return_exactly_what_follows(
    start_node: StartNode,
) -> None:
    (broker, _) = await start_node()
    published = [
        await broker.publish("long", b"%d" % n, event=None, options=KEEP) for n in range(1, 601)
    ]
    epoch = published[0].position.epoch

    # Near the top (links followed back), and far back (a consumer from a mark).
    for since, limit in [(598, 10), (590, 5), (513, 20), (100, 3), (0, 600), (7, 1), (64, 65)]:
        page = await broker.history(
            "long", since=StreamPosition(epoch, since), limit=limit, options=KEEP
        )

        expected = list(range(since + 1, min(since + limit, 600) + 1))
        assert [p.position.offset for p in page.publications] == expected, (since, limit)
        assert [p.data for p in page.publications] == [b"%d" % n for n in expected]
    newest = await broker.history("long", since=None, limit=300, options=KEEP)
    assert [p.position.offset for p in newest.publications] == list(range(301, 601))


async def test_an_empty_channel_is_in_the_epoch_its_first_publication_starts(
    start_node: StartNode,
) -> None:
    (a, _), (b, _) = await start_node(), await start_node()

    before = await a.history("fresh", since=None, limit=10, options=KEEP)
    first = await b.publish("fresh", b"1", event=None, options=KEEP)

    assert before.top == StreamPosition(first.position.epoch, 0)


async def test_a_join_on_one_node_is_heard_on_the_other_and_members_add_up(
    start_node: StartNode,
) -> None:
    (a, a_events), (b, b_events) = await start_node(), await start_node()
    await a.subscribe("room")
    await b.subscribe("room")

    await a.join("room", Member("ann", {"name": "Ann"}, 1))
    await b.join("room", Member("ann", {"name": "Ann"}, 2))
    await b.join("room", Member("bob", None, 1))
    await wait_until(lambda: len(a_events.joins) == len(b_events.joins) == 2, message="joins")

    expected = [Member("ann", {"name": "Ann"}, 3), Member("bob", None, 1)]
    assert await a.members("room") == await b.members("room") == expected
    assert (
        a_events.joins
        == b_events.joins
        == [
            ("room", "ann", {"name": "Ann"}),
            ("room", "bob", None),
        ]
    )

    await a.leave("room", "ann")  # b still holds ann: nobody leaves
    await b.leave("room", "bob")
    await wait_until(lambda: a_events.leaves and b_events.leaves, message="bob's leave")

    assert a_events.leaves == b_events.leaves == [("room", "bob", None)]
    assert await a.members("room") == [Member("ann", {"name": "Ann"}, 2)]


async def test_a_node_that_stops_refreshing_leaves_within_the_ttl_and_is_told_once(
    start_node: StartNode,
) -> None:
    ttl = 2.0
    (a, a_events), (b, _) = (
        await start_node(presence_ttl_seconds=ttl),
        await start_node(presence_ttl_seconds=ttl),
    )
    await a.subscribe("room")
    await b.join("room", Member("bob", {"name": "Bob"}, 1))
    await wait_until(lambda: a_events.joins, message="bob's join")

    # A crash, as NATS sees it: the connection goes and nothing is deleted or told.
    crashed_at = time.monotonic()
    assert b._connection is not None
    await b._connection.close()
    await wait_until(lambda: a_events.leaves, timeout_seconds=ttl + 3, message="bob's leave")

    assert time.monotonic() - crashed_at < ttl + ttl / 3 + 1.0  # expiry, a read, slack
    assert a_events.leaves == [("room", "bob", {"name": "Bob"})]
    assert await a.members("room") == []
    await asyncio.sleep(ttl / 3 + 0.2)  # another registry read: still told once
    assert len(a_events.leaves) == 1


async def test_a_survey_is_answered_by_both_nodes(start_node: StartNode) -> None:
    (a, a_events), (b, b_events) = await start_node(), await start_node()
    a_events.answer, b_events.answer = b'"a"', b'"b"'

    from_a = await wait_until(lambda: _answered_by_both(a), message="both answers to a")
    from_b = await wait_until(lambda: _answered_by_both(b), message="both answers to b")

    assert from_a == [b'"a"', b'"b"']  # the asking node's own answer first
    assert from_b == [b'"b"', b'"a"']
    assert a_events.questions[-1] == b_events.questions[-1] == b'{"ask":"count"}'


async def _answered_by_both(broker: NatsBroker) -> list[bytes] | None:
    answers = await broker.survey(b'{"ask":"count"}')
    return answers if len(answers) == 2 else None


async def test_a_nats_restart_is_survived_with_history_and_a_resubscription(
    tmp_path: Path,
) -> None:
    server = NatsServerProcess(tmp_path).start()
    prefix = unique_prefix()
    broker, events = nats_broker(prefix, server.url, timeout_seconds=2.0), RecordingEvents()
    try:
        await broker.start(events)
        await broker.subscribe("news")
        before = [await broker.publish("news", b"%d" % n, event=None, options=KEEP) for n in (1, 2)]

        server.kill()
        await wait_until(lambda: not broker.connected, message="the broker to notice")
        began = time.monotonic()
        with pytest.raises(BrokerUnavailableError):
            await broker.publish("news", b"3", event=None, options=KEEP)
        with pytest.raises(BrokerUnavailableError):
            await broker.history("news", since=None, limit=10, options=KEEP)
        with pytest.raises(BrokerUnavailableError):
            await broker.survey(b"{}")
        refused_within = time.monotonic() - began
        with pytest.raises(BrokerUnavailableError):  # kept, and put once NATS is back
            await broker.join("news", Member("ann", None, 1))
        server.start()
        await wait_until(lambda: broker.connected, timeout_seconds=10, message="reconnected")
        await wait_until(lambda: events.resubscribed, message="on_resubscribed")

        page = await broker.history("news", since=None, limit=10, options=KEEP)
        after = await broker.publish("news", b"3", event=None, options=KEEP)
        await wait_until(lambda: len(events.on("news")) == 3, message="a delivery after it")
        await wait_until(lambda: events.joins, message="the join made while NATS was away")
        members = await broker.members("news")
    finally:
        await broker.close()
        server.kill()

    assert refused_within < 0.5
    assert events.resubscribed == 1
    assert list(page.publications) == before  # file storage kept them
    assert after.position == StreamPosition(before[0].position.epoch, 3)
    assert events.on("news")[-1] == after
    assert events.joins == [("news", "ann", None)]
    assert members == [Member("ann", None, 1)]
