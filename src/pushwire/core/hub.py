"""The hub: which local connections listen to which channel, and the fan-out path.

Publications are not written when they arrive. They are queued on their channel,
and once per event-loop iteration the hub encodes each queued publication once
per wire format and writes the same bytes to every subscriber: a burst of
publications to one channel becomes one write per subscriber, and no subscriber
gets a coroutine, a task or an encoding of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import orjson

from pushwire.core.history import Publication, StreamPosition, encode_stream_cursor
from pushwire.protocol.codec import message_json, sse_event, ws_message_frame

__all__ = [
    "BatchSink",
    "ChannelState",
    "ChannelStatistics",
    "Hub",
    "PollWaiter",
    "StreamGroup",
]


class BatchSink(Protocol):
    """A connection that receives fan-out bytes (a WebSocket, or an SSE stream)."""

    def send_batch(self, data: bytes) -> bool:
        """Write ``data`` now; return False if the connection's buffer is over its limit."""

    def overflow(self) -> None:
        """Called after a False from :meth:`send_batch`: cut the connection off with a reason."""


class PollWaiter(Protocol):
    """A long-poll request waiting for the first publication after its cursor."""

    def answer(self, body: bytes) -> None:
        """Send ``body`` (``{"messages": [...], "cursor": ...}``) as the response."""


class ChannelState:
    """One channel with local subscribers: its sinks, stream groups and pending queue.

    ``delivered`` is the position of the last publication this node has handed
    to subscribers; recovery replays up to it and live delivery carries on after.
    """

    __slots__ = ("delivered", "groups", "name", "pending", "ws")

    def __init__(self, name: str, delivered: StreamPosition) -> None:
        self.name = name
        self.delivered = delivered
        self.ws: set[BatchSink] = set()
        self.groups: set[StreamGroup] = set()
        self.pending: list[Publication] = []

    @property
    def is_idle(self) -> bool:
        return not self.ws and not self.groups


class StreamGroup:
    """Every SSE stream and long-poll over the same set of channels.

    Their events carry the same stream cursor, so one encoding serves them all.
    """

    __slots__ = ("channels", "pollers", "sse", "states")

    def __init__(self, states: tuple[ChannelState, ...]) -> None:
        self.states = states
        self.channels = tuple(state.name for state in states)
        self.sse: set[BatchSink] = set()
        self.pollers: set[PollWaiter] = set()

    def cursor(self) -> str:
        """The stream cursor covering what this group's members have been sent."""
        return encode_stream_cursor([state.delivered for state in self.states])

    @property
    def is_idle(self) -> bool:
        return not self.sse and not self.pollers


@dataclass(frozen=True, slots=True)
class ChannelStatistics:
    channel: str
    subscribers: int


class Hub:
    """Local subscriptions and the batched fan-out; knows nothing of sockets or brokers."""

    __slots__ = ("_call_soon", "_channels", "_dirty", "_groups", "_on_idle")

    def __init__(
        self, call_soon: Callable[[Callable[[], None]], object], on_idle: Callable[[str], None]
    ) -> None:
        """
        Args:
            call_soon: schedules the flush for the end of this loop iteration.
            on_idle: called with a channel name when its last local subscriber leaves.
        """
        self._call_soon = call_soon
        self._on_idle = on_idle
        self._channels: dict[str, ChannelState] = {}
        self._groups: dict[tuple[str, ...], StreamGroup] = {}
        self._dirty: list[ChannelState] = []

    # Subscriptions.

    def channel(self, name: str) -> ChannelState | None:
        return self._channels.get(name)

    def open_channel(self, name: str, delivered: StreamPosition) -> ChannelState:
        """The channel's state, created at ``delivered`` if this node had none."""
        state = self._channels.get(name)
        if state is None:
            state = self._channels[name] = ChannelState(name, delivered)
        return state

    def release(self, state: ChannelState) -> None:
        """Forget ``state`` if nothing listens to it any more."""
        if state.is_idle and self._channels.get(state.name) is state:
            del self._channels[state.name]
            state.pending.clear()
            self._on_idle(state.name)

    def add_ws(self, state: ChannelState, sink: BatchSink) -> None:
        state.ws.add(sink)

    def remove_ws(self, state: ChannelState, sink: BatchSink) -> None:
        state.ws.discard(sink)
        self.release(state)

    def group(self, states: tuple[ChannelState, ...]) -> StreamGroup:
        """The stream group over ``states`` (sorted by name), joined to each channel."""
        key = tuple(state.name for state in states)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = StreamGroup(states)
            for state in states:
                state.groups.add(group)
        return group

    def release_group(self, group: StreamGroup) -> None:
        """Forget ``group`` if it has no members left, and any channel left idle."""
        if not group.is_idle or self._groups.get(group.channels) is not group:
            return
        del self._groups[group.channels]
        for state in group.states:
            state.groups.discard(group)
            self.release(state)

    def statistics(self) -> list[ChannelStatistics]:
        """Local subscribers per active channel."""
        return [
            ChannelStatistics(
                name,
                len(state.ws) + sum(len(g.sse) + len(g.pollers) for g in state.groups),
            )
            for name, state in sorted(self._channels.items())
        ]

    def channel_names(self) -> Iterable[str]:
        return self._channels.keys()

    def groups(self) -> list[StreamGroup]:
        """Every stream group (SSE streams and polls over one channel set)."""
        return list(self._groups.values())

    # Fan-out.

    def deliver(self, publication: Publication) -> None:
        """Queue ``publication`` for this iteration's flush (no-op if nobody listens)."""
        state = self._channels.get(publication.channel)
        if state is None:
            return
        if not state.pending:
            if not self._dirty:
                self._call_soon(self._flush)
            self._dirty.append(state)
        state.pending.append(publication)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for state in dirty:
            publications, state.pending = state.pending, []
            if publications:
                self._flush_channel(state, publications)

    def _flush_channel(self, state: ChannelState, publications: list[Publication]) -> None:
        messages = [
            message_json(p.channel, p.position.cursor, p.event, p.data) for p in publications
        ]
        if state.ws:
            frames = b"".join([ws_message_frame(message) for message in messages])
            _write_all(state.ws, frames)
        if not state.groups:
            state.delivered = publications[-1].position
            return
        # Each SSE event carries the stream cursor as of that event, so advance
        # ``delivered`` one publication at a time while building the events.
        groups = list(state.groups)
        events: list[list[bytes]] = [[] for _ in groups]
        for publication, message in zip(publications, messages, strict=True):
            state.delivered = publication.position
            for group, parts in zip(groups, events, strict=True):
                if group.sse:
                    parts.append(sse_event(message, publication.event, group.cursor()))
        for group, parts in zip(groups, events, strict=True):
            if parts:
                _write_all(group.sse, b"".join(parts))
            if group.pollers:
                self._answer_pollers(group, messages)

    def _answer_pollers(self, group: StreamGroup, messages: list[bytes]) -> None:
        body = orjson.dumps(
            {"messages": [orjson.Fragment(m) for m in messages], "cursor": group.cursor()}
        )
        pollers, group.pollers = group.pollers, set()
        for poller in pollers:
            poller.answer(body)
        self.release_group(group)


def _write_all(sinks: set[BatchSink], data: bytes) -> None:
    overflowed = [sink for sink in sinks if not sink.send_batch(data)]
    for sink in overflowed:
        sink.overflow()
