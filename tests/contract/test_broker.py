"""The broker contract (``core.broker.Broker``), run against every broker.

Each test states one guarantee from the protocol's docstrings. The ``broker``
fixture (conftest.py) supplies each broker started with a recording
``BrokerEvents``; the memory broker runs over both history stores.

Adding a broker (Redis, NATS): give ``BROKERS`` in conftest.py a factory for it
and add ``pytest.param("redis", marks=pytest.mark.integration)`` to
``BROKER_PARAMS``; ``.ci/run`` starts the server, and ``pytest -m integration``
runs the contract against it. The tests are written for such brokers already:
they subscribe before they expect deliveries, wait for deliveries instead of
expecting them at once, and name channels with :func:`fresh` so that history a
shared server kept from another test or run is never read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from pushwire.core.broker import Broker, HistoryOptions
from pushwire.core.eager import start_eagerly
from pushwire.core.history import Publication, StreamPosition
from pushwire.core.presence import Member
from pushwire.errors import UsageError
from tests.contract.conftest import BrokerFactory, ContractClock, RecordingEvents
from tests.waiting import wait_until

KEEP_TEN = HistoryOptions(size=10, ttl_seconds=3600)
Fresh = Callable[[str], str]
T = TypeVar("T")


async def _publish(
    broker: Broker,
    channel: str,
    *payloads: bytes,
    event: str | None = None,
    options: HistoryOptions = KEEP_TEN,
) -> list[Publication]:
    return [await broker.publish(channel, data, event=event, options=options) for data in payloads]


def _data(publications: tuple[Publication, ...] | list[Publication]) -> list[bytes]:
    return [publication.data for publication in publications]


# Publishing.


async def test_offsets_count_up_by_one_from_one_within_an_epoch(
    broker: Broker, fresh: Fresh
) -> None:
    news = fresh("news")

    published = await _publish(broker, news, b"1", b"2", b"3")

    assert [p.position.offset for p in published] == [1, 2, 3]
    assert len({p.position.epoch for p in published}) == 1


async def test_a_publication_comes_back_as_published(broker: Broker, fresh: Fresh) -> None:
    news = fresh("news")

    [publication] = await _publish(broker, news, b'{"n":1}', event="update")

    assert publication.channel == news
    assert publication.data == b'{"n":1}'
    assert publication.event == "update"


async def test_publication_time_is_the_brokers_clock(
    broker: Broker, clock: ContractClock, fresh: Fresh
) -> None:
    news = fresh("news")
    clock.advance(42)

    [publication] = await _publish(broker, news, b"1")

    assert publication.time == clock.now


async def test_channels_count_their_offsets_independently(broker: Broker, fresh: Fresh) -> None:
    news, sport = fresh("news"), fresh("sport")

    first_news = await _publish(broker, news, b"n1")
    first_sport = await _publish(broker, sport, b"s1")
    second_news = await _publish(broker, news, b"n2")
    news_page = await broker.history(news, since=None, limit=10, options=KEEP_TEN)

    assert [p.position.offset for p in first_news + second_news] == [1, 2]
    assert first_sport[0].position.offset == 1
    assert _data(news_page.publications) == [b"n1", b"n2"]


# Reading history.


async def test_a_channel_never_published_to_has_no_history_and_offset_zero(
    broker: Broker, fresh: Fresh
) -> None:
    page = await broker.history(fresh("empty"), since=None, limit=10, options=KEEP_TEN)

    assert page.publications == ()
    assert page.top.offset == 0


async def test_history_since_a_position_returns_only_newer_publications_oldest_first(
    broker: Broker, fresh: Fresh
) -> None:
    news = fresh("news")
    first, _, third = await _publish(broker, news, b"1", b"2", b"3")

    page = await broker.history(news, since=first.position, limit=10, options=KEEP_TEN)

    assert _data(page.publications) == [b"2", b"3"]
    assert page.top == third.position


async def test_history_since_a_position_stops_at_the_limit(broker: Broker, fresh: Fresh) -> None:
    news = fresh("news")
    first, *_ = await _publish(broker, news, b"1", b"2", b"3", b"4")

    page = await broker.history(news, since=first.position, limit=2, options=KEEP_TEN)

    assert _data(page.publications) == [b"2", b"3"]
    assert page.top.offset == 4


async def test_history_since_the_top_is_empty(broker: Broker, fresh: Fresh) -> None:
    news = fresh("news")
    *_, last = await _publish(broker, news, b"1", b"2")

    page = await broker.history(news, since=last.position, limit=10, options=KEEP_TEN)

    assert page.publications == ()
    assert page.top == last.position


async def test_history_never_returns_publications_of_another_epoch(
    broker: Broker, fresh: Fresh
) -> None:
    news = fresh("news")
    *_, last = await _publish(broker, news, b"1", b"2", b"3")
    elsewhere = StreamPosition("0dd0e90c", 1)

    page = await broker.history(news, since=elsewhere, limit=10, options=KEEP_TEN)

    assert page.publications == ()
    assert page.top == last.position


async def test_history_without_a_position_returns_the_newest_up_to_the_limit(
    broker: Broker, fresh: Fresh
) -> None:
    news = fresh("news")
    await _publish(broker, news, b"1", b"2", b"3", b"4")

    page = await broker.history(news, since=None, limit=2, options=KEEP_TEN)

    assert _data(page.publications) == [b"3", b"4"]


async def test_history_with_limit_zero_returns_only_the_top(broker: Broker, fresh: Fresh) -> None:
    news = fresh("news")
    first, last = await _publish(broker, news, b"1", b"2")

    newest = await broker.history(news, since=None, limit=0, options=KEEP_TEN)
    since_first = await broker.history(news, since=first.position, limit=0, options=KEEP_TEN)

    assert newest.publications == since_first.publications == ()
    assert newest.top == since_first.top == last.position


async def test_history_keeps_only_the_newest_publications_of_its_size(
    broker: Broker, fresh: Fresh
) -> None:
    news = fresh("news")
    keep_three = HistoryOptions(size=3, ttl_seconds=3600)
    first, *_ = await _publish(broker, news, b"1", b"2", b"3", b"4", b"5", options=keep_three)

    newest = await broker.history(news, since=None, limit=10, options=keep_three)
    since_first = await broker.history(news, since=first.position, limit=10, options=keep_three)

    assert _data(newest.publications) == [b"3", b"4", b"5"]
    assert _data(since_first.publications) == [b"3", b"4", b"5"]  # 2 is gone: the reader sees
    assert newest.top.offset == 5


async def test_a_channel_without_history_still_counts_offsets(broker: Broker, fresh: Fresh) -> None:
    news = fresh("news")
    keep_none = HistoryOptions(size=0, ttl_seconds=3600)

    published = await _publish(broker, news, b"1", b"2", options=keep_none)
    page = await broker.history(news, since=None, limit=10, options=keep_none)

    assert [p.position.offset for p in published] == [1, 2]
    assert page.publications == ()
    assert page.top == published[-1].position


async def test_history_older_than_the_ttl_is_not_returned(
    broker: Broker, clock: ContractClock, fresh: Fresh
) -> None:
    news = fresh("news")
    keep_a_minute = HistoryOptions(size=10, ttl_seconds=60)
    [old] = await _publish(broker, news, b"old", options=keep_a_minute)
    clock.advance(50)
    await _publish(broker, news, b"new", options=keep_a_minute)

    clock.advance(20)  # "old" is 70 s old, "new" 20 s
    newest = await broker.history(news, since=None, limit=10, options=keep_a_minute)
    since_start = await broker.history(
        news, since=StreamPosition(old.position.epoch, 0), limit=10, options=keep_a_minute
    )

    assert _data(newest.publications) == [b"new"]
    assert _data(since_start.publications) == [b"new"]
    assert newest.top.offset == 2


# Delivery.


async def test_each_publication_reaches_the_events_with_its_position_and_data(
    broker: Broker, events: RecordingEvents, fresh: Fresh
) -> None:
    news = fresh("news")
    await broker.subscribe(news)

    published = await _publish(broker, news, b"1", b'"two"', event="named")
    await wait_until(lambda: len(events.on(news)) >= 2, message="both deliveries")

    delivered = {p.position: p for p in events.on(news)}
    assert set(delivered) == {p.position for p in published}
    for publication in published:
        assert delivered[publication.position].data == publication.data
        assert delivered[publication.position].event == "named"


async def test_deliveries_name_their_own_channel(
    broker: Broker, events: RecordingEvents, fresh: Fresh
) -> None:
    news, sport = fresh("news"), fresh("sport")
    await broker.subscribe(news)
    await broker.subscribe(sport)

    [news_publication] = await _publish(broker, news, b"n")
    [sport_publication] = await _publish(broker, sport, b"s")
    await wait_until(lambda: events.on(news) and events.on(sport), message="a delivery on each")

    assert {p.position for p in events.on(news)} == {news_publication.position}
    assert {p.position for p in events.on(sport)} == {sport_publication.position}


async def test_subscribe_and_unsubscribe_may_come_in_any_order(
    broker: Broker, events: RecordingEvents, fresh: Fresh
) -> None:
    news = fresh("news")

    await broker.unsubscribe(news)  # never subscribed
    await broker.subscribe(news)
    await broker.unsubscribe(news)
    await broker.unsubscribe(news)
    await broker.subscribe(news)
    [publication] = await _publish(broker, news, b"1")
    await wait_until(lambda: events.on(news), message="a delivery after subscribing again")

    assert events.on(news)[0].position == publication.position


# Lifecycle.


async def test_publishing_before_start_is_a_usage_error(
    new_broker: BrokerFactory, fresh: Fresh
) -> None:
    broker = new_broker()

    with pytest.raises(UsageError):
        await _publish(broker, fresh("news"), b"1")

    await broker.close()


async def test_publishing_after_close_is_a_usage_error(
    new_broker: BrokerFactory, fresh: Fresh
) -> None:
    broker = new_broker()
    await broker.start(RecordingEvents())
    await _publish(broker, fresh("news"), b"1")

    await broker.close()

    with pytest.raises(UsageError):
        await _publish(broker, fresh("news"), b"2")


async def test_calls_may_be_started_eagerly_outside_any_task(broker: Broker, fresh: Fresh) -> None:
    # The server starts each request eagerly (core.eager): the first step of a broker
    # call may run in no task at all, here from a plain event loop callback.
    news = fresh("news")

    await _eagerly(broker.subscribe(news))
    publication = await _eagerly(broker.publish(news, b"1", event=None, options=KEEP_TEN))
    page = await _eagerly(broker.history(news, since=None, limit=10, options=KEEP_TEN))
    await _eagerly(broker.join(news, Member("ann", None, 1)))
    members = await _eagerly(broker.members(news))
    answers = await _eagerly(broker.survey(b"{}"))

    assert page.publications == (publication,)
    assert members == [Member("ann", None, 1)]
    assert len(answers) == 1


async def _eagerly(call: Coroutine[Any, Any, T]) -> T:
    """``call`` started eagerly from a loop callback, as the server starts requests."""
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[T] = loop.create_future()

    async def run() -> None:
        try:
            outcome.set_result(await call)
        except Exception as exc:
            outcome.set_exception(exc)

    loop.call_soon(start_eagerly, run())
    return await outcome


async def test_a_broker_has_a_name(broker: Broker) -> None:
    assert broker.name


async def test_a_started_broker_is_connected(broker: Broker) -> None:
    assert broker.connected


# Presence.


async def test_a_users_first_join_is_told_once_and_their_count_is_kept(
    broker: Broker, events: RecordingEvents, fresh: Fresh
) -> None:
    room = fresh("room")
    await broker.subscribe(room)

    await broker.join(room, Member("ann", {"name": "Ann"}, 1))
    await broker.join(room, Member("ann", {"name": "Ann"}, 2))  # a second tab
    await wait_until(lambda: events.joins, message="the join")

    assert events.joins == [(room, "ann", {"name": "Ann"})]
    assert await broker.members(room) == [Member("ann", {"name": "Ann"}, 2)]


async def test_members_are_sorted_by_user_and_kept_per_channel(
    broker: Broker, fresh: Fresh
) -> None:
    room, other = fresh("room"), fresh("other")

    await broker.join(room, Member("bob", None, 1))
    await broker.join(room, Member("ann", {"name": "Ann"}, 1))
    await broker.join(other, Member("cat", None, 3))

    assert [m.user for m in await broker.members(room)] == ["ann", "bob"]
    assert await broker.members(other) == [Member("cat", None, 3)]
    assert await broker.members(fresh("empty")) == []


async def test_leaving_is_told_with_the_users_info_and_ends_membership(
    broker: Broker, events: RecordingEvents, fresh: Fresh
) -> None:
    room = fresh("room")
    await broker.subscribe(room)
    await broker.join(room, Member("ann", {"name": "Ann"}, 1))
    await broker.join(room, Member("bob", None, 1))

    await broker.leave(room, "ann")
    await wait_until(lambda: events.leaves, message="the leave")

    assert events.leaves == [(room, "ann", {"name": "Ann"})]
    assert await broker.members(room) == [Member("bob", None, 1)]


async def test_leaving_a_channel_one_never_joined_tells_nobody(
    broker: Broker, events: RecordingEvents, fresh: Fresh
) -> None:
    room = fresh("room")
    await broker.subscribe(room)

    await broker.leave(room, "nobody")
    await broker.join(room, Member("ann", None, 1))  # something that is told, after
    await wait_until(lambda: events.joins, message="the join after")

    assert events.leaves == []


async def test_a_join_then_leave_in_a_row_end_with_no_member(
    broker: Broker, events: RecordingEvents, fresh: Fresh
) -> None:
    room = fresh("room")
    await broker.subscribe(room)

    for _ in range(5):
        await broker.join(room, Member("ann", None, 1))
        await broker.leave(room, "ann")
    await wait_until(lambda: len(events.leaves) >= 5, message="five leaves")

    assert await broker.members(room) == []
    assert len(events.joins) == 5


# Surveys.


async def test_a_survey_is_answered_by_this_node(broker: Broker, events: RecordingEvents) -> None:
    events.answer = b'[["news",3]]'

    answers = await broker.survey(b'{"ask":"channels"}')

    assert answers == [b'[["news",3]]']
    assert events.questions == [b'{"ask":"channels"}']
