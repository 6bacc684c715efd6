"""What one live channel, subscription and connection costs the server in memory.

``python -m bench memory``: each case starts a fresh ``pushwire serve``, warms it up with a
few of the same items (lazily made objects and imports are not the items' cost), lets RSS
settle, adds ``count`` items, lets RSS settle again, and divides the growth by ``count``.
Repeated ``--repeat`` times on fresh servers to show the spread. RSS is VmRSS of the server
process from /proc: the kernel's socket buffers are not in it (they are the kernel's, and
on loopback they are mostly empty for idle connections). The server is not told to collect
garbage; "settle" means RSS has not moved by more than 64 KiB for 1.5 s.

The cases:

- ``channel``: ``count`` channels published to once each through ``POST /api/publish``
  batches (100-byte bodies), no subscribers; then nine more publications each, for the cost
  of a publication held in history. SQLite history and ``--memory``.
- ``subscription-many-channels``: one WebSocket subscribes to ``count`` distinct channels
  (the subscription and the channel's entry in the hub).
- ``ws-idle`` and ``subscription-one-channel``: ``count`` WebSockets that subscribe to
  nothing; then each subscribes to one shared channel.
- ``sse-idle``: ``count`` SSE streams on one shared channel.
- ``longpoll-idle``: ``count`` long polls waiting on one shared channel.

Clients are raw non-blocking sockets in one asyncio process (bench/wire.py), loopback only.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from bench.procstat import open_fds, rss_bytes
from bench.soak import scrape_metrics
from bench.targets import HOST, free_port, http_status
from bench.wire import ws_frame, ws_upgrade_request

__all__ = ["CASES", "measure"]

API_KEY = "bench-key"
MIB = 1024 * 1024
_BATCH = 400  # items per POST /api/publish batch: 50 KB, under max_message_bytes (64 KiB)
_CONNECT_AT_ONCE = 200
_BODY = {"pad": "x" * 88}  # with the envelope, about 100 bytes of data


class _Server:
    """A ``pushwire serve`` for one case, with the limits that would get in the way lifted."""

    def __init__(self, memory: bool, tmp: str) -> None:
        self.port = free_port()
        env = dict(os.environ)
        env.update(
            PUSHWIRE_API_KEY=API_KEY,
            PUSHWIRE_DATA_DIR=tmp,
            PUSHWIRE_LOG_LEVEL="warning",
            PUSHWIRE_MAX_PUBLISHES_PER_SECOND="0",
            PUSHWIRE_MAX_CONNECTIONS_PER_USER="0",
            PUSHWIRE_MAX_CHANNELS_PER_CONNECTION="100000",
            PUSHWIRE_WS_PING_INTERVAL_SECONDS="3600",  # the raw clients do not answer pings
            PUSHWIRE_SSE_PING_INTERVAL_SECONDS="3600",
            PUSHWIRE_POLL_MAX_TIMEOUT_SECONDS="600",
            PUSHWIRE_KEEP_ALIVE_TIMEOUT_SECONDS="600",
        )
        command = [sys.executable, "-m", "pushwire", "serve", "--port", str(self.port)]
        if memory:
            command.append("--memory")
        self.proc = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while http_status(self.port, "/health") != 200:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("pushwire serve did not become healthy")
            time.sleep(0.05)

    def rss(self) -> int:
        return rss_bytes(self.proc.pid)

    def settled_rss(self, timeout: float = 15.0) -> int:
        """RSS once it stops moving (64 KiB over 1.5 s), or after ``timeout``."""
        deadline = time.monotonic() + timeout
        last = self.rss()
        steady_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.25)
            now = self.rss()
            if abs(now - last) > 64 * 1024:
                last, steady_since = now, time.monotonic()
            elif time.monotonic() - steady_since >= 1.5:
                return now
        return self.rss()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# --- clients -------------------------------------------------------------------------------


async def _open(port: int, request: bytes, *, wait_head: bool = True) -> socket.socket:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (HOST, port)), 30)
        await loop.sock_sendall(sock, request)
        if wait_head:
            head = b""
            for _ in range(64):
                if b"\r\n\r\n" in head:
                    break
                part = await asyncio.wait_for(loop.sock_recv(sock, 4096), 30)
                if not part:
                    raise ConnectionError("closed before the response head")
                head += part
            if not head.startswith((b"HTTP/1.1 101", b"HTTP/1.1 200")):
                raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    except BaseException:
        sock.close()
        raise
    return sock


async def _open_many(
    port: int, request: bytes, n: int, *, wait_head: bool = True
) -> list[socket.socket]:
    out: list[socket.socket] = []
    for start in range(0, n, _CONNECT_AT_ONCE):
        batch = min(_CONNECT_AT_ONCE, n - start)
        out += await asyncio.gather(
            *(_open(port, request, wait_head=wait_head) for _ in range(batch))
        )
    return out


async def _read_until(sock: socket.socket, marker: bytes, count: int, within: float = 120) -> None:
    """Read from ``sock`` until ``marker`` has been seen ``count`` times."""
    loop = asyncio.get_running_loop()
    seen, tail = 0, b""
    deadline = time.monotonic() + within
    for _ in range(10_000_000):
        if seen >= count:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            break
        data = await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), left)
        if not data:
            raise ConnectionError("closed by the server")
        data = tail + data
        seen += data.count(marker)
        tail = data[-len(marker) + 1 :]
    raise TimeoutError(f"saw {marker!r} {seen} times of {count}")


def _ws_request(port: int, query: str = "") -> bytes:
    return ws_upgrade_request(HOST, port, "/ws" + query)


def _get(port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()


async def _subscribe(sock: socket.socket, channels: list[str]) -> None:
    loop = asyncio.get_running_loop()
    for start in range(0, len(channels), 500):
        frames = b"".join(
            ws_frame(orjson.dumps({"type": "subscribe", "channel": c}))
            for c in channels[start : start + 500]
        )
        await loop.sock_sendall(sock, frames)
        await _read_until(sock, b'"subscribed"', len(channels[start : start + 500]))


async def _publish(port: int, channels: list[str]) -> None:
    """Publish once to each of ``channels`` over one keep-alive HTTP connection."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        for start in range(0, len(channels), _BATCH):
            items = [{"channel": c, "data": _BODY} for c in channels[start : start + _BATCH]]
            body = orjson.dumps(items)
            writer.write(
                b"POST /api/publish HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (API_KEY.encode(), len(body), body)
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            answer = await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200") or b'"error"' in answer:
                raise RuntimeError(f"publish refused: {head[:40]!r} {answer[:200]!r}")
    finally:
        writer.close()


def _wait_metric(port: int, key: str, at_least: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if scrape_metrics(port).get(key, 0) >= at_least:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{key} did not reach {at_least}")


# --- cases ---------------------------------------------------------------------------------


#: A step returns the items added and what to keep open until the case ends.
Step = Callable[[int], Awaitable[list[socket.socket]]]


def _names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}:{i:07d}" for i in range(n)]


def _case_channel(server: _Server, count: int) -> dict[str, float]:
    asyncio.run(_publish(server.port, _names("warm", 200)))
    base = server.settled_rss()
    channels = _names("live", count)
    asyncio.run(_publish(server.port, channels))
    one = server.settled_rss()
    for _ in range(9):
        asyncio.run(_publish(server.port, channels))
    ten = server.settled_rss()
    return {
        "channel_with_1_publication_bytes": (one - base) / count,
        "each_further_publication_held_bytes": (ten - one) / (9 * count),
    }


def _case_many_channels(server: _Server, count: int) -> dict[str, float]:
    async def go() -> float:
        warm = await _open(server.port, _ws_request(server.port))
        await _subscribe(warm, _names("warm", 200))
        sock = await _open(server.port, _ws_request(server.port))
        base = await asyncio.to_thread(server.settled_rss)
        await _subscribe(sock, _names("sub", count))
        after = await asyncio.to_thread(server.settled_rss)
        sock.close()
        warm.close()
        return (after - base) / count

    return {"subscription_to_a_new_channel_bytes": asyncio.run(go())}


def _case_ws(server: _Server, count: int) -> dict[str, float]:
    async def go() -> dict[str, float]:
        loop = asyncio.get_running_loop()
        warm = await _open_many(server.port, _ws_request(server.port, "?channel=shared"), 100)
        base = await asyncio.to_thread(server.settled_rss)
        socks = await _open_many(server.port, _ws_request(server.port), count)
        idle = await asyncio.to_thread(server.settled_rss)
        frame = ws_frame(orjson.dumps({"type": "subscribe", "channel": "shared"}))
        for sock in socks:
            await loop.sock_sendall(sock, frame)
        for start in range(0, count, _CONNECT_AT_ONCE):
            await asyncio.gather(
                *(
                    _read_until(s, b'"subscribed"', 1)
                    for s in socks[start : start + _CONNECT_AT_ONCE]
                )
            )
        subscribed = await asyncio.to_thread(server.settled_rss)
        for sock in [*socks, *warm]:
            sock.close()
        return {
            "ws_idle_connection_bytes": (idle - base) / count,
            "subscription_to_a_shared_channel_bytes": (subscribed - idle) / count,
        }

    return asyncio.run(go())


def _case_sse(server: _Server, count: int) -> dict[str, float]:
    async def go() -> float:
        request = _get(server.port, "/sse?channel=shared")
        warm = await _open_many(server.port, request, 100)
        base = await asyncio.to_thread(server.settled_rss)
        socks = await _open_many(server.port, request, count)
        after = await asyncio.to_thread(server.settled_rss)
        for sock in [*socks, *warm]:
            sock.close()
        return (after - base) / count

    return {"sse_stream_on_a_shared_channel_bytes": asyncio.run(go())}


def _case_longpoll(server: _Server, count: int) -> dict[str, float]:
    async def go() -> float:
        request = _get(server.port, "/poll?channel=shared&timeout=600")
        key = 'pushwire_connections{transport="longpoll"}'
        warm = await _open_many(server.port, request, 100, wait_head=False)
        await asyncio.to_thread(_wait_metric, server.port, key, 100)
        base = await asyncio.to_thread(server.settled_rss)
        socks = await _open_many(server.port, request, count, wait_head=False)
        await asyncio.to_thread(_wait_metric, server.port, key, 100 + count)
        after = await asyncio.to_thread(server.settled_rss)
        for sock in [*socks, *warm]:
            sock.close()
        return (after - base) / count

    return {"longpoll_waiting_on_a_shared_channel_bytes": asyncio.run(go())}


CASES: dict[str, Callable[[_Server, int], dict[str, float]]] = {
    "channel": _case_channel,
    "subscription-many-channels": _case_many_channels,
    "ws": _case_ws,
    "sse": _case_sse,
    "longpoll": _case_longpoll,
}


def measure(
    *, count: int = 10_000, repeat: int = 3, cases: list[str] | None = None
) -> dict[str, Any]:
    """Run each case ``repeat`` times on fresh servers; per-item bytes, median and range."""
    runs: dict[str, list[float]] = {}
    for name in cases or list(CASES):
        histories = (False, True) if name == "channel" else (False,)
        for memory in histories:
            for _ in range(repeat):
                with tempfile.TemporaryDirectory(prefix="pushwire-memory-") as tmp:
                    server = _Server(memory, tmp)
                    try:
                        found = CASES[name](server, count)
                        fds = open_fds(server.proc.pid)
                    finally:
                        server.stop()
                for key, value in found.items():
                    label = (
                        f"{key} ({'memory' if memory else 'sqlite'})" if name == "channel" else key
                    )
                    runs.setdefault(label, []).append(value)
                print(f"bench memory: {name} {'memory' if memory else 'sqlite'}: "
                      f"{ {k: round(v) for k, v in found.items()} } (fds {fds})",
                      file=sys.stderr)  # fmt: skip
    return {
        "count": count,
        "repeat": repeat,
        "bytes_per_item": {
            label: {
                "median": round(statistics.median(values)),
                "min": round(min(values)),
                "max": round(max(values)),
                "runs": [round(v) for v in values],
            }
            for label, values in runs.items()
        },
    }
