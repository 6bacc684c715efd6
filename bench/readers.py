"""Minimal subscriber protocols (WebSocket, SSE, long-poll) for the load generator.

Each is a raw ``asyncio.Protocol``: no websockets/httpx machinery, because with 10,000
subscribers per run every microsecond per delivery in the reader is CPU taken from the server on
a 2-core machine. Deliveries are counted with ``bytes.count(SEQ_MARK)`` over complete frames or
events, so the per-message Python work is one header walk (WebSocket) or nothing (SSE,
long-poll); timestamps are only parsed when latency recording is on.
"""

from __future__ import annotations

import asyncio
import json
import time
from array import array
from typing import cast
from urllib.parse import quote

from bench.wire import (
    PUSHWIRE_OFFSET,
    SEQ_MARK,
    SYNC_MARK,
    T_MARK,
    check_ws_upgrade_response,
    http_head_value,
    parse_t_ns,
    ws_frame,
    ws_upgrade_request,
)


class Recorder:
    """Per-process latency sink shared by all subscribers of one worker."""

    def __init__(self) -> None:
        self.record = False
        #: Check every delivery's pushwire stream offset (see ``Subscriber._verify``).
        self.verify = False
        self.lat_ns: array[int] = array("q")
        #: Deliveries counted by all subscribers since the last reset (cheap to poll often).
        self.total = 0
        self.last_rx_ns = 0


class Subscriber(asyncio.Protocol):
    """Common state: delivery count, readiness, sync flag and the shared latency recorder."""

    def __init__(self, host: str, port: int, path: str, rec: Recorder) -> None:
        self.host = host
        self.port = port
        self.path = path
        self.rec = rec
        self.transport: asyncio.Transport | None = None
        self.count = 0
        #: Reads (or events, answers) that delivered messages: count / reads is how many
        #: messages the server wrote to this subscriber at once, roughly.
        self.reads = 0
        self.last_rx_ns = 0
        self.synced = False
        self.ready = False
        self.closed = False
        self.error: str | None = None
        #: With ``Recorder.verify``: the offset the next message must have, offsets seen again
        #: or out of order (duplicates), and offsets skipped over (losses).
        self.next_offset: int | None = None
        self.repeats = 0
        self.skips = 0
        self.ready_fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- lifecycle -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only duck-typed alike.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready_fut.done():
            self.ready_fut.set_exception(ConnectionError(self.error or f"closed: {exc}"))

    def request(self) -> bytes:
        """Return the bytes to send once connected."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection (graceful FIN) if it is still open."""
        if self.transport is not None and not self.closed:
            self.transport.close()

    def _set_ready(self) -> None:
        self.ready = True
        if not self.ready_fut.done():
            self.ready_fut.set_result(None)

    def _fail(self, reason: str) -> None:
        self.error = reason
        if not self.ready_fut.done():
            self.ready_fut.set_exception(ConnectionError(reason))
        if self.transport is not None:
            self.transport.close()

    def reset(self) -> None:
        """Zero the delivery counter before a measured phase."""
        self.count = 0
        self.reads = 0
        self.last_rx_ns = 0
        self.next_offset = None
        self.repeats = 0
        self.skips = 0

    # -- hot path ----------------------------------------------------------------------------
    def _deliver(self, data: bytes, end: int, start: int = 0) -> None:
        """Account the complete messages in ``data[start:end]`` (no message straddles ``end``)."""
        c = data.count(SEQ_MARK, start, end)
        if c:
            now = time.time_ns()
            self.count += c
            self.reads += 1
            self.last_rx_ns = now
            rec = self.rec
            rec.total += c
            rec.last_rx_ns = now
            if rec.record:
                append = rec.lat_ns.append
                j = data.find(T_MARK, start, end)
                while j >= 0:
                    append(now - parse_t_ns(data, j))
                    j = data.find(T_MARK, j + 4, end)
            if rec.verify:
                self._verify(data, start, end)
        if not self.synced and data.find(SYNC_MARK, start, end) >= 0:
            self.synced = True

    def _verify(self, data: bytes, start: int, end: int) -> None:
        """Check that the stream offsets in ``data[start:end]`` continue the previous ones.

        A channel's offsets count up by one per publication, so every subscriber must see
        f, f+1, f+2, ... with nothing repeated or skipped; one list comparison per read when
        they do, a walk over the offsets only when they do not.
        """
        offsets = [int(x) for x in PUSHWIRE_OFFSET.findall(data, start, end)]
        if not offsets:
            return
        first = offsets[0] if self.next_offset is None else self.next_offset
        if offsets == list(range(first, first + len(offsets))):
            self.next_offset = first + len(offsets)
            return
        for offset in offsets:
            expected = offset if self.next_offset is None else self.next_offset
            if offset < expected:
                self.repeats += 1
                continue
            self.skips += offset - expected
            self.next_offset = offset + 1


class WsSubscriber(Subscriber):
    """WebSocket subscriber: walks frame headers, counts text frames' messages, answers pings."""

    def __init__(self, host: str, port: int, path: str, rec: Recorder) -> None:
        super().__init__(host, port, path, rec)
        self._head = b""
        self._buf = b""

    def request(self) -> bytes:
        return ws_upgrade_request(self.host, self.port, self.path)

    def data_received(self, data: bytes) -> None:
        if not self.ready:
            self._head += data
            k = self._head.find(b"\r\n\r\n")
            if k < 0:
                return
            err = check_ws_upgrade_response(self._head[: k + 4])
            if err is not None:
                self._fail(err)
                return
            data = self._head[k + 4 :]
            self._head = b""
            self._set_ready()
            if not data:
                return
        if self._buf:
            data = self._buf + data
        n = len(data)
        i = 0
        while i + 1 < n:
            ln = data[i + 1]
            if ln < 126:
                end = i + 2 + ln
            elif ln == 126:
                if i + 4 > n:
                    break
                end = i + 4 + (data[i + 2] << 8 | data[i + 3])
            elif ln == 127:
                if i + 10 > n:
                    break
                end = i + 10 + int.from_bytes(data[i + 2 : i + 10], "big")
            else:
                self._fail("server sent a masked frame")
                return
            if end > n:
                break
            if data[i] != 0x81:
                self._control(data, i, end)
            i = end
        if i:
            self._deliver(data, i)
        self._buf = data[i:] if i < n else b""

    def _control(self, data: bytes, i: int, end: int) -> None:
        """Handle a non-text frame: answer ping, acknowledge close; ignore the rest."""
        opcode = data[i] & 0x0F
        ln = data[i + 1]
        start = i + 2 if ln < 126 else (i + 4 if ln == 126 else i + 10)
        if opcode == 0x9 and self.transport is not None:
            self.transport.write(ws_frame(data[start:end], opcode=0xA))
        elif opcode == 0x8 and self.transport is not None:
            self.error = f"server closed: {data[start:end][:80]!r}"
            self.transport.write(ws_frame(data[start : start + 2], opcode=0x8))
            self.transport.close()


class _HttpStream(Subscriber):
    """Shared response-head handling for the two plain-HTTP transports."""

    def __init__(self, host: str, port: int, path: str, rec: Recorder) -> None:
        super().__init__(host, port, path, rec)
        self._rbuf = b""

    def _get(self, path: str, accept: str) -> bytes:
        return (
            f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Accept: {accept}\r\nConnection: keep-alive\r\n\r\n"
        ).encode()


class SseSubscriber(_HttpStream):
    """Server-sent events subscriber: de-chunks the body, counts complete events' messages."""

    def __init__(self, host: str, port: int, path: str, rec: Recorder) -> None:
        super().__init__(host, port, path, rec)
        self._chunked = False
        self._remaining = 0  # bytes left in the current chunk
        self._need_crlf = False
        self._events = b""

    def request(self) -> bytes:
        return self._get(self.path, "text/event-stream")

    def data_received(self, data: bytes) -> None:
        if not self.ready:
            self._rbuf += data
            k = self._rbuf.find(b"\r\n\r\n")
            if k < 0:
                return
            head = self._rbuf[: k + 4]
            if not head.startswith(b"HTTP/1.1 200"):
                self._fail(head.split(b"\r\n", 1)[0].decode(errors="replace"))
                return
            te = http_head_value(head, b"transfer-encoding") or b""
            self._chunked = b"chunked" in te.lower()
            data = self._rbuf[k + 4 :]
            self._rbuf = b""
            self._set_ready()
            if not data:
                return
        if self._chunked:
            data = self._dechunk(data)
        ev = self._events + data if self._events else data
        k = max(ev.rfind(b"\n\n") + 2, ev.rfind(b"\r\n\r\n") + 4, ev.rfind(b"\r\r") + 2)
        if k > 1:
            self._deliver(ev, k)
            ev = ev[k:]
        self._events = ev

    def _dechunk(self, data: bytes) -> bytes:
        """Strip HTTP/1.1 chunked framing (chunk sizes may fall anywhere in a read)."""
        buf = self._rbuf + data if self._rbuf else data
        out: list[bytes] = []
        i, n = 0, len(buf)
        while i < n:
            if self._remaining:
                take = min(self._remaining, n - i)
                out.append(buf[i : i + take])
                i += take
                self._remaining -= take
                if not self._remaining:
                    self._need_crlf = True
                continue
            if self._need_crlf:
                if n - i < 2:
                    break
                i += 2
                self._need_crlf = False
                continue
            j = buf.find(b"\r\n", i)
            if j < 0:
                break
            size = int(buf[i:j].split(b";", 1)[0], 16)
            i = j + 2
            if size == 0:
                self.error = "event stream ended"
                break
            self._remaining = size
        self._rbuf = buf[i:]
        return out[0] if len(out) == 1 else b"".join(out)


class PollSubscriber(_HttpStream):
    """Long-poll subscriber: one keep-alive connection, re-polls with the returned cursor."""

    #: Consecutive non-200 answers after which the subscriber gives up (bounded retries).
    MAX_ERRORS = 5

    def __init__(self, host: str, port: int, path: str, rec: Recorder) -> None:
        super().__init__(host, port, path, rec)
        self.cursor: str | None = None
        self.running = True
        self.http_errors = 0
        #: Answers in which the server reported a history gap (messages it could not replay).
        self.gaps = 0
        self._consecutive_errors = 0

    def request(self) -> bytes:
        path = self.path
        if self.cursor is not None:
            path += "&cursor=" + quote(self.cursor, safe="")
        return self._get(path, "application/json")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # The server cannot tell us when the poll is registered; readiness of long-poll
        # subscribers is proven later by the sync probe.
        self._set_ready()

    def close(self) -> None:
        self.running = False
        super().close()

    def data_received(self, data: bytes) -> None:
        buf = self._rbuf + data if self._rbuf else data
        while True:
            k = buf.find(b"\r\n\r\n")
            if k < 0:
                break
            head = buf[: k + 4]
            cl = http_head_value(head, b"content-length")
            if cl is not None:
                end = k + 4 + int(cl)
                if end > len(buf):
                    break
                body = buf[k + 4 : end]
            else:
                decoded = _dechunk_whole(buf, k + 4)
                if decoded is None:
                    break
                body, end = decoded
            buf = buf[end:]
            self._on_response(head, body)
        self._rbuf = buf

    def _on_response(self, head: bytes, body: bytes) -> None:
        if head.startswith(b"HTTP/1.1 200"):
            self._consecutive_errors = 0
            self._deliver(body, len(body))
            if b'"gaps"' in body:
                self.gaps += 1
            cursor = _extract_cursor(body)
            if cursor is not None:
                self.cursor = cursor
        else:
            self.http_errors += 1
            self._consecutive_errors += 1
            self.error = (
                head.split(b"\r\n", 1)[0].decode(errors="replace")
                + " "
                + body[:120].decode(errors="replace")
            )
            if self._consecutive_errors >= self.MAX_ERRORS:
                self.close()
                return
        if self.running and self.transport is not None and not self.closed:
            self.transport.write(self.request())


def _dechunk_whole(buf: bytes, start: int) -> tuple[bytes, int] | None:
    """Decode a complete chunked body at ``buf[start:]``; None until all of it has arrived."""
    parts: list[bytes] = []
    i = start
    while True:
        j = buf.find(b"\r\n", i)
        if j < 0:
            return None
        size = int(buf[i:j].split(b";", 1)[0], 16)
        i = j + 2
        if size == 0:
            j = buf.find(b"\r\n", i)  # trailers end with an empty line
            if j < 0:
                return None
            return b"".join(parts), j + 2
        if i + size + 2 > len(buf):
            return None
        parts.append(buf[i : i + size])
        i += size + 2


def _extract_cursor(body: bytes) -> str | None:
    """Return the ``cursor`` string of a long-poll answer without parsing the whole batch."""
    k = body.rfind(b'"cursor"')
    if k >= 0:
        q = body.find(b'"', body.find(b":", k + 8) + 1)
        e = body.find(b'"', q + 1)
        if q >= 0 and e > q and b"\\" not in body[q:e]:
            return body[q + 1 : e].decode()
    try:
        value = json.loads(body).get("cursor")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


SUBSCRIBERS: dict[str, type[Subscriber]] = {
    "ws": WsSubscriber,
    "sse": SseSubscriber,
    "poll": PollSubscriber,
}
