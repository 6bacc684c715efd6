"""The ``/sse`` transport: one event stream per channel, publishing by ``POST /publish``.

One stream per channel, not one for all: each stream's ``id:`` is then exactly
that channel's cursor, so channels come and go without rebuilding a combined
stream cursor, and a cursor from ``/ws`` resumes an SSE stream and vice versa.
If any stream fails the whole connection counts as lost, and the client
reconnects every channel from its own cursor, as it does for a WebSocket.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import orjson
from httpx_sse import EventSource, ServerSentEvent, SSEError, aconnect_sse

from pushwire.client.base import ConnectionEvents
from pushwire.client.errors import ConnectionLostError, error_from_response
from pushwire.client.messages import PublishResult, message_from_json, publish_result_from_json
from pushwire.client.options import ClientOptions
from pushwire.errors import UsageError

__all__ = ["GAP_EVENT", "SSEConnection"]

logger = logging.getLogger("pushwire.client")

GAP_EVENT = "pushwire.gap"


class SSEConnection:
    """Event streams to one server; build it with :meth:`open`."""

    transport = "sse"

    def __init__(self, http: httpx.AsyncClient, events: ConnectionEvents, options: ClientOptions):
        self._http = http
        self._events = events
        self._options = options
        self._streams: dict[str, asyncio.Task[None]] = {}
        self._lost = asyncio.Event()
        self._lost_reason = "connection closed"

    @classmethod
    async def open(
        cls, base_url: str, events: ConnectionEvents, options: ClientOptions
    ) -> SSEConnection:
        """Check that the server at ``base_url`` answers (``GET /health``).

        Streams open later, one per subscribed channel: with no channel there
        is nothing to hold open.

        Raises:
            httpx.HTTPError, PushwireError: the server could not be reached or is unwell.
        """
        connect_timeout = options.connect_timeout_seconds or None
        http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(options.request_timeout_seconds or None, connect=connect_timeout),
        )
        try:
            response = await http.get("/health", timeout=connect_timeout)
            if response.status_code != 200:
                raise error_from_response(response.status_code, response.content)
        except BaseException:
            await http.aclose()
            raise
        return cls(http, events, options)

    # Requests.

    async def subscribe(self, channel: str, cursor: str | None) -> None:
        if self._lost.is_set() or channel in self._streams:
            return
        task = asyncio.create_task(self._stream(channel, cursor), name=f"pushwire-sse-{channel}")
        self._streams[channel] = task
        task.add_done_callback(lambda _: self._forget(channel, task))

    async def unsubscribe(self, channel: str) -> None:
        task = self._streams.pop(channel, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def publish(self, channel: str, data: Any, event: str | None) -> PublishResult:
        body: dict[str, Any] = {"channel": channel, "data": data}
        if event is not None:
            body["event"] = event
        try:
            content = orjson.dumps(body)
        except TypeError as exc:
            raise UsageError(f"data is not JSON-serialisable: {exc}") from None
        try:
            response = await self._http.post(
                "/publish", content=content, headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise ConnectionLostError(f"publish over HTTP failed: {exc!r}") from exc
        if response.status_code != 200:
            raise error_from_response(response.status_code, response.content)
        try:
            return publish_result_from_json(orjson.loads(response.content))
        except (orjson.JSONDecodeError, ValueError) as exc:
            raise ConnectionLostError(f"malformed publish answer: {exc}") from None

    # Streams.

    def _forget(self, channel: str, task: asyncio.Task[None]) -> None:
        if self._streams.get(channel) is task:
            del self._streams[channel]

    async def _stream(self, channel: str, cursor: str | None) -> None:
        """Run one channel's stream until it fails (the connection is then lost)."""
        # A browser would send Last-Event-ID by itself; we hold the cursor, so we send it.
        headers = {} if cursor is None else {"Last-Event-ID": cursor}
        # Silence longer than this means a dead stream: the server writes a comment
        # every sse_ping_interval_seconds, and each one restarts httpx's read timer.
        timeout = httpx.Timeout(
            self._options.request_timeout_seconds or None,
            connect=self._options.connect_timeout_seconds or None,
            read=self._options.sse_read_timeout_seconds or None,
        )
        try:
            async with aconnect_sse(
                self._http,
                "GET",
                "/sse",
                params={"channel": channel},
                headers=headers,
                timeout=timeout,
            ) as source:
                if not await self._accepted(channel, source):
                    return
                await self._read(channel, cursor, source)
            self._lose(f"the server ended the event stream of {channel!r}")
        except (httpx.HTTPError, SSEError) as exc:
            self._lose(f"event stream of {channel!r} failed: {exc!r}")
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("event stream of %r failed", channel)
            self._lose(f"event stream of {channel!r} failed")

    async def _accepted(self, channel: str, source: EventSource) -> bool:
        """Whether the stream opened; a refusal of the channel fails just that subscription."""
        response = source.response
        if response.status_code == 200:
            return True
        error = error_from_response(response.status_code, await response.aread())
        if 400 <= response.status_code < 500:
            self._events.on_subscribe_failed(channel, error)
        else:
            self._lose(f"/sse answered {response.status_code}: {error}")
        return False

    async def _read(self, channel: str, cursor: str | None, source: EventSource) -> None:
        started = False
        async for event in source.aiter_sse():
            try:
                started = self._dispatch(channel, cursor, event, started)
            except Exception:
                logger.exception("could not handle event %r", event)

    def _dispatch(
        self, channel: str, cursor: str | None, event: ServerSentEvent, started: bool
    ) -> bool:
        """Route one event; returns whether the subscription has been reported live.

        The first event says how the stream started, like ``/ws``'s ``subscribed``:
        an id-only event (nothing to replay), a gap, or the first replayed message.
        """
        if event.event == GAP_EVENT:
            gap_cursor = _gap_cursor(event, channel, live=started)
            if gap_cursor is None:
                logger.warning("ignoring a malformed gap event: %r", event)
                return started
            if started:
                self._events.on_gap(channel, gap_cursor)
            else:
                self._events.on_subscribed(channel, gap_cursor, False)
            return True
        if not event.data:
            # The retry: line, or the id-only event that opens a stream with no replay.
            if not started and event.id and event.retry is None:
                self._events.on_subscribed(channel, event.id, None if cursor is None else True)
                return True
            return started
        try:
            message = message_from_json(orjson.loads(event.data))
        except (orjson.JSONDecodeError, ValueError) as exc:
            logger.warning("ignoring a malformed event (%s): %r", exc, event)
            return started
        if not started:
            self._events.on_subscribed(channel, cursor, None if cursor is None else True)
        self._events.on_message(message, event.id or message.id)
        return True

    def _lose(self, reason: str) -> None:
        if not self._lost.is_set():
            self._lost_reason = reason
            self._lost.set()

    # Closing.

    async def wait_closed(self) -> str:
        await self._lost.wait()
        return self._lost_reason

    async def close(self) -> None:
        self._lose("closed by the client")
        tasks = list(self._streams.values())
        for task in tasks:
            task.cancel()
        # gather, not a loop of awaits: the streams' cancellations are results here,
        # while a cancellation of close() itself still propagates.
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._http.aclose()


def _gap_cursor(event: ServerSentEvent, channel: str, *, live: bool) -> str | None:
    """Where delivery continues after a gap event on ``channel``'s stream; None if malformed.

    A gap that opens the stream may fall back on the event's ``id:``. A live gap
    (after the stream started) must name this channel and its cursor in its data:
    an event without an ``id:`` line inherits the previous event's id, which says
    nothing about where delivery continues.
    """
    try:
        value = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        value = None
    cursor = value.get("cursor") if isinstance(value, dict) else None
    if not live:
        return cursor if isinstance(cursor, str) and cursor else (event.id or None)
    if not isinstance(value, dict) or value.get("channel") != channel:
        return None
    return cursor if isinstance(cursor, str) and cursor else None
