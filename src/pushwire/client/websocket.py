"""The ``/ws`` transport: JSON commands with ``ref``, replies and messages on one socket.

One task reads every frame and routes it (replies to the request waiting on
its ``ref``; messages, gaps and subscription outcomes to :class:`ConnectionEvents`);
another sends the application-level ping and aborts the socket when no pong
comes back in time. A frame that makes no sense is logged and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from pushwire.client.base import ConnectionEvents
from pushwire.client.errors import ConnectionLostError, error_from_code
from pushwire.client.messages import PublishResult, message_from_json, publish_result_from_json
from pushwire.client.options import ClientOptions
from pushwire.errors import UsageError

__all__ = ["WebSocketConnection"]

logger = logging.getLogger("pushwire.client")


class WebSocketConnection:
    """An open ``/ws`` connection; build it with :meth:`open`."""

    transport = "websocket"

    def __init__(
        self, ws: ClientConnection, events: ConnectionEvents, options: ClientOptions
    ) -> None:
        self._ws = ws
        self._events = events
        self._options = options
        self._refs = itertools.count(1)
        self._requests: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._subscribe_refs: dict[int, str] = {}
        self._lost_reason: str | None = None
        self._reader = asyncio.create_task(self._read(), name="pushwire-ws-reader")
        self._heartbeat: asyncio.Task[None] | None = None
        if options.ping_interval_seconds > 0:
            self._heartbeat = asyncio.create_task(self._beat(), name="pushwire-ws-heartbeat")

    @classmethod
    async def open(
        cls, url: str, events: ConnectionEvents, options: ClientOptions
    ) -> WebSocketConnection:
        """Connect to ``url`` (a ``ws://`` or ``wss://`` address of ``/ws``).

        Raises:
            OSError, TimeoutError, websockets.exceptions.InvalidHandshake: could not connect.
        """
        ws = await connect(
            url,
            # Our own ping is the heartbeat: one mechanism, and it also proves the
            # server's command loop is alive, not just its TCP stack.
            ping_interval=None,
            open_timeout=options.connect_timeout_seconds or None,
            close_timeout=options.close_timeout_seconds,
            # The server bounds message sizes itself (max_message_bytes).
            max_size=None,
            compression=None,
        )
        return cls(ws, events, options)

    # Requests.

    async def subscribe(self, channel: str, cursor: str | None) -> None:
        ref = next(self._refs)
        frame: dict[str, Any] = {"type": "subscribe", "channel": channel, "ref": ref}
        if cursor is not None:
            frame["cursor"] = cursor
        self._subscribe_refs[ref] = channel
        await self._send_quietly(frame)

    async def unsubscribe(self, channel: str) -> None:
        # The reply carries nothing we need, so no ref: it is read and ignored.
        await self._send_quietly({"type": "unsubscribe", "channel": channel})

    async def publish(self, channel: str, data: Any, event: str | None) -> PublishResult:
        frame: dict[str, Any] = {"type": "publish", "channel": channel, "data": data}
        if event is not None:
            frame["event"] = event
        reply = await self._request(frame)
        try:
            return publish_result_from_json(reply)
        except ValueError as exc:
            raise ConnectionLostError(f"malformed publish reply {reply!r}: {exc}") from None

    async def _request(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Send ``frame`` with a fresh ``ref`` and wait for the reply that echoes it."""
        ref = next(self._refs)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._requests[ref] = future
        try:
            if self._reader.done():
                raise ConnectionLostError(self._lost_reason or "connection closed")
            try:
                await self._ws.send(_encode({**frame, "ref": ref}))
            except ConnectionClosed:
                raise ConnectionLostError("connection closed before the request was sent") from None
            return await future
        finally:
            self._requests.pop(ref, None)

    async def _send_quietly(self, frame: dict[str, Any]) -> None:
        # A lost connection is reported once, by the reader; senders need not care.
        with contextlib.suppress(ConnectionClosed):
            await self._ws.send(_encode(frame))

    # Reading.

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                try:
                    self._route(raw)
                except Exception:
                    logger.exception("could not handle frame %.200r", raw)
        except ConnectionClosed:
            pass
        finally:
            if self._lost_reason is None:
                self._lost_reason = _close_reason(self._ws)
            if self._heartbeat is not None:
                self._heartbeat.cancel()
            for future in self._requests.values():
                if not future.done():
                    future.set_exception(ConnectionLostError(self._lost_reason))

    def _route(self, raw: str | bytes) -> None:
        if isinstance(raw, bytes):
            logger.warning("ignoring a binary frame (%d bytes)", len(raw))
            return
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            logger.warning("ignoring a frame that is not JSON: %.200r", raw)
            return
        if not isinstance(frame, dict):
            logger.warning("ignoring a frame that is not an object: %.200r", raw)
            return
        kind = frame.get("type")
        if kind == "message":
            try:
                message = message_from_json(frame)
            except ValueError as exc:
                logger.warning("ignoring a malformed message (%s): %.200r", exc, raw)
                return
            self._events.on_message(message, message.id)
        elif kind == "subscribed":
            self._subscribed(frame, raw)
        elif kind == "gap":
            self._gap(frame, raw)
        elif kind == "error":
            self._error(frame, raw)
        elif kind in ("published", "pong", "unsubscribed"):
            self._reply(frame)
        else:
            logger.warning("ignoring a frame of unknown type: %.200r", raw)

    def _subscribed(self, frame: dict[str, Any], raw: str) -> None:
        ref = frame.get("ref")
        channel = self._subscribe_refs.pop(ref, None) if isinstance(ref, int) else None
        channel = frame.get("channel", channel)
        cursor, recovered = frame.get("cursor"), frame.get("recovered")
        if (
            not isinstance(channel, str)
            or not isinstance(cursor, str | None)
            or not isinstance(recovered, bool | None)
        ):
            logger.warning("ignoring a malformed subscribed reply: %.200r", raw)
            return
        self._events.on_subscribed(channel, cursor, recovered)

    def _gap(self, frame: dict[str, Any], raw: str) -> None:
        # Live delivery hit a hole that history could not fill: like a subscribed
        # reply with "recovered": false, but at any time after it.
        channel, cursor = frame.get("channel"), frame.get("cursor")
        if not isinstance(channel, str) or not isinstance(cursor, str) or not cursor:
            logger.warning("ignoring a malformed gap frame: %.200r", raw)
            return
        self._events.on_gap(channel, cursor)

    def _error(self, frame: dict[str, Any], raw: str) -> None:
        ref = frame.get("ref")
        error = error_from_code(str(frame.get("code", "")), str(frame.get("message", "")))
        if isinstance(ref, int) and ref in self._subscribe_refs:
            self._events.on_subscribe_failed(self._subscribe_refs.pop(ref), error)
            return
        future = self._requests.get(ref) if isinstance(ref, int) else None
        if future is None or future.done():
            logger.warning("the server reported an error: %.200r", raw)
            return
        future.set_exception(error)

    def _reply(self, frame: dict[str, Any]) -> None:
        ref = frame.get("ref")
        future = self._requests.get(ref) if isinstance(ref, int) else None
        if future is not None and not future.done():
            future.set_result(frame)

    # Keep-alive.

    async def _beat(self) -> None:
        """Ping every interval; a ping unanswered within the timeout kills the socket."""
        interval = self._options.ping_interval_seconds
        timeout = self._options.pong_timeout_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                async with asyncio.timeout(timeout):
                    await self._request({"type": "ping"})
            except TimeoutError:
                self._lost_reason = f"no pong within {timeout:g} s"
                logger.warning("%s; reconnecting", self._lost_reason)
                # A frozen peer would never finish a closing handshake: cut the TCP
                # connection, and the reader ends at once.
                self._ws.transport.abort()
                return
            except ConnectionLostError:
                return

    # Closing.

    async def wait_closed(self) -> str:
        await asyncio.shield(self._reader)
        return self._lost_reason or "connection closed"

    async def close(self) -> None:
        self._lost_reason = self._lost_reason or "closed by the client"
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        try:
            async with asyncio.timeout(self._options.close_timeout_seconds + 1):
                await self._ws.close()
        except TimeoutError:
            self._ws.transport.abort()
        await self._reader


def _encode(frame: dict[str, Any]) -> str:
    try:
        return orjson.dumps(frame).decode()
    except TypeError as exc:
        raise UsageError(f"data is not JSON-serialisable: {exc}") from None


def _close_reason(ws: ClientConnection) -> str:
    code = ws.close_code
    if code is None or code == 1006:  # 1006: the TCP connection ended without a close frame
        return "connection lost"
    reason = ws.close_reason
    return f"closed by the server ({code}{' ' + reason if reason else ''})"
