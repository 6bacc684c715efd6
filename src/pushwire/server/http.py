"""One HTTP/1.1 connection: httptools parses, the router answers, in request order.

A connection starts in HTTP mode and may switch for good to one of three others:
a WebSocket (bytes go to the session), an event stream (the client has nothing
more to say), or it stays HTTP while a long-poll answer is pending. Pipelined
requests are queued and answered in order; reading pauses if too many pile up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Protocol, cast
from urllib.parse import parse_qs

import httptools

from pushwire.errors import (
    BadRequestError,
    ClientError,
    HeadersTooLargeError,
    MessageTooLargeError,
    UrlTooLongError,
)
from pushwire.protocol.error_mapping import http_error

__all__ = ["HttpConnection", "Request", "Router"]

MAX_HEAD_BYTES = 16 * 1024
MAX_QUEUED_REQUESTS = 64
_REASONS = {
    200: b"OK",
    204: b"No Content",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    413: b"Content Too Large",
    414: b"URI Too Long",
    426: b"Upgrade Required",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


_NO_REQUESTS: list[Request] = []
_NO_HEADERS: dict[str, str] = {}
_NO_BODY: list[bytes] = []


class Request:
    """A parsed request: method, path, query parameters, headers (lower-case) and body."""

    __slots__ = ("_query", "body", "headers", "keep_alive", "method", "path", "raw_url", "upgrade")

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

    def connection_opened(self, connection: HttpConnection) -> None: ...

    def connection_closed(self, connection: HttpConnection) -> None: ...


class Upgraded(Protocol):
    """Where bytes go once the connection is a WebSocket."""

    def receive_data(self, data: bytes) -> None: ...

    def receive_eof(self) -> None: ...

    def connection_lost(self) -> None: ...


class HttpConnection(asyncio.Protocol):
    """Parses requests, hands them to the router one at a time, writes responses."""

    __slots__ = (
        "_body",
        "_body_size",
        "_busy",
        "_head_bytes",
        "_headers",
        "_max_body_bytes",
        "_parser",
        "_paused",
        "_processing",
        "_queue",
        "_released",
        "_router",
        "_url",
        "is_closed",
        "on_lost",
        "streaming",
        "transport",
        "upgrade_tail",
        "upgraded",
    )

    def __init__(self, router: Router, max_body_bytes: int) -> None:
        self._router = router
        self._max_body_bytes = max_body_bytes
        self._parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self._queue: list[Request] = []  # pipelined requests; a list: it is short
        self._busy = False
        self._processing = False
        self._paused = False
        self._released = False
        self._reset_message()
        self.transport: asyncio.Transport | None = None
        self.upgraded: Upgraded | None = None
        self.upgrade_tail = b""
        self.streaming = False
        self.is_closed = False
        #: Called once when the connection goes away (stream and poll clean-up).
        self.on_lost: Callable[[], None] | None = None

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
        if self.upgraded is not None:
            self.upgraded.receive_data(data)
            return
        if self.streaming:
            return  # an event stream's client has nothing more to say
        parser = self._parser
        if parser is None:
            if self._released:
                return
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
            self.fail(*http_error(cause, context="parsing a request"))
            return
        # Requests are handled after parsing, not from inside parser callbacks.
        self._process_queue()

    def eof_received(self) -> bool | None:
        if self.upgraded is not None:
            self.upgraded.receive_eof()
            return True  # the session closes the transport once its close is sent
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_closed = True
        self._queue.clear()
        if self.upgraded is not None:
            self.upgraded.connection_lost()
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
        if len(self._queue) > MAX_QUEUED_REQUESTS and not self._paused and self.transport:
            self._paused = True
            self.transport.pause_reading()

    # Request processing

    def _process_queue(self) -> None:
        if self._processing:
            return  # a handler answered synchronously; the loop below continues
        self._processing = True
        try:
            while self._queue and not self._busy and not self.is_closed:
                request = self._queue.pop(0)
                self._busy = True
                self._router.handle(request, self)
        finally:
            self._processing = False
        if self._paused and len(self._queue) < MAX_QUEUED_REQUESTS // 2 and self.transport:
            self._paused = False
            self.transport.resume_reading()

    def respond(
        self,
        status: int,
        body: bytes,
        *,
        content_type: bytes = b"application/json",
        headers: Iterable[tuple[bytes, bytes]] = (),
        keep_alive: bool = True,
    ) -> None:
        """Send a complete response; the next queued request is handled after it."""
        transport = self.transport
        if transport is None or self.is_closed:
            return
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown"))]
        head.append(b"Content-Type: %s\r\nContent-Length: %d\r\n" % (content_type, len(body)))
        for name, value in headers:
            head.append(b"%s: %s\r\n" % (name, value))
        if not keep_alive:
            head.append(b"Connection: close\r\n")
        head.append(b"\r\n")
        head.append(body)
        transport.write(b"".join(head))
        self._busy = False
        if not keep_alive:
            self.close()
        elif self._queue:
            self._process_queue()

    def fail(self, status: int, body: bytes) -> None:
        """Answer with an error body and close: after a parse error, nothing after it is trusted."""
        self._queue.clear()
        self._busy = False
        self.respond(status, body, keep_alive=False)

    def start_stream(self, head: bytes) -> None:
        """Write a streaming response's head; from now on the client's bytes are ignored."""
        assert self.transport is not None
        self.streaming = True
        self.release_http_state()
        self.transport.write(head)

    def release_http_state(self) -> None:
        """The connection is a WebSocket or an event stream for good: free the parser.

        Thousands of idle subscribers each hold a connection, so what they no
        longer need is dropped rather than kept for a request that never comes.
        """
        self._parser = None
        self._released = True
        # Shared empty containers: with no parser, nothing is ever added to them.
        self._queue = _NO_REQUESTS
        self._headers = _NO_HEADERS
        self._body = _NO_BODY

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
