"""The subscriber endpoints: ``/ws`` (and ``/echo``), ``/sse`` and ``/poll``.

Each turns an HTTP request into a transport: it reads the channels and cursor
from the request, opens the stream through the core, and hands the connection
to the WebSocket session, the event stream or the long-poll waiter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pushwire.core.streams import open_stream
from pushwire.errors import BadRequestError, LimitExceededError
from pushwire.protocol.names import validate_channel
from pushwire.server.cors import cors_headers
from pushwire.server.http import HttpConnection, Request, error_body
from pushwire.transports.longpoll import LongPollWaiter, replay_body
from pushwire.transports.sse import SSEStream, opening_bytes
from pushwire.transports.websocket import EchoSession, WebSocketSession, handshake
from pushwire.transports.ws_channels import ChannelSession

if TYPE_CHECKING:
    from pushwire.server.app import Server

__all__ = ["channels_of", "handle_poll", "handle_sse", "handle_websocket"]

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


def handle_websocket(server: Server, request: Request, connection: HttpConnection) -> None:
    """Complete the WebSocket handshake and hand the connection to a session."""
    if not request.upgrade:
        connection.respond(
            426,
            error_body("bad_request", "this endpoint needs a WebSocket upgrade request"),
            headers=[(b"Upgrade", b"websocket")],
            keep_alive=False,
        )
        return
    echo = request.path == "/echo"
    channels = [] if echo else channels_of(request, server.limits.max_channels, required=False)
    result = handshake(
        request.raw_url.decode("latin-1"),
        # Only what the handshake reads: browsers send a dozen more (cookies, agent).
        [(name, value) for name, value in request.headers.items() if name in _HANDSHAKE_HEADERS],
    )
    transport = connection.transport
    if result.rejection is not None or transport is None:
        connection.respond(400, error_body("bad_request", result.rejection or ""), keep_alive=False)
        return
    session: WebSocketSession
    if echo:
        session = EchoSession(transport, server.limits, server.heartbeat)
    else:
        session = ChannelSession(transport, server.limits, server.heartbeat, server.node)
    session.cork(result.response)
    if isinstance(session, ChannelSession):
        session.subscribe_all(channels)
    session.uncork()
    connection.upgrade(session)


async def handle_sse(server: Server, request: Request, connection: HttpConnection) -> None:
    """Open an event stream, replaying from ``Last-Event-ID`` / ``lastEventId`` first."""
    channels = channels_of(request, server.limits.max_channels, required=True)
    cursor = request.headers.get("last-event-id") or request.param("lastEventId") or None
    start = await open_stream(server.node, channels, cursor)
    hub = server.node.hub
    group = hub.group(start.states)
    if connection.is_closed or connection.transport is None:
        hub.release_group(group)
        return
    head = [
        b"HTTP/1.1 200 OK\r\n",
        b"Content-Type: text/event-stream; charset=utf-8\r\n",
        b"Cache-Control: no-cache\r\n",
        b"X-Accel-Buffering: no\r\n",  # tell nginx not to hold events back
        b"Connection: close\r\n",
    ]
    for name, value in cors_headers(request.headers.get("origin"), server.limits.cors_origins):
        head.append(b"%s: %s\r\n" % (name, value))
    head.append(b"\r\n")
    connection.start_stream(b"".join(head) + opening_bytes(start, server.config.sse_retry_ms))
    stream = SSEStream(connection.transport, group, server.limits.max_buffer_bytes)
    group.sse.add(stream)
    server.sse_pinger.streams.add(stream)

    def on_lost() -> None:
        group.sse.discard(stream)
        server.sse_pinger.streams.discard(stream)
        hub.release_group(group)

    connection.on_lost = on_lost


async def handle_poll(server: Server, request: Request, connection: HttpConnection) -> None:
    """Answer at once if anything follows the cursor (or ``timeout=0``), else wait."""
    channels = channels_of(request, server.limits.max_channels, required=True)
    timeout = _timeout_of(request, server.config.poll_max_timeout_seconds)
    start = await open_stream(server.node, channels, request.param("cursor") or None)
    hub = server.node.hub
    group = hub.group(start.states)
    headers = [_NO_CACHE, *cors_headers(request.headers.get("origin"), server.limits.cors_origins)]
    if start.steps or timeout == 0 or connection.is_closed:
        hub.release_group(group)
        connection.respond(200, replay_body(start), headers=headers)
        return

    def respond(body: bytes) -> None:
        connection.on_lost = None
        connection.respond(200, body, headers=headers)
        hub.release_group(group)

    waiter = LongPollWaiter(group, respond, timeout)
    group.pollers.add(waiter)

    def on_lost() -> None:
        waiter.cancel()
        hub.release_group(group)

    connection.on_lost = on_lost


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
