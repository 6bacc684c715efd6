"""One HTTP/1.1 connection: httptools parses, the router answers, in request order.

A connection is in one :class:`ConnectionMode` at a time and changes it only as
``_TRANSITIONS`` allows: HTTP (idle, or busy answering a request, a long-poll
perhaps), then for good a WebSocket or an event stream, and at last closed.
Pipelined requests are queued and answered in order; reading pauses if too many pile up.
Requests the router says may overlap (publications) are all started as they arrive,
without waiting for the answer to the one before: their answers are still written in
request order, several in one write.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, cast
from urllib.parse import parse_qs

import httptools
import orjson

from pushwire.errors import (
    BadRequestError,
    ClientError,
    HeadersTooLargeError,
    InvalidJSONError,
    MessageTooLargeError,
    NotFoundError,
    RequestTimeoutError,
    UrlTooLongError,
)
from pushwire.protocol.error_mapping import error_code, http_error

__all__ = ["ConnectionMode", "HttpConnection", "Request", "Router"]

MAX_HEAD_BYTES = 16 * 1024
MAX_HEADERS = 100
#: Requests a connection holds (queued, or started and not yet answered) before it
#: stops reading: what one client can make the server keep is bounded.
MAX_QUEUED_REQUESTS = 64
#: After an error answer, how long the client may go on sending (a body too large, say)
#: before the connection is closed for good: closing with its bytes unread would reset
#: the connection, and the client could lose the answer it has not read yet.
LINGER_SECONDS = 2.0
#: Overlapping requests a connection has started and not answered, and requests it
#: hands to the router in one go. One chunk of bytes may hold hundreds of requests;
#: handling them all at once would make one loop iteration (and the wait of every
#: other connection) as long as all of them take: the rest wait for the next.
MAX_STARTED_REQUESTS = 32
_REASONS = {
    200: b"OK",
    204: b"No Content",
    301: b"Moved Permanently",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Content Too Large",
    414: b"URI Too Long",
    426: b"Upgrade Required",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


# The head of fail()'s answer: what respond() writes for JSON without keep-alive.
_FAILURE_HEAD = (
    b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
    b"Connection: close\r\n\r\n"
)
# What respond() writes for an answer with no extra headers that keeps the connection.
_PLAIN_HEAD = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
_NO_REQUESTS: list[Request] = []
_NO_HEADERS: dict[str, str] = {}
_NO_BODY: list[bytes] = []


class Request:
    """A parsed request: method, path, query parameters, headers (lower-case) and body."""

    __slots__ = (
        "_query",
        "answer",
        "body",
        "closes",
        "headers",
        "keep_alive",
        "method",
        "path",
        "raw_url",
        "upgrade",
    )

    def __init__(
        self,
        method: str,
        raw_url: bytes,
        headers: dict[str, str],
        body: bytes,
        *,
        keep_alive: bool,
        upgrade: bool,
    ) -> None:
        self.method = method
        self.raw_url = raw_url
        path, _, _ = raw_url.partition(b"?")
        self.path = path.decode("latin-1")
        self._query: dict[str, list[str]] | None = None
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.upgrade = upgrade
        #: The response, once answered, while answers before it are still awaited.
        self.answer: bytes | None = None
        self.closes = False  # the answer ends the connection

    @property
    def query(self) -> dict[str, list[str]]:
        """Query parameters, parsed on first use (many requests never look)."""
        if self._query is None:
            query = self.raw_url.partition(b"?")[2].decode("latin-1")
            self._query = _parse_query(query)
        return self._query

    def param(self, name: str) -> str | None:
        """The last value of query parameter ``name``, if present."""
        values = self.query.get(name)
        return values[-1] if values else None

    def params(self, name: str) -> list[str]:
        return self.query.get(name, [])

    def json_object(self, shape: str = "") -> dict[str, Any]:
        """The body of a ``POST``, which must be a JSON object (``shape`` says which).

        Raises:
            NotFoundError: if the method is not POST (the endpoint takes only POST).
            InvalidJSONError, BadRequestError: naming what is wrong with the body.
        """
        if self.method != "POST":
            raise NotFoundError("use POST with a JSON body")
        try:
            body = orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise InvalidJSONError(f"body is not valid JSON: {exc.msg}") from None
        if not isinstance(body, dict):
            raise BadRequestError(f"body must be a JSON object{': ' + shape if shape else ''}")
        return body


def _parse_query(query: str) -> dict[str, list[str]]:
    """``parse_qs``, with a fast path for the plain ``channel=a&cursor=b`` queries
    subscribers send thousands of times a second (nothing to unescape)."""
    if "%" in query or "+" in query:
        return parse_qs(query, keep_blank_values=True)
    params: dict[str, list[str]] = {}
    for pair in query.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            params.setdefault(name, []).append(value)
    return params


class Router(Protocol):
    def handle(self, request: Request, connection: HttpConnection) -> None:
        """Answer ``request`` now or later; the connection waits for ``respond``."""

    def overlaps(self, request: Request) -> bool:
        """May ``request`` start before the requests ahead of it are answered?

        True only of requests answered once with a plain response, never an upgrade,
        a stream or a long-poll, and whose effect does not depend on the requests
        ahead of them having finished (publications: started in arrival order, they
        keep their order in each channel).
        """

    def connection_opened(self, connection: HttpConnection) -> None: ...

    def connection_closed(self, connection: HttpConnection) -> None: ...

    def request_refused(self, code: str) -> None:
        """The connection refused a request itself (malformed, too large, too slow)."""


class Upgraded(Protocol):
    """Where bytes go once the connection is a WebSocket."""

    def receive_data(self, data: bytes) -> None: ...

    def receive_eof(self) -> None: ...

    def connection_lost(self) -> None: ...


class ConnectionMode(enum.Enum):
    """What a connection is now, and so where the client's bytes go."""

    IDLE = enum.auto()
    """HTTP, waiting for the next request: bytes go to the parser."""
    BUSY = enum.auto()
    """HTTP, the router holds a request (a long-poll may wait for minutes), or several
    that overlap, and the connection waits for ``respond``; bytes still go to the
    parser, requests queue."""
    WEBSOCKET = enum.auto()
    """Upgraded for good: bytes go to the ``upgraded`` session."""
    STREAMING = enum.auto()
    """An event stream for good: the client has nothing more to say, bytes are ignored."""
    CLOSED = enum.auto()
    """Lost, or failed by ``fail``: nothing more is read, ``respond`` does nothing."""

    # Members are singletons, so identity is their equality and may be their hash:
    # Enum's own __hash__ is Python code, run twice per request by _set_mode.
    __hash__ = object.__hash__


# Python 3.11 looks up ``ConnectionMode.IDLE`` in some 70 ns and a module global in
# some 4; the modes are checked several times per request, so the hot paths use these.
_IDLE = ConnectionMode.IDLE
_BUSY = ConnectionMode.BUSY
_WEBSOCKET = ConnectionMode.WEBSOCKET
_STREAMING = ConnectionMode.STREAMING
_CLOSED = ConnectionMode.CLOSED

#: The modes each mode may change to; anything else is a bug of ours.
_TRANSITIONS: dict[ConnectionMode, frozenset[ConnectionMode]] = {
    _IDLE: frozenset({_BUSY, _CLOSED}),  # a request goes to the router; lost or failed
    _BUSY: frozenset({_IDLE, _WEBSOCKET, _STREAMING, _CLOSED}),  # respond, upgrade, stream
    _WEBSOCKET: frozenset({_CLOSED}),
    _STREAMING: frozenset({_CLOSED}),
    _CLOSED: frozenset(),
}


class HttpConnection(asyncio.Protocol):
    """Parses requests, hands them to the router one at a time, writes responses.

    Its :class:`ConnectionMode` changes only through ``_set_mode``. Two booleans
    are not modes, because each can be true or false in more than one mode:
    ``_paused`` (reading is paused while too many pipelined requests wait, in
    IDLE or BUSY alike) and ``_processing`` (``_process_queue`` is on the stack,
    so a handler that answers at once does not re-enter it).

    ``_started`` holds the requests the router has and has not answered, oldest
    first: one, or several that overlap (``Router.overlaps``). An answer is kept
    on its request until those before it are answered; answers ready together
    (a group of publications committed at once, or requests answered at once
    from one chunk of bytes) leave in one write, not one each.
    """

    __slots__ = (
        "_body",
        "_body_size",
        "_head_bytes",
        "_headers",
        "_kept_alive",
        "_max_body_bytes",
        "_mode",
        "_out",
        "_overlap",
        "_parser",
        "_paused",
        "_processing",
        "_queue",
        "_resume_soon",
        "_router",
        "_since",
        "_started",
        "_upgraded",
        "_url",
        "_write_soon",
        "on_lost",
        "transport",
        "upgrade_tail",
    )

    def __init__(self, router: Router, max_body_bytes: int) -> None:
        self._router = router
        self._max_body_bytes = max_body_bytes
        self._parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self._queue: list[Request] = []  # pipelined requests; a list: it is short
        self._started: list[Request] = []  # handed to the router, not yet answered
        self._overlap = False  # the started requests overlap: the next may join them
        self._out: list[bytes] = []  # answers due, in order, for the next write
        self._write_soon = False  # a write of _out is scheduled
        self._resume_soon = False  # _process_queue is scheduled (it handed out enough)
        self._mode = _IDLE
        self._processing = False
        self._paused = False
        #: When the connection last became idle or began a request (monotonic seconds).
        self._since = time.monotonic()
        self._kept_alive = False  # has answered a request: the idle timeout applies
        self._reset_message()
        self.transport: asyncio.Transport | None = None
        self._upgraded: Upgraded | None = None
        #: Bytes that came after an upgrade request; they belong to the WebSocket.
        self.upgrade_tail = b""
        #: Called once when the connection goes away (stream and poll clean-up).
        self.on_lost: Callable[[], None] | None = None

    @property
    def mode(self) -> ConnectionMode:
        """What the connection is now; see ``_TRANSITIONS`` for how that changes."""
        return self._mode

    @property
    def is_closed(self) -> bool:
        """Lost, or failed: a handler that was waiting should not answer."""
        return self._mode is _CLOSED

    @property
    def upgraded(self) -> Upgraded | None:
        """The WebSocket session the connection was handed to by ``upgrade``, if any."""
        return self._upgraded

    def _set_mode(self, mode: ConnectionMode) -> None:
        """Change mode as ``_TRANSITIONS`` allows.

        Raises:
            RuntimeError: on any other change, a bug in pushwire, never the client's doing.
        """
        if mode not in _TRANSITIONS[self._mode]:
            raise RuntimeError(f"an HTTP connection cannot go from {self._mode} to {mode}")
        self._mode = mode

    def _reset_message(self) -> None:
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._body_size = 0
        self._head_bytes = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but quack alike.
        # Both asyncio and uvloop set TCP_NODELAY on TCP connections already, so
        # small pushes leave at once rather than waiting for Nagle's algorithm.
        self.transport = cast(asyncio.Transport, transport)
        self._router.connection_opened(self)

    def data_received(self, data: bytes) -> None:
        mode = self._mode
        if mode is _WEBSOCKET:
            upgraded = self._upgraded
            assert upgraded is not None  # upgrade() sets both
            upgraded.receive_data(data)
            return
        if mode is _STREAMING or mode is _CLOSED:
            return  # an event stream's client has nothing more to say; a closed one is not heard
        if mode is _IDLE and not self._url and not self._headers and not self._queue:
            self._since = time.monotonic()  # a request begins: it has so long to arrive whole
        parser = self._parser
        if parser is None:
            # After an upgrade request that was refused, HTTP goes on with a new parser.
            parser = self._parser = httptools.HttpRequestParser(self)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            # Bytes after the upgrade request already belong to the WebSocket. The
            # parser is spent; a new one is made only if the upgrade is refused.
            self.upgrade_tail = data[exc.args[0] :]
            self._parser = None
        except httptools.HttpParserError as exc:
            # Errors raised in our callbacks arrive wrapped, the original as context.
            cause = exc.__context__
            if not isinstance(cause, ClientError):
                cause = BadRequestError(f"malformed HTTP request: {exc}")
            self._router.request_refused(error_code(cause))
            self.fail(*http_error(cause, context="parsing a request"))
            return
        # Requests are handled after parsing, not from inside parser callbacks.
        self._process_queue()

    def eof_received(self) -> bool | None:
        if self._mode is _WEBSOCKET:
            upgraded = self._upgraded
            assert upgraded is not None  # upgrade() sets both
            upgraded.receive_eof()
            return True  # the session closes the transport once its close is sent
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._mode is not _CLOSED:  # after fail it is already
            self._set_mode(_CLOSED)
        self._queue.clear()
        self._started.clear()
        self._out.clear()
        # The parser holds this connection's callbacks: a reference cycle that only the
        # cyclic collector frees, and `pushwire serve` runs a full collection rarely
        # (cli._tune_garbage_collector), so every closed HTTP connection stayed in
        # memory for hours. Dropped here, the connection goes as its last reference does.
        self._parser = None
        # A session handed the connection is told even if fail closed it since.
        if self._upgraded is not None:
            self._upgraded.connection_lost()
        on_lost, self.on_lost = self.on_lost, None
        if on_lost is not None:
            on_lost()
        self._router.connection_closed(self)

    def pause_writing(self) -> None:
        # Buffers are bounded by the sessions' own checks; nothing to pause here.
        pass

    def resume_writing(self) -> None:
        pass

    # httptools callbacks

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_HEAD_BYTES:
            raise UrlTooLongError("request URL is too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > MAX_HEAD_BYTES:
            raise HeadersTooLargeError("request headers are too large")
        if len(self._headers) >= MAX_HEADERS:
            raise HeadersTooLargeError(f"more than {MAX_HEADERS} request headers")
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self._headers.get(key)
        self._headers[key] = text if previous is None else f"{previous}, {text}"

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._max_body_bytes:
            raise MessageTooLargeError(f"body is over {self._max_body_bytes} bytes")
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self._parser
        assert parser is not None  # only the parser calls this
        request = Request(
            parser.get_method().decode("latin-1"),
            self._url,
            self._headers,
            b"".join(self._body),
            keep_alive=parser.should_keep_alive(),
            upgrade=parser.should_upgrade(),
        )
        self._reset_message()
        self._queue.append(request)
        held = len(self._queue) + len(self._started)
        if held > MAX_QUEUED_REQUESTS and not self._paused and self.transport:
            self._paused = True
            self.transport.pause_reading()

    # Request processing

    def hand_over(self, request: Request) -> None:
        """Handle ``request`` parsed elsewhere (by an ASGI server) as if it were read here."""
        self._queue.append(request)
        self._process_queue()

    def _process_queue(self) -> None:
        """Hand queued requests to the router: the next when idle, or all that overlap."""
        if self._processing:
            return  # a handler answered synchronously; the loop below continues
        self._processing = True
        queue = self._queue
        router = self._router
        handed = 0
        try:
            while queue:
                if handed >= MAX_STARTED_REQUESTS:
                    # Enough for one go: other connections' turn, then the rest.
                    if not self._resume_soon:
                        self._resume_soon = True
                        asyncio.get_running_loop().call_soon(self._resume_queue)
                    break
                handed += 1
                mode = self._mode
                if mode is _IDLE:
                    request = queue[0]
                    overlap = request.keep_alive and router.overlaps(request)
                    if not overlap and self._out:
                        # It may write for itself (a 101, a stream's head): answers first.
                        self._write_out()
                        if self._mode is not _IDLE:
                            break  # that write closed the connection
                    del queue[0]
                    self._overlap = overlap
                    self._set_mode(_BUSY)
                elif (
                    mode is _BUSY
                    and self._overlap
                    and len(self._started) < MAX_STARTED_REQUESTS
                    and router.overlaps(queue[0])
                ):
                    request = queue.pop(0)
                    self._overlap = request.keep_alive
                else:
                    break
                self._started.append(request)
                router.handle(request, self)
        finally:
            self._processing = False
        if self._out and not self._started:
            self._write_out()  # all answered at once: no later answer to wait for
        elif self._out and not self._write_soon:
            self._schedule_write()
        self._resume_if_drained()

    def _resume_queue(self) -> None:
        self._resume_soon = False
        if self._queue and self._mode is not _CLOSED:
            self._process_queue()

    def _resume_if_drained(self) -> None:
        if (
            self._paused
            and len(self._queue) + len(self._started) < MAX_QUEUED_REQUESTS // 2
            and self.transport
        ):
            self._paused = False
            self.transport.resume_reading()

    def _schedule_write(self) -> None:
        """Write ``_out`` after this loop iteration: answers finished in it leave together."""
        self._write_soon = True
        asyncio.get_running_loop().call_soon(self._write_soon_now)

    def _write_soon_now(self) -> None:
        self._write_soon = False
        if self._out:
            self._write_out()
            if self._queue:
                self._process_queue()
            self._resume_if_drained()

    def _write_out(self) -> None:
        """Write the answers due, in one write; close after one that ends the connection."""
        out, self._out = self._out, []
        transport = self.transport
        if not out or transport is None or transport.is_closing():
            return
        transport.write(out[0] if len(out) == 1 else b"".join(out))

    def respond(
        self,
        status: int,
        body: bytes,
        *,
        content_type: bytes = b"application/json",
        headers: Iterable[tuple[bytes, bytes]] = (),
        keep_alive: bool = True,
        request: Request | None = None,
    ) -> None:
        """Answer ``request`` (by default the oldest the router holds); the next queued
        request is handled after it.

        The connection is kept open only if ``keep_alive`` and the request both allow
        it (a ``Connection: close`` or HTTP/1.0 request is always closed after).

        With overlapping requests in flight, name the one answered: its answer waits
        until those before it are answered. Does nothing once the connection is
        closed (a long-poll may outlive its client).

        Raises:
            RuntimeError: if no request is waiting for an answer (a bug of ours).
        """
        transport = self.transport
        if transport is None or self._mode is _CLOSED or transport.is_closing():
            return  # an answer after a "Connection: close" one, too, is dropped
        started = self._started
        if request is None:
            if not started:
                # No request waits: a bug of ours, reported as the transition it would be.
                self._set_mode(_IDLE)
            request = started[0]
        elif request not in started:
            raise RuntimeError(
                f"{request.method} {request.path[:100]} is not waiting for an answer"
            )
        keep_alive = keep_alive and request.keep_alive  # the client said close (or HTTP/1.0)
        length = len(body)
        if request.method == "HEAD":
            body = b""  # HEAD: the GET's Content-Length, never its body
        if not headers and keep_alive:  # most answers: one format, no list
            request.answer = _PLAIN_HEAD % (
                status,
                _REASONS.get(status, b"Unknown"),
                content_type,
                length,
                body,
            )
        else:
            head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown"))]
            head.append(b"Content-Type: %s\r\nContent-Length: %d\r\n" % (content_type, length))
            for name, value in headers:
                head.append(b"%s: %s\r\n" % (name, value))
            if not keep_alive:
                head.append(b"Connection: close\r\n")
            head.append(b"\r\n")
            head.append(body)
            request.answer = b"".join(head)
        request.closes = not keep_alive
        if started[0] is not request:
            return  # answered ahead of its turn: it leaves after the ones before it
        if self._release_answers() or self._processing:
            # Closed; or _process_queue writes what is due once it has handed out the rest.
            return
        if not started:
            self._write_out()
            if self._queue:
                self._process_queue()
            self._resume_if_drained()
        elif not self._write_soon:
            self._schedule_write()  # more answers are on their way: write them together

    def _release_answers(self) -> bool:
        """Move the answers now due (the oldest started requests') to ``_out``.

        Returns True if one of them ends the connection: later ones are dropped.
        """
        started = self._started
        while started and started[0].answer is not None:
            request = started.pop(0)
            answer, request.answer = request.answer, None
            assert answer is not None  # checked by the loop
            self._out.append(answer)
            if request.closes:
                # Requests still queued go to the router as before; their answers
                # find the transport closing and are dropped. Started ones: likewise.
                started.clear()
                self._set_mode(_IDLE)
                self._write_out()
                self.close()
                return True
        if not started:
            self._set_mode(_IDLE)
            self._since = time.monotonic()
            self._kept_alive = True
        return False

    def fail(self, status: int, body: bytes) -> None:
        """Answer with an error body and close: after a parse error, nothing after it is trusted.

        Queued requests are dropped, the connection is closed at once and later
        answers and bytes are ignored. Does nothing if it is closed already.
        """
        transport = self.transport
        if transport is None or self._mode is _CLOSED:
            return
        self._queue.clear()
        self._started.clear()
        self._set_mode(_CLOSED)
        head = _FAILURE_HEAD % (status, _REASONS.get(status, b"Unknown"), len(body))
        self._out.append(head + body)  # after the answers already due
        self._write_out()
        self._linger()

    def _linger(self) -> None:
        """Close our side once the answer is out, and the whole connection a little later.

        What the client still sends meanwhile is read and dropped (``_CLOSED``), so the
        kernel never answers it with a reset that would destroy the error answer in the
        client's receive buffer. The client's own close ends it sooner.
        """
        transport = self.transport
        try:
            half_close = transport is not None and transport.can_write_eof()
        except NotImplementedError:  # a transport without half-close (ASGI's)
            half_close = False
        if not half_close:
            self.close()
            return
        assert transport is not None
        transport.write_eof()
        if self._paused:
            self._paused = False
            transport.resume_reading()  # unread bytes at the close would mean a reset
        asyncio.get_running_loop().call_later(LINGER_SECONDS, self.close)

    def check_timeouts(self, now: float, *, request_seconds: float, idle_seconds: float) -> None:
        """Close a connection that idles too long, or answers 408 to one too slow to ask.

        Only an HTTP connection waiting for its client counts: one whose request a
        handler holds (a long-poll) is busy, and WebSockets and streams are not HTTP.
        """
        if self._mode is not _IDLE or self._queue:
            return
        if self._url or self._headers or not self._kept_alive:
            # A request begun, or a new connection that has yet to send its first.
            if now - self._since > request_seconds:
                timeout = RequestTimeoutError(
                    f"the request did not arrive within {request_seconds:g} s"
                )
                self._router.request_refused(timeout.code)
                self.fail(*http_error(timeout, context="reading a request"))
        elif now - self._since > idle_seconds:
            self._set_mode(_CLOSED)
            self.close()

    def upgrade(self, session: Upgraded) -> None:
        """Hand the connection to a WebSocket session for good; write the 101 before this.

        The bytes that came after the upgrade request go to the session first.
        """
        self._set_mode(_WEBSOCKET)
        self._upgraded = session
        self._release_http_state()
        tail, self.upgrade_tail = self.upgrade_tail, b""
        if tail:
            session.receive_data(tail)

    def start_stream(self, head: bytes) -> None:
        """Write a streaming response's head; from now on the client's bytes are ignored."""
        assert self.transport is not None
        self._set_mode(_STREAMING)
        self._release_http_state()
        self.transport.write(head)

    def _release_http_state(self) -> None:
        """The connection is a WebSocket or an event stream for good: free the parser.

        Thousands of idle subscribers each hold a connection, so what they no
        longer need is dropped rather than kept for a request that never comes.
        """
        self._parser = None
        self._since = 0.0  # a shared constant: no timeout applies any more
        # Shared empty containers: with no parser, nothing is ever added to them.
        self._queue = _NO_REQUESTS
        self._started = _NO_REQUESTS
        self._headers = _NO_HEADERS
        self._body = _NO_BODY

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
