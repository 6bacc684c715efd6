"""The subscriber endpoints: ``/ws`` (and ``/echo``), ``/sse`` and ``/poll``.

Each turns an HTTP request into a transport: it reads the channels and cursor
from the request, opens the stream through the core, and hands the connection
to the WebSocket session, the event stream or the long-poll waiter.
"""

from __future__ import annotations

from dataclasses import dataclass

from pushwire.core.node import Node
from pushwire.core.permissions import ChannelPermissions
from pushwire.core.streams import open_stream
from pushwire.errors import BadRequestError, LimitExceededError, UpgradeRequiredError
from pushwire.protocol.error_mapping import error_body
from pushwire.protocol.names import validate_channel
from pushwire.server.http import HttpConnection, Request
from pushwire.server.origins import OriginPolicy
from pushwire.transports.base import ConnectionLimits
from pushwire.transports.longpoll import POLL_ANSWERS, LongPollWaiter, replay_body
from pushwire.transports.sse import SSE_EVENTS, SSEPinger, SSEStream, opening_bytes
from pushwire.transports.websocket import EchoSession, Heartbeat, WebSocketSession, handshake
from pushwire.transports.ws_channels import ChannelSession

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


def channels_of(request: Request, max_channels: int, *, required: bool) -> list[str]:
    """The request's ``channel`` parameters: validated, unique, sorted.

    Raises:
        BadRequestError, InvalidChannelError, LimitExceededError: naming the problem.
    """
    names = request.params("channel")
    if required and not names:
        raise BadRequestError("name at least one channel: ?channel=NAME")
    if len(names) == 1:  # the common case, without building a set to sort
        channels = [validate_channel(names[0])]
    else:
        channels = sorted({validate_channel(name) for name in names})
    if len(channels) > max_channels:
        raise LimitExceededError(f"at most {max_channels} channels per connection")
    return channels


class SubscriberEndpoints:
    """``/ws``, ``/echo``, ``/sse`` and ``/poll`` over one node."""

    __slots__ = ("heartbeat", "limits", "node", "origins", "settings", "sse_pinger")

    def __init__(
        self,
        node: Node,
        limits: ConnectionLimits,
        *,
        origins: OriginPolicy,
        heartbeat: Heartbeat,
        sse_pinger: SSEPinger,
        settings: StreamSettings,
    ) -> None:
        self.node = node
        self.limits = limits
        self.origins = origins
        self.heartbeat = heartbeat
        self.sse_pinger = sse_pinger
        self.settings = settings

    def _check_subscribe(self, channels: list[str]) -> None:
        permissions = ChannelPermissions(self.node.rules)
        for channel in channels:
            permissions.check_subscribe(channel)

    def websocket(self, request: Request, connection: HttpConnection) -> None:
        """Complete the WebSocket handshake and hand the connection to a session."""
        if not request.upgrade:
            exc = UpgradeRequiredError("this endpoint needs a WebSocket upgrade request")
            connection.respond(
                exc.http_status,
                error_body(exc.code, str(exc)),
                headers=[(b"Upgrade", b"websocket")],
                keep_alive=False,
            )
            return
        echo = request.path == "/echo"
        channels = [] if echo else channels_of(request, self.limits.max_channels, required=False)
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
        if echo:
            session = EchoSession(transport, self.limits, self.heartbeat)
        else:
            permissions = ChannelPermissions(self.node.rules)
            session = ChannelSession(transport, self.limits, self.heartbeat, self.node, permissions)
        session.cork(result.response)
        if isinstance(session, ChannelSession):
            session.subscribe_all(channels)
        session.uncork()
        connection.upgrade(session)

    async def sse(self, request: Request, connection: HttpConnection) -> None:
        """Open an event stream, replaying from ``Last-Event-ID`` / ``lastEventId`` first."""
        channels = channels_of(request, self.limits.max_channels, required=True)
        self._check_subscribe(channels)
        cursor = request.headers.get("last-event-id") or request.param("lastEventId") or None
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
            connection.start_stream(
                b"".join(head) + opening_bytes(start, self.settings.sse_retry_ms)
            )
            stream = SSEStream(transport, self.limits.max_buffer_bytes)
            feed = hub.join(SSE_EVENTS, start.states, stream)
        finally:
            hub.release_all(start.states)
        pinger = self.sse_pinger
        pinger.streams.add(stream)

        def on_lost() -> None:
            pinger.streams.discard(stream)
            hub.leave(feed, stream)

        connection.on_lost = on_lost

    async def poll(self, request: Request, connection: HttpConnection) -> None:
        """Answer at once if anything follows the cursor (or ``timeout=0``), else wait."""
        channels = channels_of(request, self.limits.max_channels, required=True)
        self._check_subscribe(channels)
        timeout = _timeout_of(request, self.settings.poll_max_timeout_seconds)
        start = await open_stream(self.node, channels, request.param("cursor") or None)
        hub = self.node.hub
        headers = [
            _NO_CACHE,
            *self.origins.cors_headers(request.headers.get("origin"), request.headers.get("host")),
        ]
        try:
            if start.steps or timeout == 0 or connection.is_closed:
                connection.respond(200, replay_body(start), headers=headers)
                return

            def respond(body: bytes) -> None:
                connection.on_lost = None
                connection.respond(200, body, headers=headers)

            feed = hub.feed(POLL_ANSWERS, start.states)
            waiter = LongPollWaiter(
                feed, respond, timeout, leave=lambda waiter: hub.leave(feed, waiter)
            )
            feed.sinks.add(waiter)
        finally:
            hub.release_all(start.states)
        connection.on_lost = waiter.cancel


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
