"""Publishers: pipelined WebSocket (peers and pushwire) and pipelined keep-alive HTTP (pushwire).

Publishers never wait for one answer before sending the next message; the scenario bounds how
far ahead of the subscribers they may run (see ``bench.scenarios``). Replies are read as they
come so neither side's buffers fill, and every non-success reply is kept as evidence.
"""

from __future__ import annotations

import asyncio
from typing import cast

from bench.wire import (
    API_KEY,
    CHANNEL,
    FrameParser,
    check_ws_upgrade_response,
    http_head_value,
    ws_frame,
    ws_upgrade_request,
)

#: How many distinct error replies to keep per publisher.
KEEP_ERRORS = 5


class Publisher:
    """Common counters: messages sent, acknowledged (where the protocol acks) and errors."""

    #: True when the server acknowledges each publication (the scenario may then also bound
    #: unacknowledged messages).
    acks = False

    def __init__(self) -> None:
        self.sent = 0
        self.acked = 0
        self.failed = 0
        self.errors: list[str] = []
        self.paused = False

    def publish(self, body: bytes) -> None:
        """Send one message (the JSON value to publish)."""
        self.publish_batch([body])

    def publish_batch(self, bodies: list[bytes]) -> None:
        """Send several messages back to back in as few writes as possible (pipelining)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Close the publisher's connections."""
        raise NotImplementedError

    def _error(self, text: str) -> None:
        self.failed += 1
        if len(self.errors) < KEEP_ERRORS and text not in self.errors:
            self.errors.append(text)


class _WsPubProtocol(asyncio.Protocol):
    """Client WebSocket used by ``WsPublisher``; hands each complete frame to its owner."""

    def __init__(self, owner: WsPublisher, request: bytes) -> None:
        self.owner = owner
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._head = b""
        self._parser = FrameParser()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only duck-typed alike.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.ready.done():
            self._head += data
            k = self._head.find(b"\r\n\r\n")
            if k < 0:
                return
            err = check_ws_upgrade_response(self._head[: k + 4])
            if err is not None:
                self.ready.set_exception(ConnectionError(f"publisher upgrade refused: {err}"))
                return
            data = self._head[k + 4 :]
            self.ready.set_result(None)
        for opcode, payload in self._parser.feed(data):
            self.owner.on_frame(opcode, payload)

    def pause_writing(self) -> None:
        self.owner.paused = True

    def resume_writing(self) -> None:
        self.owner.paused = False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"publisher connection lost: {exc}"))
        self.owner.lost = True


class WsPublisher(Publisher):
    """Publishes over one WebSocket.

    ``style="raw"``: each message body is sent as the frame (the peers re-broadcast it).
    ``style="pushwire"``: each body is wrapped in pushwire's publish envelope with a ``ref``
    and the ``published`` replies are counted as acknowledgements.
    """

    def __init__(self, style: str) -> None:
        super().__init__()
        self.style = style
        self.acks = style == "pushwire"
        self.lost = False
        self._proto: _WsPubProtocol | None = None
        self._prefix = b'{"type":"publish","channel":"%s","data":' % CHANNEL.encode()

    async def connect(self, host: str, port: int, path: str) -> None:
        """Open the WebSocket and wait for the upgrade."""
        req = ws_upgrade_request(host, port, path, f"X-API-Key: {API_KEY}\r\n")
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(lambda: _WsPubProtocol(self, req), host, port)
        self._proto = proto
        await asyncio.wait_for(proto.ready, 10)

    def publish_batch(self, bodies: list[bytes]) -> None:
        assert self._proto is not None
        assert self._proto.transport is not None
        frames = []
        for body in bodies:
            if self.style == "pushwire":
                body = self._prefix + body + b',"ref":%d}' % self.sent
            frames.append(ws_frame(body))
            self.sent += 1
        self._proto.transport.write(b"".join(frames))

    def on_frame(self, opcode: int, payload: bytes) -> None:
        """Count acknowledgements; keep anything unexpected as evidence."""
        if opcode == 0x9 and self._proto is not None and self._proto.transport is not None:
            self._proto.transport.write(ws_frame(payload, opcode=0xA))
        elif opcode == 0x1 and b'"published"' in payload:
            self.acked += 1
        elif opcode in (0x1, 0x2, 0x8):
            self._error(f"opcode {opcode}: {payload[:200]!r}")

    async def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.write(ws_frame(b"\x03\xe8", opcode=0x8))
            self._proto.transport.close()


class _HttpPubProtocol(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with pipelined ``POST /api/publish`` requests."""

    def __init__(self, owner: HttpPublisher) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.outstanding = 0
        self._buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only duck-typed alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        while True:
            k = buf.find(b"\r\n\r\n")
            if k < 0:
                break
            head = buf[: k + 4]
            cl = http_head_value(head, b"content-length")
            if cl is None:
                self.owner._error(f"response without Content-Length: {head[:200]!r}")
                if self.transport is not None:
                    self.transport.close()
                return
            end = k + 4 + int(cl)
            if end > len(buf):
                break
            self.outstanding -= 1
            if head.startswith(b"HTTP/1.1 200"):
                self.owner.acked += 1
            else:
                status = head.split(b"\r\n", 1)[0]
                self.owner._error(f"{status!r} {buf[k + 4 : end][:200]!r}")
            buf = buf[end:]
        self._buf = buf

    def pause_writing(self) -> None:
        self.owner.paused = True

    def resume_writing(self) -> None:
        self.owner.paused = False

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.lost = True


class HttpPublisher(Publisher):
    """Publishes through pushwire's HTTP API over ``connections`` keep-alive connections."""

    acks = True

    def __init__(self, connections: int = 8) -> None:
        super().__init__()
        self.n = connections
        self.lost = False
        self._protos: list[_HttpPubProtocol] = []
        self._head = b""
        self._prefix = b'{"channel":"%s","data":' % CHANNEL.encode()

    async def connect(self, host: str, port: int, path: str = "/api/publish") -> None:
        """Open the keep-alive connections."""
        loop = asyncio.get_running_loop()
        self._head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nX-API-Key: {API_KEY}\r\n"
            "Content-Type: application/json\r\nConnection: keep-alive\r\n"
        ).encode()
        for _ in range(self.n):
            _, proto = await loop.create_connection(lambda: _HttpPubProtocol(self), host, port)
            self._protos.append(proto)

    def publish_batch(self, bodies: list[bytes]) -> None:
        # Spread the batch over the connections, least busy first, one write per connection.
        protos = sorted(self._protos, key=lambda p: p.outstanding)
        per_conn: list[list[bytes]] = [[] for _ in protos]
        for i, body in enumerate(bodies):
            payload = self._prefix + body + b"}"
            per_conn[i % len(protos)].append(
                self._head + b"Content-Length: %d\r\n\r\n" % len(payload) + payload
            )
        for proto, reqs in zip(protos, per_conn, strict=True):
            if reqs and proto.transport is not None:
                proto.transport.write(b"".join(reqs))
                proto.outstanding += len(reqs)
        self.sent += len(bodies)

    async def close(self) -> None:
        for proto in self._protos:
            if proto.transport is not None:
                proto.transport.close()


def unacked(pub: Publisher) -> int:
    """Messages sent but not yet answered (0 for protocols without acknowledgements)."""
    return pub.sent - pub.acked - pub.failed if pub.acks else 0
