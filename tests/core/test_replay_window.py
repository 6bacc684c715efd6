"""Recovery windows: subscribers coming back together share history reads, and get
exactly what history alone would have given them."""

from __future__ import annotations

import asyncio

import pytest

from pushwire.core.broker import HistoryOptions
from pushwire.core.channels import ChannelRule, ChannelRules
from pushwire.core.history import HistoryPage, Publication, StreamPosition
from pushwire.core.hub import ChannelState
from pushwire.core.node import Node
from pushwire.core.recovery import Recovery, recover
from pushwire.core.replay_window import (
    KEEP_SECONDS,
    MAX_WINDOW_BYTES,
    MAX_WINDOWS,
    ReplayWindows,
)
from pushwire.testing import FakeClock
from tests.relaying_broker import RelayingBroker


def publications(
    epoch: str, first: int, last: int, time: float = 1000.0
) -> tuple[Publication, ...]:
    return tuple(
        Publication("c", StreamPosition(epoch, offset), b"%d" % offset, None, time)
        for offset in range(first, last + 1)
    )


def offsets(run: tuple[Publication, ...] | None) -> list[int] | None:
    return None if run is None else [p.position.offset for p in run]


# The windows alone.


def test_a_run_inside_the_window_is_handed_out_without_a_read() -> None:
    windows = ReplayWindows(FakeClock().time)
    windows.add("c", StreamPosition("e", 10), publications("e", 11, 20), keep=100, oldest_time=0)

    assert offsets(windows.take("c", StreamPosition("e", 12), StreamPosition("e", 15), 0)) == [
        13,
        14,
        15,
    ]
    assert offsets(windows.take("c", StreamPosition("e", 10), StreamPosition("e", 20), 0)) == list(
        range(11, 21)
    )


@pytest.mark.parametrize(
    ("since", "upto"),
    [
        (StreamPosition("e", 9), StreamPosition("e", 15)),  # starts before the window
        (StreamPosition("e", 12), StreamPosition("e", 21)),  # ends after it
        (StreamPosition("x", 12), StreamPosition("x", 15)),  # another epoch
        (StreamPosition("e", 12), StreamPosition("x", 15)),  # the channel's epoch changed
        (StreamPosition("e", 15), StreamPosition("e", 15)),  # nothing missed
        (StreamPosition("e", 16), StreamPosition("e", 15)),  # ahead of live delivery
    ],
)
def test_anything_the_window_does_not_wholly_hold_is_refused(
    since: StreamPosition, upto: StreamPosition
) -> None:
    windows = ReplayWindows(FakeClock().time)
    windows.add("c", StreamPosition("e", 10), publications("e", 11, 20), keep=100, oldest_time=0)

    assert windows.take("c", since, upto, 0) is None
    assert windows.take("other", StreamPosition("e", 12), StreamPosition("e", 15), 0) is None


def test_a_run_past_the_history_ttl_is_refused() -> None:
    windows = ReplayWindows(FakeClock().time)
    windows.add(
        "c", StreamPosition("e", 0), publications("e", 1, 5, time=100.0), keep=100, oldest_time=0
    )

    assert windows.take("c", StreamPosition("e", 0), StreamPosition("e", 5), 100.5) is None
    assert windows.take("c", StreamPosition("e", 0), StreamPosition("e", 5), 99.5) is not None


def test_a_read_that_continues_the_window_extends_it_and_the_oldest_go_past_keep() -> None:
    windows = ReplayWindows(FakeClock().time)
    windows.add("c", StreamPosition("e", 0), publications("e", 1, 5), keep=8, oldest_time=0)

    assert windows.resume_point("c", StreamPosition("e", 3)) == StreamPosition("e", 5)
    assert windows.resume_point("c", StreamPosition("e", 7)) == StreamPosition("e", 5)  # past it
    assert windows.resume_point("c", StreamPosition("e", -1)) is None  # before it
    assert windows.resume_point("c", StreamPosition("x", 3)) is None  # another epoch
    windows.add("c", StreamPosition("e", 5), publications("e", 6, 10), keep=8, oldest_time=0)

    assert offsets(windows.take("c", StreamPosition("e", 2), StreamPosition("e", 10), 0)) == list(
        range(3, 11)
    )
    assert windows.take("c", StreamPosition("e", 1), StreamPosition("e", 10), 0) is None


def test_publications_past_the_history_ttl_are_not_held_but_the_newest_is() -> None:
    windows = ReplayWindows(FakeClock().time)
    old = publications("e", 1, 5, time=100.0)
    new = publications("e", 6, 8, time=200.0)
    windows.add("c", StreamPosition("e", 0), old + new, keep=100, oldest_time=150.0)

    assert windows.take("c", StreamPosition("e", 4), StreamPosition("e", 8), 0) is None  # cut
    assert offsets(windows.take("c", StreamPosition("e", 5), StreamPosition("e", 8), 0)) == [
        6,
        7,
        8,
    ]
    # All of it past the TTL: the newest stays, so the window still knows where it ends.
    windows.add("d", StreamPosition("e", 0), old, keep=100, oldest_time=150.0)
    assert windows.resume_point("d", StreamPosition("e", 4)) == StreamPosition("e", 5)
    assert windows.resume_point("d", StreamPosition("e", 3)) is None


def test_a_window_holds_at_most_max_window_bytes_of_the_newest_payload() -> None:
    windows = ReplayWindows(FakeClock().time)
    big = MAX_WINDOW_BYTES // 4 + 1  # so four do not fit, three do
    run = tuple(
        Publication("c", StreamPosition("e", n), b"x" * big, None, 1000.0) for n in range(1, 11)
    )
    windows.add("c", StreamPosition("e", 0), run[:6], keep=100, oldest_time=0)
    windows.add("c", StreamPosition("e", 6), run[6:], keep=100, oldest_time=0)

    assert offsets(windows.take("c", StreamPosition("e", 7), StreamPosition("e", 10), 0)) == [
        8,
        9,
        10,
    ]
    assert windows.take("c", StreamPosition("e", 6), StreamPosition("e", 10), 0) is None
    # One publication larger than the bound is still held: a window is never empty.
    huge = (Publication("c", StreamPosition("e", 1), b"x" * (MAX_WINDOW_BYTES + 1)),)
    windows.add("h", StreamPosition("e", 0), huge, keep=100, oldest_time=0)
    assert windows.take("h", StreamPosition("e", 0), StreamPosition("e", 1), 0) == huge


def test_a_read_that_does_not_continue_the_window_replaces_it() -> None:
    windows = ReplayWindows(FakeClock().time)
    windows.add("c", StreamPosition("e", 10), publications("e", 11, 20), keep=100, oldest_time=0)
    windows.add("c", StreamPosition("e", 2), publications("e", 3, 12), keep=100, oldest_time=0)

    assert windows.take("c", StreamPosition("e", 12), StreamPosition("e", 15), 0) is None
    assert offsets(windows.take("c", StreamPosition("e", 2), StreamPosition("e", 4), 0)) == [3, 4]


def test_windows_unused_for_a_while_are_dropped_and_their_number_is_bounded() -> None:
    clock = FakeClock()
    windows = ReplayWindows(clock.time)
    windows.add("old", StreamPosition("e", 0), publications("e", 1, 3), keep=100, oldest_time=0)
    clock.advance(KEEP_SECONDS + 1)
    for n in range(MAX_WINDOWS + 10):
        windows.add(
            f"c{n}", StreamPosition("e", 0), publications("e", 1, 3), keep=100, oldest_time=0
        )

    assert len(windows) == MAX_WINDOWS
    assert windows.take("old", StreamPosition("e", 0), StreamPosition("e", 3), 0) is None
    assert windows.take("c0", StreamPosition("e", 0), StreamPosition("e", 3), 0) is None
    assert windows.take(f"c{MAX_WINDOWS + 9}", StreamPosition("e", 0), StreamPosition("e", 3), 0)


# The node, recovering through them.


class CountingBroker(RelayingBroker):
    """The embedded broker, counting the history reads that reach it."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[StreamPosition | None] = []

    async def history(
        self, channel: str, *, since: StreamPosition | None, limit: int, options: HistoryOptions
    ) -> HistoryPage:
        self.reads.append(since)
        return await super().history(channel, since=since, limit=limit, options=options)


async def _node(history_size: int = 100) -> tuple[Node, CountingBroker, ChannelState]:
    broker = CountingBroker()
    node = Node(broker, ChannelRules([ChannelRule(history_size=history_size)]))
    await node.start()
    state = await node.open_channel("c")  # held for the test: live delivery goes on
    return node, broker, state


async def _publish(node: Node, count: int) -> list[Publication]:
    out = [await node.publish("c", n) for n in range(count)]
    await asyncio.sleep(0)  # let the hub deliver, so live delivery is at the top
    return out


async def _fresh(node: Node, state: ChannelState, since: StreamPosition) -> Recovery:
    """What history alone says, without any window."""
    page = await node.history("c", since=since, limit=1000)
    return recover(since, page, state.delivered)


async def test_many_subscribers_with_one_cursor_cost_one_read() -> None:
    node, broker, state = await _node()
    published = await _publish(node, 30)
    since = published[9].position
    broker.reads.clear()

    found = [await node.recover(state, since) for _ in range(1000)]

    assert len(broker.reads) == 1
    assert all(f == found[0] for f in found)
    assert found[0] == await _fresh(node, state, since)
    assert [p.position.offset for p in found[0].publications] == list(range(11, 31))


async def test_a_cursor_past_the_window_extends_it_and_keeps_it_whole() -> None:
    node, broker, state = await _node()
    published = await _publish(node, 10)
    await node.recover(state, published[1].position)  # the window: 3..10
    more = await _publish(node, 10)
    broker.reads.clear()

    late = await node.recover(state, more[4].position)  # 15: past the window's end
    early = await node.recover(state, published[1].position)  # still served

    assert broker.reads == [published[-1].position]  # 11..20, once
    assert late == await _fresh(node, state, more[4].position)
    assert early == await _fresh(node, state, published[1].position)


async def test_later_subscribers_read_only_what_was_published_since() -> None:
    node, broker, state = await _node()
    published = await _publish(node, 30)
    await node.recover(state, published[9].position)
    more = await _publish(node, 5)
    broker.reads.clear()

    found = await node.recover(state, published[19].position)

    assert broker.reads == [published[-1].position]  # from the window's end only
    assert found == await _fresh(node, state, published[19].position)
    assert found.publications[-1] == more[-1]


async def test_every_cursor_gets_what_history_alone_would_give() -> None:
    node, _broker, state = await _node(history_size=20)
    published = await _publish(node, 15)
    await node.recover(state, published[2].position)
    await _publish(node, 20)  # history keeps only the last 20 of 35

    epoch = state.delivered.epoch
    for offset in range(0, 36):
        since = StreamPosition(epoch, offset)
        assert await node.recover(state, since) == await _fresh(node, state, since), offset
    gone = await node.recover(state, published[2].position)
    assert gone == Recovery((), recovered=False)  # trimmed: a gap, window or not
