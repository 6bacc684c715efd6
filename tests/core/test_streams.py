"""Opening a stream over channels: what to replay, in which order, from which cursor.

Over the real Node and MemoryBroker; the broker's clock is injected to set each
publication's time, and reading history can be made to move live delivery on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from pushwire.brokers.memory import MemoryBroker
from pushwire.brokers.memory_history import MemoryHistoryStore
from pushwire.core.broker import HistoryOptions
from pushwire.core.channels import ChannelRules
from pushwire.core.counters import NodeCounters
from pushwire.core.history import HistoryPage, StreamPosition, encode_stream_cursor
from pushwire.core.node import Node
from pushwire.core.streams import ReplayStep, open_stream
from pushwire.errors import InvalidCursorError


class Times:
    """The broker's clock: publication times are whatever the test sets."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class MovingBroker(MemoryBroker):
    """The memory broker; a recovery's read of a channel's history can run a hook first.

    Opening a channel reads its history too (``since`` None, ``limit`` 0); hooks
    run only for the reads recovery makes (``since`` given).
    """

    def __init__(self, times: Times) -> None:
        super().__init__(MemoryHistoryStore(), clock=times)
        self.while_recovering: dict[str, Callable[[], Awaitable[None]]] = {}
        self.recovery_reads: list[str] = []
        self.refuse_subscribe: set[str] = set()

    async def history(
        self, channel: str, *, since: StreamPosition | None, limit: int, options: HistoryOptions
    ) -> HistoryPage:
        page = await super().history(channel, since=since, limit=limit, options=options)
        if since is not None:
            self.recovery_reads.append(channel)
            hook = self.while_recovering.get(channel)
            if hook is not None:
                await hook()
        return page

    async def subscribe(self, channel: str) -> None:
        if channel in self.refuse_subscribe:
            raise ConnectionError(f"cannot subscribe to {channel!r}")


@pytest.fixture
def times() -> Times:
    return Times()


@pytest.fixture
def broker(times: Times) -> MovingBroker:
    return MovingBroker(times)


@pytest.fixture
async def node(broker: MovingBroker, times: Times) -> AsyncIterator[Node]:
    # The node's clock is the broker's, as in a real server (history TTLs compare them).
    node = Node(broker, ChannelRules([]), counters=NodeCounters(clock=times))
    await node.start()
    yield node
    await node.close()


async def _top(node: Node, channel: str) -> StreamPosition:
    return (await node.history(channel, limit=0)).top


async def _publish(node: Node, times: Times, channel: str, data: str, at: float) -> StreamPosition:
    times.now = at
    return (await node.publish(channel, data)).position


def _replayed(steps: tuple[ReplayStep, ...]) -> list[tuple[str, bytes | None, str]]:
    return [
        (step.channel, step.publication.data if step.publication else None, step.cursor)
        for step in steps
    ]


async def test_without_a_cursor_nothing_is_replayed_and_live_delivery_starts_at_the_top(
    node: Node, times: Times
) -> None:
    await _publish(node, times, "news", "one", at=1)
    top = await _publish(node, times, "news", "two", at=2)

    start = await open_stream(node, ["news"], None)

    assert start.steps == ()
    assert start.cursor == top.cursor
    assert [state.name for state in start.states] == ["news"]
    assert start.states[0].holds == 1  # held until the caller joins its sink


async def test_a_cursor_replays_what_was_missed_in_order_with_a_cursor_per_step(
    node: Node, times: Times
) -> None:
    seen = await _publish(node, times, "news", "one", at=1)
    second = await _publish(node, times, "news", "two", at=2)
    third = await _publish(node, times, "news", "three", at=3)

    start = await open_stream(node, ["news"], seen.cursor)

    assert _replayed(start.steps) == [
        ("news", b'"two"', second.cursor),
        ("news", b'"three"', third.cursor),
    ]
    assert [step.position for step in start.steps] == [second, third]
    assert start.cursor == third.cursor
    assert start.gaps == []


async def test_a_cursor_at_the_top_replays_nothing(node: Node, times: Times) -> None:
    top = await _publish(node, times, "news", "one", at=1)

    start = await open_stream(node, ["news"], top.cursor)

    assert start.steps == ()
    assert start.cursor == top.cursor


async def test_a_cursor_of_another_epoch_is_a_gap_on_that_channel_only(
    node: Node, times: Times
) -> None:
    alerts_seen = await _top(node, "alerts")
    alerts_new = await _publish(node, times, "alerts", "siren", at=1)
    news_top = await _publish(node, times, "news", "one", at=2)
    old_epoch = StreamPosition("0dd0e90c", news_top.offset)

    start = await open_stream(
        node, ["alerts", "news"], encode_stream_cursor([alerts_seen, old_epoch])
    )

    assert start.gaps == ["news"]
    assert _replayed(start.steps) == [
        ("news", None, f"{alerts_seen.cursor}.{news_top.cursor}"),
        ("alerts", b'"siren"', f"{alerts_new.cursor}.{news_top.cursor}"),
    ]
    assert start.steps[0].position == news_top
    assert start.cursor == f"{alerts_new.cursor}.{news_top.cursor}"


async def test_channels_are_merged_by_time_yet_each_keeps_its_offset_order(
    node: Node, times: Times
) -> None:
    a0, b0 = await _top(node, "a"), await _top(node, "b")
    a1 = await _publish(node, times, "a", "a1", at=10)
    b1 = await _publish(node, times, "b", "b1", at=5)
    a2 = await _publish(node, times, "a", "a2", at=3)  # the broker's clock stepped back
    b2 = await _publish(node, times, "b", "b2", at=20)

    start = await open_stream(node, ["a", "b"], encode_stream_cursor([a0, b0]))

    assert _replayed(start.steps) == [
        ("b", b'"b1"', f"{a0.cursor}.{b1.cursor}"),
        ("a", b'"a1"', f"{a1.cursor}.{b1.cursor}"),
        ("a", b'"a2"', f"{a2.cursor}.{b1.cursor}"),
        ("b", b'"b2"', f"{a2.cursor}.{b2.cursor}"),
    ]
    assert start.cursor == f"{a2.cursor}.{b2.cursor}"


async def test_publications_at_the_same_time_replay_in_channel_order(
    node: Node, times: Times
) -> None:
    a0, b0 = await _top(node, "a"), await _top(node, "b")
    await _publish(node, times, "b", "b1", at=7)
    await _publish(node, times, "a", "a1", at=7)

    start = await open_stream(node, ["a", "b"], encode_stream_cursor([a0, b0]))

    assert [step.channel for step in start.steps] == ["a", "b"]


def _publish_to(node: Node, channel: str) -> Callable[[], Awaitable[None]]:
    async def publish() -> None:
        await node.publish(channel, "live")
        await asyncio.sleep(0)  # one loop iteration: the hub's flush delivers it

    return publish


async def test_live_delivery_moving_while_recovering_starts_the_replay_over(
    node: Node, broker: MovingBroker, times: Times
) -> None:
    a0, b0 = await _top(node, "a"), await _top(node, "b")
    a1 = await _publish(node, times, "a", "a1", at=1)
    b1 = await _publish(node, times, "b", "b1", at=2)
    moves_once = _publish_to(node, "a")

    async def move_a_once() -> None:
        del broker.while_recovering["b"]
        await moves_once()

    broker.while_recovering["b"] = move_a_once
    times.now = 3  # the live publication's time
    start = await open_stream(node, ["a", "b"], encode_stream_cursor([a0, b0]))

    a_live = StreamPosition(a1.epoch, 2)
    # Round two reads what "a" published meanwhile; "b" has not moved, so the run read
    # for it in round one serves again (core.replay_window).
    assert broker.recovery_reads == ["a", "b", "a"]
    assert _replayed(start.steps) == [
        ("a", b'"a1"', f"{a1.cursor}.{b0.cursor}"),
        ("b", b'"b1"', f"{a1.cursor}.{b1.cursor}"),
        ("a", b'"live"', f"{a_live.cursor}.{b1.cursor}"),
    ]
    assert start.cursor == f"{a_live.cursor}.{b1.cursor}"


async def test_live_delivery_that_never_stands_still_fails_the_open_and_releases_every_channel(
    node: Node, broker: MovingBroker, times: Times
) -> None:
    a0, b0 = await _top(node, "a"), await _top(node, "b")
    await _publish(node, times, "b", "b1", at=1)
    # Each read of one moves the other on: every round reads both (a recovery window
    # serves a channel that has not moved without a read, core.replay_window).
    broker.while_recovering["a"] = _publish_to(node, "b")
    broker.while_recovering["b"] = _publish_to(node, "a")

    with pytest.raises(TimeoutError, match="kept moving"):
        await open_stream(node, ["a", "b"], encode_stream_cursor([a0, b0]))

    assert broker.recovery_reads.count("b") == 5  # once per attempt
    assert node.hub.channel("a") is None
    assert node.hub.channel("b") is None


async def test_a_channel_that_cannot_be_opened_releases_those_already_opened(
    node: Node, broker: MovingBroker
) -> None:
    broker.refuse_subscribe.add("b")

    with pytest.raises(ConnectionError):
        await open_stream(node, ["a", "b"], None)

    assert node.hub.channel("a") is None
    assert node.hub.channel("b") is None


async def test_a_cursor_for_another_number_of_channels_is_refused_before_opening_any(
    node: Node, times: Times
) -> None:
    top = await _publish(node, times, "a", "a1", at=1)

    with pytest.raises(InvalidCursorError):
        await open_stream(node, ["a", "b"], top.cursor)

    assert node.hub.channels() == []
