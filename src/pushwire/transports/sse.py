"""Server-Sent Events: one ``text/event-stream`` response per client, kept open.

Each publication is an event with ``id:`` (the stream cursor, which the browser
sends back as ``Last-Event-ID``), ``event:`` when it has a name, and ``data:``
(the message object). A lost stretch of history is an explicit ``pushwire.gap``
event, never a silent skip: when the stream opens, and whenever live delivery
finds one.
"""

from __future__ import annotations

import asyncio
import logging

import orjson

from pushwire.core.history import Gap, Publication
from pushwire.core.hub import Batch, Feed
from pushwire.core.presence import Join, Leave
from pushwire.core.streams import StreamStart
from pushwire.errors import SLOW_CONSUMER, UNSUBSCRIBED, Disconnect
from pushwire.protocol.codec import (
    SSE_PING,
    message_json,
    sse_event,
    sse_gap_event,
    sse_presence_event,
    sse_retry,
)
from pushwire.transports.base import Clock, Ticker

__all__ = ["DISCONNECT_EVENT", "SSE_EVENTS", "SSEPinger", "SSEStream", "opening_bytes"]

#: The last event of a stream the server ends on purpose: why, and whether to come back.
DISCONNECT_EVENT = b"pushwire.disconnect"

logger = logging.getLogger("pushwire.sse")


class _SSEFormat:
    """Events for one stream group: each carries the group's stream cursor as of itself."""

    __slots__ = ()

    answers_once = False
    transport = "sse"

    def encode(self, batch: Batch, feed: Feed) -> bytes:
        state = batch.state
        parts = []
        for item, message in zip(batch.items, batch.messages, strict=True):
            cursor = feed.cursor_at(state, item.position)
            if message is not None:
                assert isinstance(item, Publication)  # a message object is made for these only
                parts.append(sse_event(message, item.event, cursor))
            elif isinstance(item, Gap):
                parts.append(sse_gap_event(item.channel, item.position.cursor, cursor))
            elif isinstance(item, Join | Leave):
                kind = "join" if isinstance(item, Join) else "leave"
                parts.append(sse_presence_event(kind, item.channel, item.user, item.info, cursor))
        return b"".join(parts)


SSE_EVENTS = _SSEFormat()


def opening_bytes(start: StreamStart, retry_ms: int) -> bytes:
    """The ``retry:`` line, then the replay, or an id-only event when there is none.

    The id-only event is never dispatched but sets the browser's last event id,
    so a stream that drops before its first message still resumes from here.
    (With a replay, each replayed event moves the id on instead.)
    """
    parts = [sse_retry(retry_ms)]
    if not start.steps:
        parts.append(b"id: %s\n\n" % start.cursor.encode())
    for step in start.steps:
        publication = step.publication
        if publication is None:
            parts.append(sse_gap_event(step.channel, step.position.cursor, step.cursor))
        else:
            message = message_json(
                publication.channel,
                publication.position.cursor,
                publication.event,
                publication.data,
                publication.publisher,
            )
            parts.append(sse_event(message, publication.event, step.cursor))
    return b"".join(parts)


class SSEStream:
    """One open event stream, receiving its group's events from the hub."""

    __slots__ = ("channels", "closed_by", "max_buffer_bytes", "transport")

    name = "sse"
    unidirectional = True

    def __init__(
        self,
        transport: asyncio.Transport,
        max_buffer_bytes: int,
        *,
        channels: tuple[str, ...] = (),
    ) -> None:
        self.transport = transport
        self.max_buffer_bytes = max_buffer_bytes
        self.channels = channels
        #: Why the server ended the stream, if it did (else the client or the network did).
        self.closed_by: Disconnect | None = None

    def write(self, data: bytes) -> bool:
        transport = self.transport
        transport.write(data)
        return transport.get_write_buffer_size() <= self.max_buffer_bytes

    def close(self, reason: Disconnect) -> None:
        if self.closed_by is None:
            self.closed_by = reason
        if reason is SLOW_CONSUMER:
            # The buffer is full, so no farewell event would get through: cut the
            # connection; the browser reconnects with Last-Event-ID and recovers.
            logger.info(
                "closing a slow SSE consumer (%d bytes unsent)",
                self.transport.get_write_buffer_size(),
                extra={"event": "slow_consumer", "transport": "sse"},
            )
            self.transport.abort()
        else:
            # Say why, then end the response after what is buffered. EventSource
            # reconnects by itself; pushwire.js reads the event and does not when
            # ``reconnect`` is false.
            farewell = orjson.dumps(
                {"code": reason.code, "reason": reason.reason, "reconnect": reason.reconnect}
            )
            self.transport.write(b"event: %s\ndata: %s\n\n" % (DISCONNECT_EVENT, farewell))
            self.transport.close()

    def unsubscribe(self, channel: str) -> bool:
        """A stream cannot drop one channel: it ends, and its client reconnects."""
        if channel not in self.channels:
            return False
        self.close(UNSUBSCRIBED)
        return True


class SSEPinger:
    """Writes a comment to every open stream on one timer, so proxies keep them open."""

    __slots__ = ("_ticker", "streams")

    def __init__(self, interval: float, *, clock: Clock | None = None) -> None:
        self.streams: set[SSEStream] = set()
        self._ticker = Ticker(interval, self._ping_all, clock=clock)

    def start(self) -> None:
        self._ticker.start()

    def stop(self) -> None:
        self._ticker.stop()

    def _ping_all(self) -> None:
        for stream in self.streams:
            stream.transport.write(SSE_PING)
