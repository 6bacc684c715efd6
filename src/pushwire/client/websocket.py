"""The ``/ws`` transport: JSON commands with ``ref``, replies and messages on one socket.

One task reads every frame and routes it (replies to the request waiting on
its ``ref``; messages, gaps, joins, leaves and subscription outcomes to
:class:`ConnectionEvents`); another sends the application-level ping and aborts
the socket when no pong comes back in time. When the server asks for a new token,
a third fetches one and sends it. A frame that makes no sense is logged and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from pushwire.client.base import Closed, ConnectionEvents, TokenSource
from pushwire.client.errors import ConnectionLostError, error_from_code, error_from_response
from pushwire.client.messages import (
    Member,
    PublishResult,
    members_from_json,
    message_from_json,
    presence_event_from_json,
    publish_result_from_json,
)
from pushwire.client.options import ClientOptions
from pushwire.errors import DISCONNECTED, UsageError

__all__ = ["WebSocketConnection"]

logger = logging.getLogger("pushwire.client")


class WebSocketConnection:
    """An open ``/ws`` connection; build it with :meth:`open`."""

    transport = "websocket"

    def __init__(
        self,
        ws: ClientConnection,
        events: ConnectionEvents,
        options: ClientOptions,
        renew_token: TokenSource | None = None,
    ) -> None:
        self._ws = ws
        self._events = events
        self._options = options
        self._renew_token = renew_token
        self._refresh: asyncio.Task[None] | None = None
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
        cls,
        url: str,
        events: ConnectionEvents,
        options: ClientOptions,
        *,
        token: str | None = None,
        renew_token: TokenSource | None = None,
    ) -> WebSocketConnection:
        """Connect to ``url`` (a ``ws://`` or ``wss://`` address of ``/ws``).

        ``token`` goes in the URL as ``?token=`` (what browsers do too, so one
        server setting serves both); ``renew_token`` answers the server's
        ``refresh`` requests.

        Raises:
            ClientError: the server refused the token (HTTP 401: ``invalid_token``,
                ``token_expired``, ``unauthorized``), with its code.
            OSError, TimeoutError, websockets.exceptions.InvalidHandshake: could not connect.
        """
        try:
            ws = await cls._connect(url if token is None else _with_token(url, token), options)
        except InvalidStatus as exc:
            response = exc.response
            if response.status_code == 401:
                raise error_from_response(401, bytes(response.body)) from None
            raise
        return cls(ws, events, options, renew_token)

    @staticmethod
    async def _connect(url: str, options: ClientOptions) -> ClientConnection:
        return await connect(
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

    # Requests.

    async def subscribe(self, channel: str, cursor: str | None) -> None:
        ref = next(self._refs)
        frame: dict[str, Any] = {"type": "subscribe", "channel": channel, "ref": ref}
        if cursor is not None:
            frame["cursor"] = cursor
        self._subscribe_refs[ref] = channel
        await self._send_quietly(frame)

    async def unsubscribe(self, channel: str) -> None:
        # Nobody waits for the reply, but it needs a ref: an "unsubscribed" without
        # one means the server took the channel away (and would end a subscription
        # made to the same channel again meanwhile).
        frame = {"type": "unsubscribe", "channel": channel, "ref": next(self._refs)}
        await self._send_quietly(frame)

    async def presence(self, channel: str) -> list[Member]:
        reply = await self._request({"type": "presence", "channel": channel})
        try:
            return members_from_json(reply, channel)
        except ValueError as exc:
            raise ConnectionLostError(f"malformed presence reply {reply!r}: {exc}") from None

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
            if self._refresh is not None:
                self._refresh.cancel()
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
        elif kind in ("join", "leave"):
            try:
                event = presence_event_from_json(kind, frame)
            except ValueError as exc:
                logger.warning("ignoring a malformed %s (%s): %.200r", kind, exc, raw)
                return
            self._events.on_presence(event)
        elif kind == "error":
            self._error(frame, raw)
        elif kind == "unsubscribed" and "ref" not in frame:
            self._unsubscribed_by_server(frame, raw)
        elif kind == "refresh":
            self._start_refresh()
        elif kind in ("published", "pong", "unsubscribed", "refreshed", "presence"):
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

    def _unsubscribed_by_server(self, frame: dict[str, Any], raw: str) -> None:
        channel = frame.get("channel")
        if not isinstance(channel, str):
            logger.warning("ignoring a malformed unsubscribed frame: %.200r", raw)
            return
        self._events.on_unsubscribed(channel)

    def _reply(self, frame: dict[str, Any]) -> None:
        ref = frame.get("ref")
        future = self._requests.get(ref) if isinstance(ref, int) else None
        if future is not None and not future.done():
            future.set_result(frame)

    # Token refresh.

    def _start_refresh(self) -> None:
        if self._refresh is not None and not self._refresh.done():
            return  # already fetching one
        self._refresh = asyncio.create_task(self._send_new_token(), name="pushwire-ws-refresh")

    async def _send_new_token(self) -> None:
        """Answer ``{"type": "refresh"}``: a new token before the server's timeout, or 4401."""
        if self._renew_token is None:
            logger.warning(
                "the server asks for a new token, but the client has no get_token:"
                " it will close the connection (4401)"
            )
            return
        try:
            async with asyncio.timeout(self._options.request_timeout_seconds or None):
                token = await self._renew_token()
                await self._request({"type": "refresh", "token": token})
        except ConnectionLostError:
            return  # the server refused it (4401) or the connection broke: reconnecting
        except Exception:
            logger.exception(
                "could not renew the token; the server will close the connection (4401)"
                " and the client reconnect with a new one"
            )
            return
        logger.info("token refreshed")

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

    async def wait_closed(self) -> Closed:
        await asyncio.shield(self._reader)
        code = self._ws.close_code
        if code == 1006:
            code = None  # no close frame: the connection just broke
        reason = self._lost_reason or "connection closed"
        close_reason = self._ws.close_reason or ""
        return Closed(reason, code, close_reason, reconnect=code != DISCONNECTED.code)

    async def close(self) -> None:
        self._lost_reason = self._lost_reason or "closed by the client"
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if self._refresh is not None:
            self._refresh.cancel()
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


def _with_token(url: str, token: str) -> str:
    """``url`` with ``token=`` added to its query (replacing one already there)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"]
    query.append(("token", token))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _close_reason(ws: ClientConnection) -> str:
    code = ws.close_code
    if code is None or code == 1006:  # 1006: the TCP connection ended without a close frame
        return "connection lost"
    reason = ws.close_reason
    return f"closed by the server ({code}{' ' + reason if reason else ''})"
