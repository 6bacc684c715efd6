"""The subscriber endpoints: ``/ws`` (and ``/echo``), ``/sse`` and ``/poll``.

Each turns an HTTP request into a transport: it reads the channels and cursor
from the request, opens the stream through the core, and hands the connection
to the WebSocket session, the event stream or the long-poll waiter.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import orjson

from pushwire.core.counters import close_reason
from pushwire.core.identity import Identity
from pushwire.core.node import Node
from pushwire.core.permissions import ChannelPermissions
from pushwire.core.streams import open_stream
from pushwire.errors import (
    TOKEN_EXPIRED,
    BadRequestError,
    LimitExceededError,
    TooManyConnectionsError,
    UpgradeRequiredError,
)
from pushwire.protocol.codec import presence_json
from pushwire.protocol.error_mapping import error_body
from pushwire.protocol.names import validate_channel
from pushwire.server.auth import Authenticator
from pushwire.server.http import HttpConnection, Request
from pushwire.server.origins import OriginPolicy
from pushwire.transports.base import ConnectionLimits
from pushwire.transports.longpoll import POLL_ANSWERS, LongPollWaiter, PollPresence, replay_body
from pushwire.transports.sse import SSE_EVENTS, SSEPinger, SSEStream, opening_bytes
from pushwire.transports.websocket import EchoSession, Heartbeat, WebSocketSession, handshake
from pushwire.transports.ws_channels import ChannelSession, SessionSettings

__all__ = ["StreamSettings", "SubscriberEndpoints", "channels_of"]

_NO_CACHE = (b"Cache-Control", b"no-store")
_HANDSHAKE_HEADERS = frozenset(
    {
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "origin",
    }
)


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """What the endpoints need to know of the configuration."""

    sse_retry_ms: int = 2000
    poll_max_timeout_seconds: float = 60.0
    max_connections_per_user: int = 0  # WebSockets and SSE streams at once; 0: no limit
    presence_poll_grace_seconds: float = 10.0  # a poller stays a member this long after
    max_channel_length: int = 255  # for clients; backends may use up to 255


def channels_of(request: Request, max_channels: int, *, required: bool) -> list[str]:
    """The request's ``channel`` parameters: validated, unique, sorted.

    Raises:
        BadRequestError, InvalidChannelError, LimitExceededError: naming the problem.
    """
    names = request.params("channel")
    if required and not names:
        raise BadRequestError("name at least one channel: ?channel=NAME")
    return _validated_channels(names, max_channels)


def _validated_channels(names: list[Any], max_channels: int) -> list[str]:
    """Channel names from a request (query or body): validated, unique, sorted.

    Counted before they are validated, so that a request naming thousands costs little.
    """
    if len(names) > max_channels:
        raise LimitExceededError(f"at most {max_channels} channels per connection")
    if len(names) == 1:  # the common case, without building a set to sort
        return [validate_channel(names[0])]
    return sorted({validate_channel(name) for name in names})


class SubscriberEndpoints:
    """``/ws``, ``/echo``, ``/sse`` and ``/poll`` over one node."""

    __slots__ = (
        "authenticator",
        "heartbeat",
        "limits",
        "node",
        "origins",
        "poll_presence",
        "session_settings",
        "settings",
        "sse_pinger",
    )

    def __init__(
        self,
        node: Node,
        limits: ConnectionLimits,
        *,
        authenticator: Authenticator,
        origins: OriginPolicy,
        heartbeat: Heartbeat,
        sse_pinger: SSEPinger,
        settings: StreamSettings,
        session_settings: SessionSettings,
    ) -> None:
        self.node = node
        self.limits = limits
        self.authenticator = authenticator
        self.origins = origins
        self.heartbeat = heartbeat
        self.sse_pinger = sse_pinger
        self.settings = settings
        self.session_settings = session_settings
        self.poll_presence = PollPresence(settings.presence_poll_grace_seconds, node.member_left)

    def permissions_of(self, request: Request, *, long_lived: bool) -> ChannelPermissions:
        """The request's identity (its token, or anonymous) and what it may do.

        Raises:
            UnauthorizedError, InvalidTokenError: no acceptable identity.
            TooManyConnectionsError: ``long_lived`` and the user has enough already.
        """
        identity = self.authenticator.identify(
            request.param("token"), request.headers.get("authorization")
        )
        most = self.settings.max_connections_per_user
        user = identity.user
        if long_lived and most and user is not None and self.node.users.count(user) >= most:
            raise TooManyConnectionsError(f"at most {most} connections per user")
        return ChannelPermissions(
            self.node.rules, identity, max_channel_length=self.settings.max_channel_length
        )

    def _subscribe_permissions(
        self, request: Request, channels: list[str], *, long_lived: bool
    ) -> ChannelPermissions:
        permissions = self.permissions_of(request, long_lived=long_lived)
        for channel in channels:
            permissions.check_subscribe(channel)
        return permissions

    def websocket(self, request: Request, connection: HttpConnection) -> None:
        """Complete the WebSocket handshake and hand the connection to a session."""
        if not request.upgrade:
            exc = UpgradeRequiredError("this endpoint needs a WebSocket upgrade request")
            self.node.counters.refuse("http", exc.code)
            connection.respond(
                exc.http_status,
                error_body(exc.code, str(exc)),
                headers=[(b"Upgrade", b"websocket")],
                keep_alive=False,
            )
            return
        echo = request.path == "/echo"
        channels = [] if echo else channels_of(request, self.limits.max_channels, required=False)
        # Refused here, the client gets a 401 it can read; URL channels it may not have
        # are refused after the upgrade, as error frames, like subscribe commands.
        permissions = None if echo else self.permissions_of(request, long_lived=True)
        result = handshake(
            request.raw_url.decode("latin-1"),
            # Only what the handshake reads: browsers send a dozen more (cookies, agent).
            [
                (name, value)
                for name, value in request.headers.items()
                if name in _HANDSHAKE_HEADERS
            ],
        )
        transport = connection.transport
        if transport is None:
            return  # the client is already gone
        if result.rejection is not None:
            raise BadRequestError(result.rejection)
        session: WebSocketSession
        if permissions is None:
            session = EchoSession(transport, self.limits, self.heartbeat)
        else:
            session = ChannelSession(
                transport,
                self.limits,
                self.heartbeat,
                self.node,
                permissions,
                self.session_settings,
            )
        session.cork(result.response)
        if isinstance(session, ChannelSession):
            session.subscribe_all(channels)
        session.uncork()
        connection.upgrade(session)

    async def sse(self, request: Request, connection: HttpConnection) -> None:
        """Open an event stream, replaying from ``Last-Event-ID`` / ``lastEventId`` first.

        ``GET`` names the channels in the query (what ``EventSource`` can do);
        ``POST`` in a JSON body, ``{"channels": [...], "last_event_id": ...}``, for
        fetch-based clients that also send ``Authorization``.
        """
        if request.method == "POST":
            channels, cursor = self._stream_body(request)
        else:
            channels = channels_of(request, self.limits.max_channels, required=True)
            cursor = request.param("lastEventId") or None
        # The browser's own Last-Event-ID wins: it is where the stream really got to.
        cursor = request.headers.get("last-event-id") or cursor
        permissions = self._subscribe_permissions(request, channels, long_lived=True)
        start = await open_stream(self.node, channels, cursor)
        hub = self.node.hub
        try:
            transport = connection.transport
            if connection.is_closed or transport is None:
                return
            head = [
                b"HTTP/1.1 200 OK\r\n",
                b"Content-Type: text/event-stream; charset=utf-8\r\n",
                b"Cache-Control: no-cache\r\n",
                b"X-Accel-Buffering: no\r\n",  # tell nginx not to hold events back
                b"Connection: close\r\n",
            ]
            for name, value in self.origins.cors_headers(
                request.headers.get("origin"), request.headers.get("host")
            ):
                head.append(b"%s: %s\r\n" % (name, value))
            head.append(b"\r\n")
            if request.method == "HEAD":  # what a GET would start, without the stream
                connection.start_stream(b"".join(head))
                connection.close()
                return
            connection.start_stream(
                b"".join(head) + opening_bytes(start, self.settings.sse_retry_ms)
            )
            stream = SSEStream(transport, self.limits.max_buffer_bytes, channels=tuple(channels))
            feed = hub.join(SSE_EVENTS, start.states, stream)
        finally:
            hub.release_all(start.states)
        pinger = self.sse_pinger
        pinger.streams.add(stream)
        identity = permissions.identity
        users = self.node.users
        node = self.node
        counters = node.counters.transports["sse"]
        counters.opened += 1
        if identity.user is not None:
            users.add(identity.user, stream)
            for state in start.states:
                node.member_joined(state, identity)
        expiry = None
        if identity.expires_at is not None:
            # A stream cannot be handed a new token: it ends, and the client comes
            # back with a fresh one (a grace of the refresh timeout, as on /ws).
            delay = (
                identity.expires_at - time.time() + self.session_settings.refresh_timeout_seconds
            )
            expiry = asyncio.get_running_loop().call_later(
                max(delay, 0.0), stream.close, TOKEN_EXPIRED
            )

        def on_lost() -> None:
            closed_by = stream.closed_by
            counters.close("client" if closed_by is None else close_reason(closed_by.code))
            pinger.streams.discard(stream)
            hub.leave(feed, stream)
            if identity.user is not None:
                users.remove(identity.user, stream)
                for channel in feed.channels:
                    node.member_left(channel, identity)
            if expiry is not None:
                expiry.cancel()

        connection.on_lost = on_lost

    def _stream_body(self, request: Request) -> tuple[list[str], str | None]:
        """The channels and cursor of a ``POST /sse`` body."""
        body = request.json_object('{"channels": [...]}')
        names = body.get("channels")
        if not isinstance(names, list) or not names:
            raise BadRequestError("channels must be a non-empty list of channel names")
        channels = _validated_channels(names, self.limits.max_channels)
        cursor = body.get("last_event_id")
        if cursor is not None and not isinstance(cursor, str):
            raise BadRequestError("last_event_id must be a string")
        return channels, cursor or None

    async def poll(self, request: Request, connection: HttpConnection) -> None:
        """Answer at once if anything follows the cursor (or ``timeout=0``), else wait."""
        channels = channels_of(request, self.limits.max_channels, required=True)
        identity = self._subscribe_permissions(request, channels, long_lived=False).identity
        if request.param("leave") == "1":
            # A poller going away says so: it leaves presence at once, not after the grace.
            left = self.poll_presence.leave(tuple(channels), identity)
            connection.respond(200, orjson.dumps({"left": left}), headers=[_NO_CACHE])
            return
        timeout = _timeout_of(request, self.settings.poll_max_timeout_seconds)
        start = await open_stream(self.node, channels, request.param("cursor") or None)
        hub = self.node.hub
        headers = [
            _NO_CACHE,
            *self.origins.cors_headers(request.headers.get("origin"), request.headers.get("host")),
        ]
        by_name = {state.name: state for state in start.states}
        joined: list[str] = []
        # Each poll counts as a connection of its own, open while it waits.
        counters = self.node.counters.transports["longpoll"]
        counters.opened += 1

        def join(name: str) -> None:
            joined.append(name)
            self.node.member_joined(by_name[name], identity)

        try:
            if start.steps or timeout == 0 or connection.is_closed:
                polled = self.poll_presence.polling(tuple(by_name), identity, join)
                # This answer goes before the hub's: it carries the user's own joins.
                connection.respond(
                    200, replay_body(start, _own_joins(joined, identity)), headers=headers
                )
                counters.close("answered")
                polled()
                return

            def respond(body: bytes) -> None:
                connection.on_lost = None
                connection.respond(200, body, headers=headers)
                counters.close("answered")
                polled()

            feed = hub.feed(POLL_ANSWERS, start.states)
            waiter = LongPollWaiter(
                feed, respond, timeout, leave=lambda waiter: hub.leave(feed, waiter)
            )
            feed.sinks.add(waiter)
            # Joined after the waiter: the user's own join answers this very poll.
            polled = self.poll_presence.polling(tuple(by_name), identity, join)
        finally:
            hub.release_all(start.states)

        def on_lost() -> None:
            waiter.cancel()
            counters.close("client")
            polled()

        connection.on_lost = on_lost

    async def presence(self, request: Request) -> tuple[int, object]:
        """``GET /presence?channel=``: the members, for a client that may subscribe to it."""
        channel = validate_channel(request.param("channel"))
        self._subscribe_permissions(request, [channel], long_lived=False)
        return 200, {"channel": channel, "members": await _members(self.node, channel)}


def _own_joins(channels: list[str], identity: Identity) -> list[bytes]:
    """The join events of a user who joined ``channels`` with this very request."""
    user = identity.user
    if user is None:
        return []
    return [presence_json("join", channel, user, identity.info) for channel in channels]


async def _members(node: Node, channel: str) -> list[dict[str, object]]:
    return [
        {"user": m.user, "info": m.info, "connections": m.connections}
        for m in await node.members(channel)
    ]


def _timeout_of(request: Request, maximum: float) -> float:
    raw = request.param("timeout")
    if raw is None or raw == "":
        return min(30.0, maximum)
    try:
        timeout = float(raw)
    except ValueError:
        raise BadRequestError(f"timeout must be a number of seconds, not {raw[:32]!r}") from None
    if not 0 <= timeout <= maximum:
        raise BadRequestError(f"timeout must be between 0 and {maximum:g} seconds")
    return timeout
