"""Server-Sent Events: one ``text/event-stream`` response per client, kept open.

Each publication is an event with ``id:`` (the stream cursor, which the browser
sends back as ``Last-Event-ID``), ``event:`` when it has a name, and ``data:``
(the message object). A lost stretch of history is an explicit ``pushwire.gap``
event, never a silent skip.
"""

from __future__ import annotations

import asyncio

import orjson

from pushwire.core.hub import StreamGroup
from pushwire.core.streams import StreamStart
from pushwire.protocol.codec import SSE_PING, message_json, sse_event, sse_retry
from pushwire.transports.base import Ticker

__all__ = ["GAP_EVENT", "SSEPinger", "SSEStream", "opening_bytes"]

GAP_EVENT = "pushwire.gap"


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
            data = orjson.dumps(
                {"channel": step.channel, "cursor": step.position.cursor, "recovered": False}
            )
            parts.append(
                b"id: %s\nevent: %s\ndata: %s\n\n"
                % (step.cursor.encode(), GAP_EVENT.encode(), data)
            )
        else:
            message = message_json(
                publication.channel,
                publication.position.cursor,
                publication.event,
                publication.data,
            )
            parts.append(sse_event(message, publication.event, step.cursor))
    return b"".join(parts)


class SSEStream:
    """One open event stream, receiving its group's events from the hub."""

    __slots__ = ("group", "max_buffer_bytes", "transport")

    def __init__(self, transport: asyncio.Transport, group: StreamGroup, max_buffer_bytes: int):
        self.transport = transport
        self.group = group
        self.max_buffer_bytes = max_buffer_bytes

    def send_batch(self, data: bytes) -> bool:
        transport = self.transport
        transport.write(data)
        return transport.get_write_buffer_size() <= self.max_buffer_bytes

    def overflow(self) -> None:
        # The buffer is full, so no farewell event would get through: cut the
        # connection; the browser reconnects with Last-Event-ID and recovers.
        self.transport.abort()


class SSEPinger:
    """Writes a comment to every open stream on one timer, so proxies keep them open."""

    __slots__ = ("_ticker", "streams")

    def __init__(self, interval: float) -> None:
        self.streams: set[SSEStream] = set()
        self._ticker = Ticker(interval, self._ping_all)

    def start(self) -> None:
        self._ticker.start()

    def stop(self) -> None:
        self._ticker.stop()

    def _ping_all(self) -> None:
        for stream in self.streams:
            stream.transport.write(SSE_PING)
