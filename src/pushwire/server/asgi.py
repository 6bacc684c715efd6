"""An ASGI app for embedding pushwire in Starlette, FastAPI or any ASGI server.

The same :class:`~pushwire.server.app.Server` as ``pushwire serve``, started without
a socket of its own: each ASGI request is handed to it as if it had arrived on one.
An :class:`AsgiTransport` stands in for the socket and turns what the server writes
(an HTTP response, event-stream chunks, WebSocket frames) into ASGI messages, so the
routes, checks, errors and counters are the server's own. The convenience path: each
connection gets a writer task, so a subscriber costs more than under ``pushwire serve``
(docs/asgi.md has the figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from websockets.frames import Close, Frame, Opcode

from pushwire.core.broker import Broker
from pushwire.core.history import Publication
from pushwire.errors import MessageTooLargeError, UsageError
from pushwire.protocol.codec import WS_PING_FRAME
from pushwire.protocol.error_mapping import http_error
from pushwire.server.app import Server
from pushwire.server.config import Config
from pushwire.server.http import HttpConnection, Request, Upgraded
from pushwire.transports.websocket import WebSocketSession

__all__ = ["AsgiConnection", "AsgiTransport", "PushwireApp"]

logger = logging.getLogger("pushwire.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Hop-by-hop: the ASGI server decides about the connection, not the app.
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding"})
# Close codes a peer may not send in a close frame (RFC 6455 §7.4.1): no frame to replay.
_NOT_SENT = frozenset({1005, 1006, 1015})


class PushwireApp:
    """pushwire as an ASGI app: ``/ws``, ``/sse``, ``/poll``, ``/publish``, ``/api`` and the rest.

    Mount it under a path (``app.mount("/push", pushwire_app)``) and run its lifespan
    (``FastAPI(lifespan=pushwire_app.lifespan)``), or serve it alone with uvicorn, which
    runs the lifespan by itself. ``server`` and ``node`` are the same objects
    ``pushwire serve`` builds: publish from your routes with :meth:`publish`.
    """

    def __init__(self, config: Config | None = None, *, broker: Broker | None = None) -> None:
        self.server = Server(config, broker=broker)
        self.node = self.server.node
        self._started = False

    async def start(self) -> None:
        """Start the node (and its broker and timers); requests are refused until then."""
        if not self._started:
            await self.server.start(listen=False)
            self._started = True

    async def stop(self) -> None:
        """Close every client cleanly so that it reconnects, then release the broker."""
        if self._started:
            self._started = False
            await self.server.stop()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """Start and stop with the application: ``FastAPI(lifespan=pushwire_app.lifespan)``.

        Starlette does not run the lifespan of a mounted app, so the host app's must.
        """
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def publish(self, channel: str, data: Any, *, event: str | None = None) -> Publication:
        """Publish to every subscriber of ``channel`` (on every node, with a shared broker)."""
        return await self.server.publish(channel, data, event=event)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if not self._started:
            raise UsageError(
                "pushwire is not started: run PushwireApp.lifespan (FastAPI(lifespan=...)) "
                "or await start() first"
            )
        connection = AsgiConnection(self.server, scope)
        if kind == "http":
            await connection.serve_http(receive, send)
        elif kind == "websocket":
            await connection.serve_websocket(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    logger.exception("pushwire could not start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


class AsgiConnection(HttpConnection):
    """One ASGI request (or WebSocket) as the server's HTTP connection.

    It never parses bytes: the ASGI server has, and :meth:`hand_over` gives the
    request to the router; everything the router writes goes to an
    :class:`AsgiTransport`.
    """

    __slots__ = ("_scope",)

    def __init__(self, server: Server, scope: Scope) -> None:
        super().__init__(server, server.config.max_message_bytes)
        self._scope = scope

    async def serve_http(self, receive: Receive, send: Send) -> None:
        """Answer one HTTP request, a long-poll or an event stream; returns when it ends."""
        transport = AsgiTransport(self._scope, send)
        self.connection_made(transport)  # the door may refuse it here
        if not self.is_closed:
            body = await self._read_body(receive)
            if body is not None:
                self.hand_over(_request(self._scope, body, upgrade=False))
        await self._until_done(transport, _wait_http_disconnect(receive))

    async def serve_websocket(self, receive: Receive, send: Send) -> None:
        """Run one WebSocket: the server's session, fed whole messages by the ASGI server."""
        if (await receive())["type"] != "websocket.connect":
            return
        transport = AsgiTransport(self._scope, send, websocket=True)
        self.connection_made(transport)
        if not self.is_closed:
            self.hand_over(_request(self._scope, b"", upgrade=True))
        await self._until_done(transport, self._receive_messages(receive, transport))

    def upgrade(self, session: Upgraded) -> None:
        super().upgrade(session)
        if isinstance(self.transport, AsgiTransport) and isinstance(session, WebSocketSession):
            self.transport.session = session

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The request body, or None if it was too large (answered 413) or the client left."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body_bytes:
                exc = MessageTooLargeError(f"body is over {self._max_body_bytes} bytes")
                self._router.request_refused(exc.code)
                self.fail(*http_error(exc, context="reading a request"))
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _receive_messages(self, receive: Receive, transport: AsgiTransport) -> None:
        while True:
            message = await receive()
            kind = message["type"]
            session = self.upgraded
            if kind == "websocket.disconnect":
                transport.peer_gone()
                code = message.get("code", 1005)
                if isinstance(session, WebSocketSession) and code not in _NOT_SENT:
                    # The client's close, as the session would have read it: it counts
                    # as the client's doing, not as a lost connection.
                    close = Frame(Opcode.CLOSE, Close(code, "").serialize())
                    session.receive_data(close.serialize(mask=True))
                return
            if kind == "websocket.receive" and isinstance(session, WebSocketSession):
                text = message.get("text")
                if text is not None:
                    session.receive_message(text.encode(), True)
                else:
                    session.receive_message(message.get("bytes") or b"", False)

    async def _until_done(self, transport: AsgiTransport, reading: Awaitable[None]) -> None:
        """Wait until the answer is complete, the client leaves or the server drops it."""
        reader = asyncio.ensure_future(reading)
        finished = asyncio.ensure_future(transport.wait_done())
        try:
            await asyncio.wait({reader, finished}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            transport.peer_gone()
            reader.cancel()
            finished.cancel()
            self.connection_lost(None)
            await transport.wait_stopped()


async def _wait_http_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _request(scope: Scope, body: bytes, *, upgrade: bool) -> Request:
    """The server's :class:`Request` for an ASGI scope, its path taken below the mount."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    root = scope.get("root_path", "").encode()
    if root and raw_path.startswith(root):
        raw_path = raw_path[len(root) :]
    query: bytes = scope.get("query_string", b"")
    raw_url = (raw_path or b"/") + (b"?" + query if query else b"")
    headers: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        previous = headers.get(key)
        headers[key] = text if previous is None else f"{previous}, {text}"
    method = "GET" if upgrade else scope.get("method", "GET")
    return Request(method, raw_url, headers, body, keep_alive=True, upgrade=upgrade)


class AsgiTransport(asyncio.Transport):
    """What the server takes for a socket: bytes in, ASGI messages out, on one writer task.

    The server writes exactly what it would write to a socket, and only in whole
    pieces: a response head with its body (or a stream's head, then chunks), a 101
    then WebSocket frames. Those are read back here: the head becomes
    ``http.response.start``, frames become ``websocket.send`` or ``websocket.close``.
    Unsent bytes count as the write buffer, so slow consumers are cut off as usual.
    Pings are the ASGI server's business: the server's own are answered at once.
    """

    def __init__(self, scope: Scope, send: Send, *, websocket: bool = False) -> None:
        super().__init__()
        self._scope = scope
        self._send = send
        self._websocket = websocket
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._wake = asyncio.Event()
        self._done = asyncio.Event()
        self._closing = False
        self._started = False  # the response head, or the WebSocket accept, is sent
        #: The WebSocket whose keep-alive pings are answered here (see ``write``).
        self.session: WebSocketSession | None = None
        client = scope.get("client")
        self._extra = {"peername": tuple(client) if client else None}
        self._writer = asyncio.get_running_loop().create_task(self._write_all())

    # What the server calls.

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._done.is_set() or self._closing:
            return
        if self._websocket and data == WS_PING_FRAME:
            # The ASGI server keeps the connection alive with pings of its own, and
            # gives the app no pongs: the server's heartbeat is told the peer answered.
            if self.session is not None:
                self.session.awaiting_pong = False
            return
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        self._wake.set()

    def get_write_buffer_size(self) -> int:
        return self._buffered

    def close(self) -> None:
        """Finish after what is queued: the end of a stream, after a close frame."""
        self._closing = True
        self._wake.set()

    def abort(self) -> None:
        """Drop what is queued and end now."""
        self._chunks.clear()
        self._buffered = 0
        self._closing = True
        self._wake.set()

    def is_closing(self) -> bool:
        return self._closing or self._done.is_set()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def pause_reading(self) -> None:
        pass  # the ASGI server reads; the app takes messages when it asks for them

    def resume_reading(self) -> None:
        pass

    # What the connection calls.

    def peer_gone(self) -> None:
        """The client left (or the request is over): nothing more is sent."""
        self._chunks.clear()
        self._buffered = 0
        self._done.set()
        self._wake.set()

    async def wait_done(self) -> None:
        await self._done.wait()

    async def wait_stopped(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer

    # The writer task.

    async def _write_all(self) -> None:
        try:
            while not self._done.is_set():
                await self._wake.wait()
                self._wake.clear()
                while self._chunks and not self._done.is_set():
                    chunk = self._chunks.popleft()
                    self._buffered -= len(chunk)
                    await self._deliver(chunk)
                if self._closing and not self._chunks and not self._done.is_set():
                    await self._finish()
        except OSError:
            pass  # the client is gone: the server sees the connection end
        except Exception:
            # ASGI servers raise their own errors for a client gone mid-send.
            logger.debug("sending to an ASGI client failed", exc_info=True)
        finally:
            self._done.set()

    async def _deliver(self, chunk: bytes) -> None:
        if self._websocket:
            await self._deliver_websocket(chunk)
        elif not self._started:
            await self._start_response(chunk)
        else:
            await self._send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def _start_response(self, chunk: bytes) -> None:
        """The first write: a head (``respond``, ``fail``, ``start_stream``) and what follows."""
        status, headers, rest = _parse_head(chunk)
        self._started = True
        length = next((int(v) for k, v in headers if k == b"content-length"), None)
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        if length is not None:  # a whole answer: its body came with it
            await self._send({"type": "http.response.body", "body": rest, "more_body": False})
            self._done.set()
        elif rest:
            await self._send({"type": "http.response.body", "body": rest, "more_body": True})

    async def _deliver_websocket(self, chunk: bytes) -> None:
        if not self._started:
            if not chunk.startswith(b"HTTP/1.1 101 "):
                await self._refuse_websocket(chunk)
                return
            self._started = True
            await self._send({"type": "websocket.accept"})
            chunk = chunk[chunk.index(b"\r\n\r\n") + 4 :]
        for opcode, payload in _frames(chunk):
            if opcode == Opcode.TEXT:
                await self._send({"type": "websocket.send", "text": payload.decode()})
            elif opcode == Opcode.BINARY:
                await self._send({"type": "websocket.send", "bytes": payload})
            elif opcode == Opcode.CLOSE:
                close = Close.parse(payload) if payload else Close(1000, "")
                await self._send(
                    {"type": "websocket.close", "code": close.code, "reason": close.reason}
                )
                self._done.set()
                return

    async def _refuse_websocket(self, chunk: bytes) -> None:
        """An upgrade the server refused: its HTTP answer, where the ASGI server can send one."""
        status, headers, body = _parse_head(chunk)
        if "websocket.http.response" in self._scope.get("extensions", {}):
            start = {"type": "websocket.http.response.start", "status": status, "headers": headers}
            await self._send(start)
            await self._send({"type": "websocket.http.response.body", "body": body})
        else:
            await self._send({"type": "websocket.close", "code": 1008, "reason": ""})
        self._done.set()

    async def _finish(self) -> None:
        if self._websocket:
            if not self._started:
                await self._send({"type": "websocket.close", "code": 1000, "reason": ""})
        elif self._started:
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})
        self._done.set()


def _parse_head(chunk: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and the rest of a response head the server wrote itself."""
    head, _, rest = chunk.partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    headers = []
    for line in lines:
        name, _, value = line.partition(b":")
        key = name.strip().lower()
        if key not in _HOP_BY_HOP:
            headers.append((key, value.strip()))
    return status, headers, rest


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    """The (opcode, payload) of each whole, unmasked frame the server wrote in ``data``."""
    frames = []
    at = 0
    while at + 2 <= len(data):
        opcode = data[at] & 0x0F
        length = data[at + 1] & 0x7F
        at += 2
        if length == 126:
            length = int.from_bytes(data[at : at + 2], "big")
            at += 2
        elif length == 127:
            length = int.from_bytes(data[at : at + 8], "big")
            at += 8
        frames.append((opcode, data[at : at + length]))
        at += length
    return frames
