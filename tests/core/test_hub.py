"""The hub's feeds and sinks, and its once-per-iteration fan-out.

No event loop: the hub's ``call_soon`` is a list that each test drains by hand
(one drain is one loop iteration), and formats and sinks record what they get.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pushwire.core.counters import NodeCounters
from pushwire.core.history import Gap, Publication, StreamPosition
from pushwire.core.hub import Batch, ChannelState, ChannelStatistics, Feed, Hub
from pushwire.errors import GOING_AWAY, INTERNAL_ERROR, SLOW_CONSUMER, Disconnect

START = StreamPosition("e0", 0)


class Soon:
    """The hub's ``call_soon``: callbacks wait here until :meth:`run_iteration`."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[], None]] = []

    def __call__(self, callback: Callable[[], None]) -> None:
        self.callbacks.append(callback)

    def run_iteration(self) -> None:
        callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            callback()


class Format:
    """A wire format that writes ``name:channel:offsets`` and counts its encodings."""

    def __init__(self, name: str = "f", *, answers_once: bool = False) -> None:
        self.name = name
        self.answers_once = answers_once
        self.transport = name
        self.encoded: list[tuple[str, list[int]]] = []
        self.messages: list[list[bytes | None]] = []

    def encode(self, batch: Batch, feed: Feed) -> bytes:
        offsets = [item.position.offset for item in batch.items]
        self.encoded.append((batch.state.name, offsets))
        self.messages.append(batch.messages)
        return f"{self.name}:{batch.state.name}:{','.join(map(str, offsets))}".encode()


class BrokenFormat(Format):
    def encode(self, batch: Batch, feed: Feed) -> bytes:
        raise RuntimeError("encoder bug")


class Sink:
    """A connection that records writes and closes; it can refuse or fail writes."""

    def __init__(self, *, accepts: bool = True, fails: bool = False) -> None:
        self.accepts = accepts
        self.fails = fails
        self.written: list[bytes] = []
        self.closed: list[Disconnect] = []

    def write(self, data: bytes) -> bool:
        if self.fails:
            raise ConnectionError("write failed")
        self.written.append(data)
        return self.accepts

    def close(self, reason: Disconnect) -> None:
        self.closed.append(reason)


@pytest.fixture
def soon() -> Soon:
    return Soon()


@pytest.fixture
def idle() -> list[str]:
    return []


@pytest.fixture
def hub(soon: Soon, idle: list[str]) -> Hub:
    return Hub(soon, idle.append)


def _publication(channel: str, offset: int, epoch: str = "e0") -> Publication:
    return Publication(channel, StreamPosition(epoch, offset), b"%d" % offset)


def _channel(hub: Hub, name: str) -> ChannelState:
    """A channel as subscribers get it: opened, then joined, then released (see below)."""
    return hub.open_channel(name, START)


def _listen(hub: Hub, wire_format: Format, state: ChannelState, *sinks: Sink) -> Feed:
    feed = hub.feed(wire_format, (state,))
    for sink in sinks:
        hub.join(wire_format, (state,), sink)
    return feed


def test_a_batch_is_encoded_once_per_feed_however_many_sinks(hub: Hub, soon: Soon) -> None:
    wire_format = Format()
    news = _channel(hub, "news")
    sinks = [Sink() for _ in range(5)]
    _listen(hub, wire_format, news, *sinks)

    hub.enqueue(news, _publication("news", 1))
    soon.run_iteration()

    assert wire_format.encoded == [("news", [1])]
    assert [sink.written for sink in sinks] == [[b"f:news:1"]] * 5


def test_a_burst_in_one_iteration_is_one_write_per_sink(hub: Hub, soon: Soon) -> None:
    wire_format = Format()
    news = _channel(hub, "news")
    sink = Sink()
    _listen(hub, wire_format, news, sink)

    for offset in (1, 2, 3):
        hub.enqueue(news, _publication("news", offset))
    scheduled = len(soon.callbacks)
    soon.run_iteration()

    assert scheduled == 1
    assert wire_format.encoded == [("news", [1, 2, 3])]
    assert sink.written == [b"f:news:1,2,3"]
    assert news.delivered == StreamPosition("e0", 3)


def test_the_next_iteration_is_a_new_batch(hub: Hub, soon: Soon) -> None:
    news = _channel(hub, "news")
    sink = Sink()
    _listen(hub, Format(), news, sink)
    hub.enqueue(news, _publication("news", 1))
    soon.run_iteration()

    hub.enqueue(news, _publication("news", 2))
    soon.run_iteration()

    assert sink.written == [b"f:news:1", b"f:news:2"]


def test_feeds_of_two_channels_are_independent(hub: Hub, soon: Soon) -> None:
    wire_format = Format()
    news, sport = _channel(hub, "news"), _channel(hub, "sport")
    news_sink, sport_sink = Sink(), Sink()
    _listen(hub, wire_format, news, news_sink)
    _listen(hub, wire_format, sport, sport_sink)

    hub.enqueue(news, _publication("news", 1))
    soon.run_iteration()
    hub.enqueue(sport, _publication("sport", 1))
    hub.enqueue(news, _publication("news", 2))
    soon.run_iteration()

    assert news_sink.written == [b"f:news:1", b"f:news:2"]
    assert sport_sink.written == [b"f:sport:1"]


def test_a_message_object_is_made_once_for_every_format(hub: Hub, soon: Soon) -> None:
    first, second = Format("a"), Format("b")
    news = _channel(hub, "news")
    _listen(hub, first, news, Sink())
    _listen(hub, second, news, Sink())

    hub.enqueue(news, _publication("news", 1))
    hub.enqueue(news, Gap("news", StreamPosition("e0", 5)))
    soon.run_iteration()

    [messages] = first.messages
    assert messages == [b'{"channel":"news","id":"e0-1","data":1}', None]
    assert second.messages[0][0] is messages[0]


def test_a_sink_whose_write_raises_harms_no_other_sink_or_channel(
    hub: Hub, soon: Soon, caplog: pytest.LogCaptureFixture
) -> None:
    wire_format = Format()
    news, sport = _channel(hub, "news"), _channel(hub, "sport")
    broken, healthy = Sink(fails=True), Sink()
    sport_sink = Sink()
    _listen(hub, wire_format, news, broken, healthy)
    _listen(hub, wire_format, sport, sport_sink)

    hub.enqueue(news, _publication("news", 1))
    hub.enqueue(sport, _publication("sport", 1))
    soon.run_iteration()

    assert healthy.written == [b"f:news:1"]
    assert sport_sink.written == [b"f:sport:1"]
    assert broken.closed == [INTERNAL_ERROR]
    assert healthy.closed == []
    assert "write to a subscriber failed" in caplog.text


def test_a_sink_over_its_buffer_is_closed_as_a_slow_consumer(hub: Hub, soon: Soon) -> None:
    slow, fast = Sink(accepts=False), Sink()
    news = _channel(hub, "news")
    _listen(hub, Format(), news, slow, fast)

    hub.enqueue(news, _publication("news", 1))
    soon.run_iteration()

    assert slow.closed == [SLOW_CONSUMER]
    assert fast.closed == []
    assert fast.written == [b"f:news:1"]


def test_a_format_whose_encode_raises_harms_no_other_feed(
    hub: Hub, soon: Soon, caplog: pytest.LogCaptureFixture
) -> None:
    news, sport = _channel(hub, "news"), _channel(hub, "sport")
    unlucky, same_channel, other_channel = Sink(), Sink(), Sink()
    _listen(hub, BrokenFormat(), news, unlucky)
    _listen(hub, Format(), news, same_channel)
    _listen(hub, BrokenFormat("b"), sport, Sink())
    _listen(hub, Format(), sport, other_channel)

    hub.enqueue(news, _publication("news", 1))
    hub.enqueue(sport, _publication("sport", 1))
    soon.run_iteration()

    assert unlucky.written == []
    assert same_channel.written == [b"f:news:1"]
    assert other_channel.written == [b"f:sport:1"]
    assert news.delivered == StreamPosition("e0", 1)
    assert "encoding for 'news' failed" in caplog.text


def test_a_feed_that_answers_once_is_emptied_and_released_after_one_batch(
    hub: Hub, soon: Soon, idle: list[str]
) -> None:
    polls = Format("poll", answers_once=True)
    news = _channel(hub, "news")
    first, second = Sink(), Sink()
    feed = _listen(hub, polls, news, first, second)
    hub.release(news)

    hub.enqueue(news, _publication("news", 1))
    soon.run_iteration()

    assert first.written == second.written == [b"poll:news:1"]
    assert feed.sinks == set()
    assert news.feeds == {}
    assert hub.channel("news") is None
    assert idle == ["news"]


def test_a_released_answer_once_feed_gets_nothing_more(hub: Hub, soon: Soon) -> None:
    polls = Format("poll", answers_once=True)
    news = _channel(hub, "news")
    answered = Sink()
    _listen(hub, polls, news, answered)
    hub.enqueue(news, _publication("news", 1))
    soon.run_iteration()

    hub.enqueue(news, _publication("news", 2))
    soon.run_iteration()

    assert answered.written == [b"poll:news:1"]
    assert polls.encoded == [("news", [1])]


def test_a_held_channel_survives_another_feeds_leave_and_goes_after_release(
    hub: Hub, idle: list[str]
) -> None:
    joined = _channel(hub, "news")
    sink = Sink()
    feed = _listen(hub, Format(), joined, sink)
    hub.release(joined)
    held = hub.open_channel("news", START)  # a second subscriber, still recovering

    hub.leave(feed, sink)
    survived = hub.channel("news")
    idle_before_release = list(idle)
    hub.release(held)

    assert survived is held is joined
    assert idle_before_release == []
    assert hub.channel("news") is None
    assert idle == ["news"]


def test_a_channel_goes_only_when_every_hold_is_given_back(hub: Hub, idle: list[str]) -> None:
    first = hub.open_channel("news", START)
    second = hub.open_channel("news", StreamPosition("other", 9))

    hub.release(first)
    after_one = hub.channel("news")
    hub.release(second)

    assert second is first
    assert first.delivered == START  # the existing state, not one at the new position
    assert after_one is first
    assert hub.channel("news") is None
    assert idle == ["news"]


def test_a_forgotten_channel_drops_what_it_had_queued(hub: Hub, soon: Soon) -> None:
    news = hub.open_channel("news", START)
    hub.enqueue(news, _publication("news", 1))

    hub.release(news)
    soon.run_iteration()

    assert news.pending == []
    assert news.delivered == START


def test_statistics_count_the_sinks_of_every_feed_of_a_channel(hub: Hub) -> None:
    sse, ws = Format("sse"), Format("ws")
    alerts, news = _channel(hub, "alerts"), _channel(hub, "news")
    _listen(hub, ws, news, Sink(), Sink())
    _listen(hub, sse, news, Sink())
    hub.join(sse, (alerts, news), Sink())
    hub.release_all([alerts, news])

    statistics = hub.statistics()

    assert statistics == [ChannelStatistics("alerts", 1), ChannelStatistics("news", 4)]


def test_the_cursor_of_a_one_channel_feed_is_the_channels_cursor(hub: Hub) -> None:
    news = hub.open_channel("news", StreamPosition("e0", 4))
    feed = hub.feed(Format(), (news,))

    at_seven = feed.cursor_at(news, StreamPosition("e0", 7))

    assert at_seven == "e0-7"
    assert feed.cursor() == "e0-4"


def test_the_cursor_of_a_feed_over_channels_moves_only_the_named_channel(hub: Hub) -> None:
    alerts = hub.open_channel("alerts", StreamPosition("aa", 2))
    news = hub.open_channel("news", StreamPosition("bb", 4))
    feed = hub.feed(Format(), (alerts, news))

    at_seven = feed.cursor_at(news, StreamPosition("bb", 7))
    alerts_at_three = feed.cursor_at(alerts, StreamPosition("aa", 3))

    assert at_seven == "aa-2.bb-7"
    assert alerts_at_three == "aa-3.bb-4"
    assert feed.cursor() == "aa-2.bb-4"


def test_close_all_closes_every_sink_with_the_reason(hub: Hub) -> None:
    alerts, news = _channel(hub, "alerts"), _channel(hub, "news")
    sinks = [Sink(), Sink(), Sink()]
    _listen(hub, Format(), news, sinks[0], sinks[1])
    hub.join(Format("sse"), (alerts, news), sinks[2])

    hub.close_all(GOING_AWAY)

    assert [sink.closed for sink in sinks] == [[GOING_AWAY]] * 3


def test_deliveries_and_bytes_are_counted_per_transport_once_per_feed(hub: Hub, soon: Soon) -> None:
    news = _channel(hub, "news")
    _listen(hub, Format("ws"), news, Sink(), Sink(), Sink())
    _listen(hub, Format("sse"), news, Sink())

    hub.enqueue(news, _publication("news", 1))
    hub.enqueue(news, _publication("news", 2))
    soon.run_iteration()

    ws, sse = hub.counters.transports["ws"], hub.counters.transports["sse"]
    assert (ws.deliveries, ws.bytes_written) == (6, 3 * len(b"ws:news:1,2"))
    assert (sse.deliveries, sse.bytes_written) == (2, len(b"sse:news:1,2"))
    assert hub.subscription_count() == 4
    assert hub.channel_count() == 1


def test_a_slow_consumer_is_counted_and_still_counts_as_delivered(hub: Hub, soon: Soon) -> None:
    news = _channel(hub, "news")
    _listen(hub, Format(), news, Sink(accepts=False), Sink())

    hub.enqueue(news, _publication("news", 1))
    soon.run_iteration()

    counters = hub.counters.transports["f"]
    assert counters.slow_consumers == 1
    assert counters.deliveries == 2  # the bytes were written; the buffer was the problem


def test_one_fanout_time_is_sampled_per_batch_from_its_oldest_publication(soon: Soon) -> None:
    counters = NodeCounters(clock=lambda: 100.25)
    hub = Hub(soon, lambda channel: None, counters=counters)
    news = _channel(hub, "news")
    _listen(hub, Format(), news, Sink(), Sink())

    for offset, published_at in ((1, 100.0), (2, 100.2)):
        position = StreamPosition("e0", offset)
        hub.enqueue(news, Publication("news", position, b"1", time=published_at))
    soon.run_iteration()

    assert counters.fanout_seconds.count == 1
    assert counters.fanout_seconds.sum == pytest.approx(0.25)
