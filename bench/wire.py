"""Byte-level pieces shared by the subscribers and publishers: messages, WebSocket, HTTP.

The load generator must be cheaper than the servers it measures, so nothing here builds objects
per message: messages are byte strings with fixed markers that readers find with ``bytes.count``
and ``bytes.find`` (C speed) instead of parsing JSON.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time

#: Every measured message body is a JSON object of exactly this many bytes.
MESSAGE_SIZE = 100
#: Present once in every measured message and nowhere else in any stream we read: counting it
#: counts deliveries, whatever envelope (WS frame, SSE event, long-poll batch) carries it.
SEQ_MARK = b'"seq":'
#: Precedes the publish timestamp (``time.time_ns()``) in every measured message.
T_MARK = b'"t":'
#: Present in readiness probes ("sync" messages) that are not counted as deliveries.
SYNC_MARK = b'"sync":'

#: pushwire's stream offset of a measured message: its envelope reads
#: ``"id":"EPOCH-OFFSET","data":{"t":...`` (the ``id`` is the cursor; no ``event`` is set).
#: Used only when delivery is verified (``bench cluster --verify``): a regex per read costs
#: the reader ~0.3-0.5 µs per message, about double what counting alone does.
PUSHWIRE_OFFSET = re.compile(rb'-(\d+)","data":\{"t":')

CHANNEL = "bench"
API_KEY = "benchkey"

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: One fixed handshake key is fine: servers only check its form, and it lets us verify the
#: ``Sec-WebSocket-Accept`` answer with a precomputed value instead of one SHA-1 per connection.
WS_KEY = base64.b64encode(b"pushwire-bench!!").decode()
WS_ACCEPT = base64.b64encode(hashlib.sha1(WS_KEY.encode() + _WS_GUID).digest())


def make_message(seq: int, t_ns: int | None = None) -> bytes:
    """Return the JSON body of measured message ``seq``, padded to ``MESSAGE_SIZE`` bytes."""
    if t_ns is None:
        t_ns = time.time_ns()
    head = b'{"t":%d,"seq":%d,"pad":"' % (t_ns, seq)
    pad = max(MESSAGE_SIZE - len(head) - 2, 0)
    return head + b"x" * pad + b'"}'


def make_sync(n: int) -> bytes:
    """Return a readiness probe body: delivered like a message but never counted."""
    return b'{"sync":%d}' % n


def ws_upgrade_request(host: str, port: int, path: str, extra_headers: str = "") -> bytes:
    """Return the HTTP/1.1 upgrade request that opens a WebSocket on ``path``."""
    return (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {WS_KEY}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        f"{extra_headers}"
        "\r\n"
    ).encode()


def check_ws_upgrade_response(head: bytes) -> str | None:
    """Return None when ``head`` (up to the blank line) accepts the upgrade, else the reason."""
    if not head.startswith(b"HTTP/1.1 101"):
        return head.split(b"\r\n", 1)[0].decode(errors="replace") or "empty response"
    if WS_ACCEPT not in head:
        return "bad Sec-WebSocket-Accept"
    return None


def ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """Return one final, masked client-to-server frame (clients must mask, RFC 6455 5.3)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    mask = os.urandom(4)
    if n == 0:
        return header + mask
    # XOR as one big integer: far cheaper in CPython than a per-byte loop.
    key = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return header + mask + masked


class FrameParser:
    """Incremental parser of server-to-client (unmasked) WebSocket frames.

    Used where per-frame work is affordable (publisher replies); the subscribers inline a
    cheaper loop that only counts.
    """

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Consume ``data``; return the complete frames as ``(opcode, payload)`` pairs."""
        buf = self._buf + data if self._buf else data
        out: list[tuple[int, bytes]] = []
        i, n = 0, len(buf)
        while n - i >= 2:
            ln = buf[i + 1] & 0x7F
            start = i + 2
            if ln == 126:
                if n - i < 4:
                    break
                ln = int.from_bytes(buf[i + 2 : i + 4], "big")
                start = i + 4
            elif ln == 127:
                if n - i < 10:
                    break
                ln = int.from_bytes(buf[i + 2 : i + 10], "big")
                start = i + 10
            end = start + ln
            if end > n:
                break
            out.append((buf[i] & 0x0F, buf[start:end]))
            i = end
        self._buf = buf[i:]
        return out


def parse_t_ns(data: bytes, pos: int) -> int:
    """Return the integer after the ``"t":`` marker found at ``pos`` in ``data``."""
    start = pos + len(T_MARK)
    end = start
    n = len(data)
    while end < n and 48 <= data[end] <= 57:
        end += 1
    return int(data[start:end])


def http_head_value(head: bytes, name: bytes) -> bytes | None:
    """Return the value of header ``name`` (lower-case) in a raw response head, if present."""
    for line in head.split(b"\r\n")[1:]:
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == name:
            return value.strip()
    return None
