"""The ``/sse`` transport: one event stream per channel, publishing by ``POST /publish``.

Every request carries the token as ``Authorization: Bearer``; presence is asked
for with ``GET /presence``.

One stream per channel, not one for all: each stream's ``id:`` is then exactly
that channel's cursor, so channels come and go without rebuilding a combined
stream cursor, and a cursor from ``/ws`` resumes an SSE stream and vice versa.
If any stream fails the whole connection counts as lost, and the client
reconnects every channel from its own cursor, as it does for a WebSocket. (One
exception: a stream ended because the server took its channel away, code 4004,
ends just that subscription.)
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import orjson
from httpx_sse import EventSource, ServerSentEvent, SSEError, aconnect_sse

from pushwire.client.base import Closed, ConnectionEvents
from pushwire.client.errors import TOKEN_ERROR_CODES, ConnectionLostError, error_from_response
from pushwire.client.messages import (
    Member,
    PublishResult,
    members_from_json,
    message_from_json,
    presence_event_from_json,
    publish_result_from_json,
)
from pushwire.client.options import ClientOptions
from pushwire.errors import UNSUBSCRIBED, ClientError, UsageError

__all__ = ["DISCONNECT_EVENT", "GAP_EVENT", "JOIN_EVENT", "LEAVE_EVENT", "SSEConnection"]

logger = logging.getLogger("pushwire.client")

GAP_EVENT = "pushwire.gap"
DISCONNECT_EVENT = "pushwire.disconnect"
JOIN_EVENT = "pushwire.join"
LEAVE_EVENT = "pushwire.leave"


class SSEConnection:
    """Event streams to one server; build it with :meth:`open`."""

    transport = "sse"

    def __init__(
        self,
        http: httpx.AsyncClient,
        events: ConnectionEvents,
        options: ClientOptions,
        *,
        has_token: bool = False,
    ):
        self._http = http
        self._events = events
        self._options = options
        self._has_token = has_token
        self._streams: dict[str, asyncio.Task[None]] = {}
        self._lost = asyncio.Event()
        self._closed = Closed("connection closed")

    @classmethod
    async def open(
        cls,
        base_url: str,
        events: ConnectionEvents,
        options: ClientOptions,
        *,
        token: str | None = None,
    ) -> SSEConnection:
        """Check that the server at ``base_url`` answers (``GET /health``).

        Streams open later, one per subscribed channel: with no channel there
        is nothing to hold open. ``token`` goes with every request, as
        ``Authorization: Bearer``.

        Raises:
            httpx.HTTPError, PushwireError: the server could not be reached or is unwell.
        """
        connect_timeout = options.connect_timeout_seconds or None
        http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(options.request_timeout_seconds or None, connect=connect_timeout),
            headers={} if token is None else {"Authorization": f"Bearer {token}"},
        )
        try:
            response = await http.get("/health", timeout=connect_timeout)
            if response.status_code != 200:
                raise error_from_response(response.status_code, response.content)
        except BaseException:
            await http.aclose()
            raise
        return cls(http, events, options, has_token=token is not None)

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

    async def presence(self, channel: str) -> list[Member]:
        try:
            response = await self._http.get("/presence", params={"channel": channel})
        except httpx.HTTPError as exc:
            raise ConnectionLostError(f"presence over HTTP failed: {exc!r}") from exc
        if response.status_code != 200:
            raise error_from_response(response.status_code, response.content)
        try:
            return members_from_json(orjson.loads(response.content), channel)
        except (orjson.JSONDecodeError, ValueError) as exc:
            raise ConnectionLostError(f"malformed presence answer: {exc}") from None

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
                farewell = await self._read(channel, cursor, source)
            if farewell is None:
                self._lose(f"the server ended the event stream of {channel!r}")
            elif farewell.code == UNSUBSCRIBED.code:
                # One channel per stream: the channel taken away is this one, and
                # nothing else was lost.
                logger.info("the server unsubscribed %r", channel)
                self._events.on_unsubscribed(channel)
            else:
                self._lose_as(farewell)
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
        if (
            self._has_token
            and response.status_code == 401
            and isinstance(error, ClientError)
            and error.code in TOKEN_ERROR_CODES
        ):
            # The token, not the channel: every stream would be refused alike.
            reason = f"/sse refused the token: {error}"
            self._lose_as(Closed(reason, refused=error))
        elif 400 <= response.status_code < 500:
            self._events.on_subscribe_failed(channel, error)
        else:
            self._lose(f"/sse answered {response.status_code}: {error}")
        return False

    async def _read(self, channel: str, cursor: str | None, source: EventSource) -> Closed | None:
        """Dispatch events until the stream ends; returns its ``pushwire.disconnect``, if any."""
        started = False
        async for event in source.aiter_sse():
            if event.event == DISCONNECT_EVENT:
                farewell = _farewell(event)
                if farewell is not None:
                    return farewell
                logger.warning("ignoring a malformed disconnect event: %r", event)
                continue
            try:
                started = self._dispatch(channel, cursor, event, started)
            except Exception:
                logger.exception("could not handle event %r", event)
        return None

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
        if event.event in (JOIN_EVENT, LEAVE_EVENT):
            self._presence_event(channel, event)
            return started
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

    def _presence_event(self, channel: str, event: ServerSentEvent) -> None:
        kind = "join" if event.event == JOIN_EVENT else "leave"
        try:
            presence = presence_event_from_json(kind, orjson.loads(event.data))
        except (orjson.JSONDecodeError, ValueError) as exc:
            logger.warning("ignoring a malformed %s event (%s): %r", kind, exc, event)
            return
        if presence.channel != channel:
            logger.warning("ignoring a %s event for another channel: %r", kind, event)
            return
        self._events.on_presence(presence)

    def _lose(self, reason: str) -> None:
        self._lose_as(Closed(reason))

    def _lose_as(self, closed: Closed) -> None:
        if not self._lost.is_set():
            self._closed = closed
            self._lost.set()

    # Closing.

    async def wait_closed(self) -> Closed:
        await self._lost.wait()
        return self._closed

    async def close(self) -> None:
        self._lose("closed by the client")
        tasks = list(self._streams.values())
        for task in tasks:
            task.cancel()
        # gather, not a loop of awaits: the streams' cancellations are results here,
        # while a cancellation of close() itself still propagates.
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._http.aclose()


def _farewell(event: ServerSentEvent) -> Closed | None:
    """How a ``pushwire.disconnect`` event says the stream ends; None if malformed."""
    try:
        value = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    code, reason, reconnect = value.get("code"), value.get("reason", ""), value.get("reconnect")
    if not isinstance(code, int) or isinstance(code, bool) or not isinstance(reconnect, bool):
        return None
    reason = reason if isinstance(reason, str) else ""
    text = f"the server ended the event stream ({code}{' ' + reason if reason else ''})"
    return Closed(text, code, reason, reconnect)


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
