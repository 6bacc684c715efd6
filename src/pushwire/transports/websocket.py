"""WebSocket connections: the handshake, frames in and out, closing, keep-alive pings.

The websockets library's sans-I/O ``ServerProtocol`` does the handshake, parses
and validates every incoming frame and handles control frames and the closing
handshake. Outgoing messages are whole unmasked text frames, built once per
publication by the hub and written here as they are.
"""

from __future__ import annotations

import asyncio
import codecs
import email.utils
import logging
import time

from websockets.datastructures import Headers
from websockets.exceptions import InvalidHandshake
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from pushwire.core.counters import close_reason
from pushwire.errors import (
    CLOSE_MESSAGE_TOO_BIG,
    INTERNAL_ERROR,
    PING_TIMEOUT,
    SLOW_CONSUMER,
    Disconnect,
    invalid_utf8,
)
from pushwire.protocol.codec import WS_PING_FRAME, ws_text_frame
from pushwire.transports.base import Clock, ConnectionLimits, LoopClock, Ticker, Timer

__all__ = ["Handshake", "Heartbeat", "WebSocketSession", "handshake"]

logger = logging.getLogger("pushwire.websocket")
# The library logs every open and close at INFO; at scale that is noise.
_protocol_logger = logging.getLogger("pushwire.websocket.protocol")
_protocol_logger.setLevel(logging.WARNING)

_utf8_decoder = codecs.getincrementaldecoder("utf-8")


class _ServerProtocol(ServerProtocol):
    """The library's protocol, accepting a Close in the middle of a fragmented message.

    RFC 6455 §5.4 lets control frames, Close included, arrive between fragments; the
    library fails such a connection with 1002 instead of closing it normally.
    """

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE:
            self.current_size = None  # the unfinished message is abandoned, not an error
        super().recv_frame(frame)


class Handshake:
    """The outcome of a handshake: the 101 response to send, or why the request was refused."""

    __slots__ = ("rejection", "response")

    def __init__(self, response: bytes, rejection: str | None) -> None:
        self.response = response
        self.rejection = rejection


# Checks upgrade requests. ``process_request`` keeps no per-connection state that
# pushwire reads, so one instance serves every handshake (none is configured with
# origins, extensions or subprotocols).
_validator = ServerProtocol(logger=_protocol_logger)


def handshake(raw_url: str, headers: list[tuple[str, str]]) -> Handshake:
    """Validate an upgrade request and build the 101 response (or the reason to refuse).

    The library checks the request (method, ``Connection``, ``Upgrade``, the key
    and version) and computes ``Sec-WebSocket-Accept``; only the four lines of
    the 101 are written here, with a ``Date`` formatted once a second. Accepting
    is what a reconnect storm costs: with a response object, its ``Headers``,
    the date and the protocol object (see :class:`WebSocketSession`) built for
    every connection, a handshake took 49 microseconds; without them, 10.
    """
    request = Request(raw_url, _parsed_headers(headers))
    try:
        accept, extensions, subprotocol = _validator.process_request(request)
    except InvalidHandshake:
        # The library's own refusal, worded as it words it. (Anything else is a
        # bug of ours and propagates, to be logged and answered with a 500.)
        body = _validator.accept(request).body or b""
        reason = body.decode("utf-8", "replace").strip().splitlines()
        return Handshake(b"", reason[0] if reason else "WebSocket handshake failed")
    head = (
        b"HTTP/1.1 101 Switching Protocols\r\nDate: %s\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n" % (_http_date(), accept.encode())
    )
    if extensions is not None:
        head += b"Sec-WebSocket-Extensions: %s\r\n" % extensions.encode("latin-1")
    if subprotocol is not None:
        head += b"Sec-WebSocket-Protocol: %s\r\n" % subprotocol.encode("latin-1")
    return Handshake(head + b"\r\n", None)


def _parsed_headers(headers: list[tuple[str, str]]) -> Headers:
    """The library's ``Headers`` for header lines httptools has already parsed.

    Names are lower-case and unique (repeated lines arrive joined by commas).
    Filling the two slots ``Headers`` is made of skips re-validating every value
    through ``__setitem__``, a third of the handshake's own time; a library whose
    ``Headers`` were built differently fails loudly here (the slots are fixed).
    """
    parsed = Headers.__new__(Headers)  # __init__ would only set the same two slots, slowly
    parsed._dict = {name: [value] for name, value in headers}
    parsed._list = headers
    return parsed


class _HttpDate:
    """Now as an HTTP ``Date`` (RFC 9110 §5.6.7), formatted at most once a second."""

    __slots__ = ("_formatted", "_second")

    def __init__(self) -> None:
        self._second = 0
        self._formatted = b""

    def __call__(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._formatted = email.utils.formatdate(now, usegmt=True).encode()
            self._second = now
        return self._formatted


_http_date = _HttpDate()
_LOOP_CLOCK = LoopClock()


def _new_protocol(max_message_bytes: int) -> ServerProtocol:
    return _ServerProtocol(state=State.OPEN, max_size=max_message_bytes, logger=_protocol_logger)


class WebSocketSession:
    """One open WebSocket: reassembles messages, writes frames, closes cleanly.

    Subclasses say what a complete message means (:meth:`on_message`) and what
    to release when the connection ends (:meth:`on_closed`).

    The library's protocol object, which parses incoming frames, is made when
    the client first sends something: a subscriber that only listens costs no
    frame parser until it answers a ping, and accepting stays cheap.
    """

    name = "websocket"
    unidirectional = False

    __slots__ = (
        "_abort_handle",
        "_corked",
        "_decoder",
        "_fragments",
        "_fragments_opcode",
        "_protocol",
        "awaiting_pong",
        "closed",
        "heartbeat",
        "limits",
        "ping_sent_at",
        "transport",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        limits: ConnectionLimits,
        heartbeat: Heartbeat | None,
    ) -> None:
        self._protocol: ServerProtocol | None = None
        self.transport = transport
        self.limits = limits
        self.heartbeat = heartbeat
        self.closed = False
        self.awaiting_pong = False
        self.ping_sent_at = 0.0
        self._fragments: list[bytes] | None = None  # only while a message is fragmented
        self._fragments_opcode: Opcode | None = None
        self._decoder: codecs.IncrementalDecoder | None = None
        self._abort_handle: Timer | None = None
        self._corked: list[bytes] | None = None
        if heartbeat is not None:
            heartbeat.add(self)

    @property
    def protocol(self) -> ServerProtocol:
        """The library's protocol for this connection, made on first use."""
        protocol = self._protocol
        if protocol is None:
            protocol = self._protocol = _new_protocol(self.limits.max_message_bytes)
        return protocol

    # Incoming bytes.

    def receive_data(self, data: bytes) -> None:
        self.awaiting_pong = False  # any traffic shows the peer is alive
        protocol = self.protocol
        was_open = protocol.state is State.OPEN
        protocol.receive_data(data)
        self._process_events(was_open)

    def receive_eof(self) -> None:
        protocol = self.protocol
        was_open = protocol.state is State.OPEN
        protocol.receive_eof()
        self._process_events(was_open)

    def _process_events(self, was_open: bool) -> None:
        """Frames parsed from one read, in order, up to a close frame.

        The library has parsed all of them, a close frame among them included, by
        now; data frames that came before the close still count (a publish sent
        just before closing), those after it are ignored (RFC 6455 §1.4).
        """
        for frame in self.protocol.events_received():
            if not was_open or not isinstance(frame, Frame):
                continue
            opcode = frame.opcode
            if opcode is Opcode.CLOSE:
                was_open = False
            elif opcode is Opcode.TEXT or opcode is Opcode.BINARY or opcode is Opcode.CONT:
                self._receive_data_frame(frame)
        self._flush_protocol()

    def _receive_data_frame(self, frame: Frame) -> None:
        if frame.opcode is not Opcode.CONT:
            self._fragments_opcode = frame.opcode
            self._decoder = _utf8_decoder() if frame.opcode is Opcode.TEXT else None
        if self._decoder is not None:
            # Decode as fragments arrive, so invalid UTF-8 fails fast (RFC 6455 §8.1).
            try:
                self._decoder.decode(frame.data, final=frame.fin)
            except UnicodeDecodeError as exc:
                self._fail(invalid_utf8(exc.reason))
                return
        if not frame.fin:
            if self._fragments is None:
                self._fragments = []
            self._fragments.append(bytes(frame.data))
            return
        if self._fragments is not None:
            self._fragments.append(bytes(frame.data))
            data = b"".join(self._fragments)
            self._fragments = None
        else:
            data = bytes(frame.data)
        is_text = self._fragments_opcode is Opcode.TEXT
        self._fragments_opcode = None
        self._decoder = None
        self._deliver(data, is_text)

    def receive_message(self, data: bytes, is_text: bool) -> None:
        """A whole message from a server that parses WebSocket frames itself (ASGI).

        Held to the same size limit as a message reassembled here (close 1009 past it);
        text must already be valid UTF-8, as ASGI servers hand it over.
        """
        self.awaiting_pong = False
        if len(data) > self.limits.max_message_bytes:
            self.protocol.fail(CLOSE_MESSAGE_TOO_BIG, "message too big")
            self._flush_protocol()
            return
        self._deliver(data, is_text)

    def _deliver(self, data: bytes, is_text: bool) -> None:
        try:
            self.on_message(data, is_text)
        except Exception:
            logger.exception("message handler failed")
            self._fail(INTERNAL_ERROR)

    def _fail(self, reason: Disconnect) -> None:
        self.protocol.fail(reason.code, reason.reason)
        self._flush_protocol()

    def _flush_protocol(self) -> None:
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.transport.write(chunk)
            else:
                # The protocol signals end of stream: after a close handshake a
                # server closes the TCP connection itself (RFC 6455 §7.1.1).
                self.transport.close()
        if self.protocol.state is State.CLOSING or self.protocol.state is State.CLOSED:
            self._closing()

    # Outgoing.

    def send(self, payload: bytes) -> None:
        """Send one text frame now (a reply; fan-out uses :meth:`write`)."""
        if not self.closed:
            if self._corked is not None:
                self._corked.append(ws_text_frame(payload))
            else:
                self.transport.write(ws_text_frame(payload))

    def cork(self, first: bytes) -> None:
        """Hold replies back, after ``first``, until :meth:`uncork` writes them in one go.

        A new connection's handshake response and its first replies then cost one
        system call instead of several: accepting is mostly system calls.
        """
        self._corked = [first]

    def uncork(self) -> None:
        corked, self._corked = self._corked, None
        if corked:
            self.transport.write(b"".join(corked))

    def write(self, data: bytes) -> bool:
        """Fan-out bytes (whole frames, encoded once for every subscriber)."""
        transport = self.transport
        transport.write(data)
        return transport.get_write_buffer_size() <= self.limits.max_buffer_bytes

    def ping(self, now: float) -> None:
        self.awaiting_pong = True
        self.ping_sent_at = now
        self.transport.write(WS_PING_FRAME)

    def close(self, reason: Disconnect) -> None:
        """Start the closing handshake; abort the TCP connection if the peer never answers."""
        if reason is SLOW_CONSUMER:
            logger.info(
                "closing a slow consumer (%d bytes unsent)",
                self.transport.get_write_buffer_size(),
                extra={"event": "slow_consumer", "transport": "websocket"},
            )
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(reason.code, reason.reason)
            self._flush_protocol()

    # Lifecycle.

    def _closing(self) -> None:
        """The closing handshake began: stop deliveries, and bound how long it may take."""
        if not self.closed:
            self.closed = True
            if self.heartbeat is not None:
                self.heartbeat.discard(self)
            self.on_closed()
        if self._abort_handle is None and not self.transport.is_closing():
            self._abort_handle = _LOOP_CLOCK.call_later(
                self.limits.close_timeout_seconds, self.transport.abort
            )

    def connection_lost(self) -> None:
        if self._abort_handle is not None:
            self._abort_handle.cancel()
        if not self.closed:
            self.closed = True
            if self.heartbeat is not None:
                self.heartbeat.discard(self)
            self.on_closed()

    def close_reason(self) -> str:
        """Why the connection ended, as the counters label it (``core.counters``).

        ``client`` if the client's close frame came first, the name of the server's
        close code if the server's did, ``lost`` if the TCP connection went first.
        """
        protocol = self._protocol
        if protocol is None:
            return "lost"  # never sent a frame, never got one: only the network ends that
        sent, received = protocol.close_sent, protocol.close_rcvd
        if received is not None and (sent is None or protocol.close_rcvd_then_sent):
            return "client"
        return "lost" if sent is None else close_reason(sent.code)

    def on_message(self, data: bytes, is_text: bool) -> None:
        """A complete message arrived (text is valid UTF-8)."""
        raise NotImplementedError

    def on_closed(self) -> None:
        """The connection is closing or gone: release subscriptions. Called once."""


class Heartbeat:
    """Pings every open WebSocket on one timer and closes those that don't answer.

    One timer for all connections, not one per connection: at each interval every
    session not already waiting gets a ping; ``timeout`` later, sessions still
    waiting are closed (half-open connections are found this way).
    """

    __slots__ = ("_checks", "_clock", "_sessions", "_ticker", "timeout")

    def __init__(self, interval: float, timeout: float, *, clock: Clock | None = None) -> None:
        self.timeout = timeout
        self._clock = clock = clock or LoopClock()
        self._sessions: set[WebSocketSession] = set()
        self._ticker = Ticker(interval, self._ping_all, clock=clock)
        self._checks: list[Timer] = []  # pong checks due (one per ping round)

    def add(self, session: WebSocketSession) -> None:
        self._sessions.add(session)

    def discard(self, session: WebSocketSession) -> None:
        self._sessions.discard(session)

    def sessions(self) -> list[WebSocketSession]:
        """Every open WebSocket (a session leaves once its closing handshake starts)."""
        return list(self._sessions)

    def start(self) -> None:
        self._ticker.start()

    def stop(self) -> None:
        self._ticker.stop()
        for check in self._checks:
            check.cancel()
        self._checks.clear()

    def _ping_all(self) -> None:
        now = self._clock.time()
        for session in self._sessions:
            if not session.awaiting_pong:
                session.ping(now)
        self._checks.append(self._clock.call_later(self.timeout, self._expire))

    def _expire(self) -> None:
        if self._checks:
            self._checks.pop(0)  # the oldest check is the one running
        deadline = self._clock.time() - self.timeout + 0.001
        expired = [s for s in self._sessions if s.awaiting_pong and s.ping_sent_at <= deadline]
        for session in expired:
            logger.info("no pong within %.1f s: closing", self.timeout)
            session.close(PING_TIMEOUT)


class EchoSession(WebSocketSession):
    """Echoes messages through the same code paths and limits as ``/ws``."""

    __slots__ = ()

    def on_message(self, data: bytes, is_text: bool) -> None:
        if is_text:
            self.protocol.send_text(data)
        else:
            self.protocol.send_binary(data)
        self._flush_protocol()
