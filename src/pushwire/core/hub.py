"""The hub: which local connections listen to which channel, and the fan-out path.

Publications are not written when they arrive. They are queued on their channel,
and once per event-loop iteration the hub encodes the queued publications once
per feed and writes the same bytes to every sink of that feed: a burst of
publications to one channel becomes one write per subscriber, and no subscriber
gets a coroutine, a task or an encoding of its own.

A feed is one wire format over one set of channels (a WebSocket's channel, an
SSE stream's channels). The hub knows formats and sinks only by the protocols
below; each transport brings its own, so a new transport is a new module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from pushwire.core.counters import NodeCounters, TransportCounters
from pushwire.core.history import Gap, Publication, StreamPosition, encode_stream_cursor
from pushwire.core.presence import Join, Leave
from pushwire.errors import INTERNAL_ERROR, SLOW_CONSUMER, Disconnect
from pushwire.protocol.codec import message_json

__all__ = [
    "Batch",
    "ChannelState",
    "ChannelStatistics",
    "Feed",
    "Hub",
    "Item",
    "Sink",
    "WireFormat",
]

logger = logging.getLogger("pushwire.hub")

#: What the hub queues and fans out: a publication, a gap in the channel's stream, or a
#: user joining or leaving (ordered among the messages, taking no place in the stream).
Item = Publication | Gap | Join | Leave


class Sink(Protocol):
    """One client connection's end of a feed (see ``transports.base.Transport``)."""

    def write(self, data: bytes) -> bool:
        """Write ``data`` now; False if the connection's buffer is over its limit."""

    def close(self, reason: Disconnect) -> None:
        """End the connection for ``reason``, as this transport can."""


class WireFormat(Protocol):
    """How one transport encodes a batch of a channel's items for one feed."""

    #: A sink of this format takes one batch and is done (a long-poll response).
    answers_once: bool
    #: The transport this format is for (``"websocket"``, ``"sse"``...): the label of
    #: its sinks' delivery counters (``core.counters``).
    transport: str

    def encode(self, batch: Batch, feed: Feed) -> bytes:
        """The bytes every sink of ``feed`` receives for ``batch``."""


class Batch:
    """The items one channel flushes in one loop iteration, with their message objects.

    Each publication's message object (``protocol.codec.message_json``) is made
    once, when a format first asks, and shared by every format that splices it.
    """

    __slots__ = ("_messages", "items", "state")

    def __init__(self, state: ChannelState, items: list[Item]) -> None:
        self.state = state
        self.items = items
        self._messages: list[bytes | None] | None = None

    @property
    def messages(self) -> list[bytes | None]:
        """The message object of each item (None for a gap, a join or a leave)."""
        messages = self._messages
        if messages is None:
            messages = self._messages = [
                message_json(
                    item.channel, item.position.cursor, item.event, item.data, item.publisher
                )
                if isinstance(item, Publication)
                else None
                for item in self.items
            ]
        return messages


class ChannelState:
    """One channel with local subscribers: its feeds and its queue of pending items.

    ``delivered`` is the position of the last item handed to subscribers;
    recovery replays up to it and live delivery carries on after it.
    """

    __slots__ = ("delivered", "feeds", "holds", "name", "pending")

    def __init__(self, name: str, delivered: StreamPosition) -> None:
        self.name = name
        self.delivered = delivered
        self.feeds: dict[tuple[WireFormat, tuple[str, ...]], Feed] = {}
        self.pending: list[Item] = []
        #: Subscribers that opened the channel and have not joined a feed yet
        #: (they may be awaiting recovery): the channel stays while any does.
        self.holds = 0

    @property
    def accepted(self) -> StreamPosition:
        """The position of the newest item accepted for delivery (queued or delivered)."""
        return self.pending[-1].position if self.pending else self.delivered

    @property
    def is_idle(self) -> bool:
        return not self.feeds and not self.holds


class Feed:
    """Every sink receiving one wire format over the same channels (sorted by name).

    Their bytes carry the same cursors, so one encoding serves them all. ``counters``
    are its transport's, looked up once here rather than at every flush.
    """

    __slots__ = ("channels", "counters", "format", "key", "sinks", "states")

    def __init__(
        self,
        wire_format: WireFormat,
        states: tuple[ChannelState, ...],
        counters: TransportCounters | None = None,
    ) -> None:
        self.format = wire_format
        self.counters = counters or TransportCounters(wire_format.transport)
        self.states = states
        self.channels = tuple(state.name for state in states)
        self.key = (wire_format, self.channels)
        self.sinks: set[Sink] = set()

    def cursor(self) -> str:
        """The stream cursor covering everything this feed's sinks have been sent."""
        return encode_stream_cursor([state.delivered for state in self.states])

    def cursor_at(self, state: ChannelState, position: StreamPosition) -> str:
        """The stream cursor once ``state``'s channel reaches ``position`` (others as sent)."""
        if len(self.states) == 1:
            return position.cursor
        return encode_stream_cursor(
            [position if other is state else other.delivered for other in self.states]
        )


@dataclass(frozen=True, slots=True)
class ChannelStatistics:
    channel: str
    subscribers: int


class Hub:
    """Local subscriptions and the batched fan-out; knows nothing of sockets or brokers."""

    __slots__ = ("_call_soon", "_channels", "_dirty", "_feeds", "_on_idle", "counters")

    def __init__(
        self,
        call_soon: Callable[[Callable[[], None]], object],
        on_idle: Callable[[str], None],
        *,
        counters: NodeCounters | None = None,
    ) -> None:
        """
        Args:
            call_soon: schedules the flush for the end of this loop iteration.
            on_idle: called with a channel name when its last local subscriber leaves.
            counters: where deliveries, slow consumers and fan-out times are counted.
        """
        self.counters = counters or NodeCounters()
        self._call_soon = call_soon
        self._on_idle = on_idle
        self._channels: dict[str, ChannelState] = {}
        self._feeds: dict[tuple[WireFormat, tuple[str, ...]], Feed] = {}
        self._dirty: list[ChannelState] = []

    # Channels.

    def channel(self, name: str) -> ChannelState | None:
        return self._channels.get(name)

    def channels(self) -> list[ChannelState]:
        return list(self._channels.values())

    def open_channel(self, name: str, delivered: StreamPosition) -> ChannelState:
        """The channel's state, created at ``delivered`` if this node had none, held.

        The hold keeps the channel while its opener awaits (recovery, say): the
        opener joins a sink to it, then gives the hold back with :meth:`release`.
        """
        state = self._channels.get(name)
        if state is None:
            state = self._channels[name] = ChannelState(name, delivered)
        state.holds += 1
        return state

    def release(self, state: ChannelState) -> None:
        """Give back a hold from :meth:`open_channel`; forget ``state`` if now idle."""
        if state.holds:
            state.holds -= 1
        self._forget_if_idle(state)

    def release_all(self, states: Iterable[ChannelState]) -> None:
        for state in states:
            self.release(state)

    def _forget_if_idle(self, state: ChannelState) -> None:
        if state.is_idle and self._channels.get(state.name) is state:
            del self._channels[state.name]
            state.pending.clear()
            self._on_idle(state.name)

    # Feeds and sinks.

    def join(self, wire_format: WireFormat, states: tuple[ChannelState, ...], sink: Sink) -> Feed:
        """Add ``sink`` to the feed of ``wire_format`` over ``states`` (sorted by name)."""
        feed = self.feed(wire_format, states)
        feed.sinks.add(sink)
        return feed

    def feed(self, wire_format: WireFormat, states: tuple[ChannelState, ...]) -> Feed:
        """The feed of ``wire_format`` over ``states``, made and attached if new.

        A feed left without sinks must be given back with :meth:`release_feed`.
        """
        key = (wire_format, tuple(state.name for state in states))
        feed = self._feeds.get(key)
        if feed is None:
            counters = self.counters.transport(wire_format.transport)
            feed = self._feeds[key] = Feed(wire_format, states, counters)
            for state in states:
                state.feeds[key] = feed
        return feed

    def leave(self, feed: Feed, sink: Sink) -> None:
        """Remove ``sink``; the feed and its channels go when nothing is left on them."""
        feed.sinks.discard(sink)
        self.release_feed(feed)

    def release_feed(self, feed: Feed) -> None:
        """Forget ``feed`` if it has no sinks left, and any channel it leaves idle."""
        if feed.sinks or self._feeds.get(feed.key) is not feed:
            return
        del self._feeds[feed.key]
        for state in feed.states:
            state.feeds.pop(feed.key, None)
            self._forget_if_idle(state)

    def close_all(self, reason: Disconnect) -> None:
        """Close every sink of every feed (shutdown)."""
        for feed in list(self._feeds.values()):
            for sink in list(feed.sinks):
                _close(sink, reason)

    def channel_count(self) -> int:
        """Channels with local subscribers (or held by one about to join)."""
        return len(self._channels)

    def subscription_count(self) -> int:
        """Local subscriptions: a sink counts once for each channel of its feed."""
        return sum(len(feed.sinks) * len(feed.states) for feed in self._feeds.values())

    def statistics(self) -> list[ChannelStatistics]:
        """Local subscribers per active channel."""
        return [
            ChannelStatistics(name, sum(len(feed.sinks) for feed in state.feeds.values()))
            for name, state in sorted(self._channels.items())
        ]

    # Fan-out.

    def enqueue(self, state: ChannelState, item: Item) -> None:
        """Queue ``item`` on ``state`` for this iteration's flush.

        The caller (the node) has checked that ``item`` follows the channel's
        :attr:`ChannelState.accepted` position.
        """
        if not state.pending:
            if not self._dirty:
                self._call_soon(self._flush)
            self._dirty.append(state)
        state.pending.append(item)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for state in dirty:
            items, state.pending = state.pending, []
            if items:
                try:
                    self._flush_channel(state, items)
                except Exception:  # a bug: lose this channel's batch, never the others'
                    logger.exception("fan-out on %r failed", state.name)
                    state.delivered = items[-1].position

    def _flush_channel(self, state: ChannelState, items: list[Item]) -> None:
        batch = Batch(state, items)
        # A copy: a feed answered once (long-polls) is released while we go.
        for feed in list(state.feeds.values()):
            if not feed.sinks:
                continue
            wire_format = feed.format
            try:
                data = wire_format.encode(batch, feed)
            except Exception:
                logger.exception("encoding for %r failed", state.name)
                continue
            sinks = feed.sinks
            if wire_format.answers_once:
                feed.sinks = set()
            # Counted before the writes (a sink cut off leaves the set) and per feed:
            # the fan-out loop itself does no bookkeeping.
            written = len(sinks)
            overflowed = _write_all(sinks, data)
            counters = feed.counters
            counters.deliveries += written * len(items)
            counters.bytes_written += written * len(data)
            if overflowed:
                counters.slow_consumers += overflowed
            if wire_format.answers_once:
                self.release_feed(feed)
        state.delivered = items[-1].position
        # One sample per batch: from the oldest publication's time to the last write.
        first = items[0]
        if isinstance(first, Publication) and first.time > 0:
            node_counters = self.counters
            node_counters.fanout_seconds.observe(max(node_counters.clock() - first.time, 0.0))


def _write_all(sinks: set[Sink], data: bytes) -> int:
    """The fan-out loop: the same bytes to every sink; one failing sink harms no other.

    Returns how many sinks were cut off as slow consumers.
    """
    overflowed: list[Sink] | None = None
    failed: list[Sink] | None = None
    for sink in sinks:
        try:
            if not sink.write(data):
                if overflowed is None:
                    overflowed = []
                overflowed.append(sink)
        except Exception:
            logger.exception("write to a subscriber failed")
            if failed is None:
                failed = []
            failed.append(sink)
    if overflowed is not None:
        for sink in overflowed:
            _close(sink, SLOW_CONSUMER)
    if failed is not None:
        for sink in failed:
            _close(sink, INTERNAL_ERROR)
    return 0 if overflowed is None else len(overflowed)


def _close(sink: Sink, reason: Disconnect) -> None:
    try:
        sink.close(reason)
    except Exception:
        logger.exception("closing a subscriber failed")
