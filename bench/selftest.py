"""``python -m bench selftest``: check the readers' counting against synthetic byte streams.

The suite's "0 lost" claims rest on the readers counting every message exactly once however
the kernel splits the stream, so this feeds each reader known streams cut at every possible
byte boundary (and in random pieces) and compares the counts. No server, no network.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from bench.readers import PollSubscriber, Recorder, SseSubscriber, Subscriber, WsSubscriber
from bench.wire import WS_ACCEPT, FrameParser, make_message, make_sync, ws_frame


class _FakeTransport:
    """Collects what a reader writes (pongs, next polls) instead of sending it."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True


def _server_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big")
    return head + payload


def _envelope(i: int) -> bytes:
    # Like pushwire's: long enough to need the 2-byte extended length.
    return b'{"type":"message","channel":"bench","id":"c%d","data":%s}' % (i, make_message(i))


def _ws_stream(n: int) -> bytes:
    head = b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: " + WS_ACCEPT + b"\r\n\r\n"
    parts = [head, _server_frame(b'{"type":"subscribed"}'), _server_frame(make_sync(0))]
    for i in range(n):
        parts.append(_server_frame(_envelope(i) if i % 2 else make_message(i)))
        if i % 7 == 0:
            parts.append(_server_frame(b"hb", opcode=0x9))
    return b"".join(parts)


def _offsets_stream(offsets: list[int]) -> bytes:
    """A WebSocket stream of pushwire envelopes with these stream offsets (for verifying)."""
    head = b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: " + WS_ACCEPT + b"\r\n\r\n"
    envelope = b'{"type":"message","channel":"bench","id":"0a1b-2c3d-%d","data":%s}'
    return head + b"".join(_server_frame(envelope % (o, make_message(o))) for o in offsets)


def _verifying_ws_subscriber() -> Subscriber:
    rec = Recorder()
    rec.verify = True
    return WsSubscriber("h", 1, "/ws", rec)


def _check_verify(failures: list[str]) -> None:
    """Offsets repeated or skipped are counted as such, however the stream is cut."""
    rng = random.Random(11)
    cases = [
        (list(range(5, 25)), 0, 0),
        ([5, 6, 7, 7, 8, 9], 1, 0),
        ([5, 6, 8, 9, 10], 0, 1),
        ([5, 6, 6, 8, 9], 1, 1),  # a repeat and a loss in one read do not cancel
        ([5, 9, 6, 7, 10], 2, 3),
    ]
    for offsets, repeats, skips in cases:
        stream = _offsets_stream(offsets)
        splits: list[list[int]] = [[]]
        splits += [sorted(rng.sample(range(1, len(stream)), 6)) for _ in range(30)]
        for cuts in splits:
            sub = _feed(_verifying_ws_subscriber, stream, cuts)
            if (sub.count, sub.repeats, sub.skips) != (len(offsets), repeats, skips):
                failures.append(
                    f"verify {offsets} cut {cuts}: count {sub.count}, repeats {sub.repeats}, "
                    f"skips {sub.skips}; expected {len(offsets)}, {repeats}, {skips}"
                )
                break


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _sse_stream(n: int) -> bytes:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    parts = [head, _chunk(b"retry: 2000\n\n"), _chunk(b"data: " + make_sync(0) + b"\n\n")]
    for i in range(n):
        event = b"id: c%d\ndata: %s\n\n" % (i, _envelope(i))
        parts.append(_chunk(event) if i % 3 else _chunk(event[:10]) + _chunk(event[10:]))
        if i % 5 == 0:
            parts.append(_chunk(b": ping\n\n"))
    return b"".join(parts)


def _poll_stream(n: int) -> bytes:
    parts = []
    for start in range(0, n, 4):
        msgs = b",".join(_envelope(i) for i in range(start, min(start + 4, n)))
        body = b'{"messages":[%s],"cursor":"k%d"}' % (msgs, start)
        if start % 8:
            parts.append(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        else:
            parts.append(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                + _chunk(body[:30])
                + _chunk(body[30:])
                + b"0\r\n\r\n"
            )
    return b"".join(parts)


def _feed(make: Callable[[], Subscriber], stream: bytes, cuts: list[int]) -> Subscriber:
    sub = make()
    sub.connection_made(_FakeTransport())  # type: ignore[arg-type]
    prev = 0
    for cut in [*cuts, len(stream)]:
        if cut > prev:
            sub.data_received(stream[prev:cut])
            prev = cut
    return sub


async def _check() -> list[str]:
    failures: list[str] = []
    n = 40
    rec = Recorder()
    rec.record = True
    cases: list[tuple[str, Callable[[], Subscriber], bytes]] = [
        ("ws", lambda: WsSubscriber("h", 1, "/ws", rec), _ws_stream(n)),
        ("sse", lambda: SseSubscriber("h", 1, "/sse", rec), _sse_stream(n)),
        ("poll", lambda: PollSubscriber("h", 1, "/poll?x=1", rec), _poll_stream(n)),
    ]
    rng = random.Random(7)
    for name, make, stream in cases:
        splits = [[i] for i in range(1, len(stream))]  # every single cut point
        splits += [sorted(rng.sample(range(1, len(stream)), 40)) for _ in range(50)]
        for cuts in splits:
            sub = _feed(make, stream, cuts)
            if sub.count != n or sub.error:
                failures.append(f"{name}: cut {cuts[:3]}... counted {sub.count}/{n} {sub.error}")
                break
            if name != "poll" and not sub.synced:
                failures.append(f"{name}: sync probe not seen")
                break
        if name == "poll":
            sub = _feed(make, stream, [])
            if not isinstance(sub, PollSubscriber) or sub.cursor != f"k{(n - 1) // 4 * 4}":
                failures.append(f"poll: cursor not followed ({getattr(sub, 'cursor', None)})")
    if not rec.lat_ns or min(rec.lat_ns) < 0:
        failures.append("latency samples missing or negative")
    _check_verify(failures)
    # Client frames: masked, and they unmask to the payload.
    payload = make_message(1)
    frame = ws_frame(payload)
    mask, body = frame[2:6], frame[6:]
    if bytes(b ^ mask[i % 4] for i, b in enumerate(body)) != payload or frame[1] & 0x80 == 0:
        failures.append("ws_frame masking is wrong")
    if FrameParser().feed(_server_frame(b"x" * 70000)) != [(1, b"x" * 70000)]:
        failures.append("FrameParser 64-bit length is wrong")
    if len(make_message(123456789)) != 100:
        failures.append("make_message is not 100 bytes")
    return failures


def selftest() -> int:
    """Run the checks; print the result; return an exit status."""
    failures = asyncio.run(_check())
    for f in failures:
        print("FAIL", f)
    print(f"selftest: {'0 failed' if not failures else f'{len(failures)} failed'}")
    return 1 if failures else 0
