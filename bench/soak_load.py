"""The soak's clients: a seeded, bounded mix of connections that come and go.

Run as its own process by ``bench.soak`` (``python -m bench.soak_load ...``), so that the
sampler's clock and the server's /health round trips are not held up by this load. Each of
``actors`` coroutines picks a behaviour, lives it for a while, and picks again until the
deadline: WebSockets (``websockets``), SSE streams and long polls (raw HTTP) that read
what they get and leave; ones that vanish with a RST; slow readers that stop reading a
busy channel (the server's ``max_buffer_bytes`` must cut them off); silent WebSockets
that neither read nor answer pings (the server's ping timeout must close them); and
presence members with tokens. Three publishers run beside them: the HTTP API (single and
batch), a WebSocket, and a "firehose" of 4 KiB messages for the slow readers to fall
behind on. Every loop ends at the deadline or after a fixed number of rounds; every
address is loopback. The counts are printed as one JSON line at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import socket
import struct
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import orjson
from websockets.asyncio.client import ClientConnection, connect

from bench.targets import HOST
from bench.wire import ws_upgrade_request

__all__ = ["BEHAVIOURS", "PUBLISHERS", "SHARED_CHANNELS", "LoadSettings", "names_in", "run_load"]

SHARED_CHANNELS = 50
ROOMS = 10
USERS = 300
FIREHOSE = "soak:firehose"
FIREHOSE_BYTES = 4096
#: Far more than any actor can go through in a run: the "bounded" of every actor's loop.
MAX_ROUNDS = 100_000

_LINGER_RST = struct.pack("ii", 1, 0)

#: Each actor behaviour (a method of ``_Load``) with how often an actor picks it.
_WEIGHTS = {
    "ws_reader": 30,
    "ws_vanish": 10,
    "ws_member": 8,
    "sse_reader": 12,
    "sse_vanish": 5,
    "poller": 15,
    "poll_vanish": 4,
    "slow_reader": 3,
    "silent_ws": 3,
}
BEHAVIOURS = tuple(_WEIGHTS)
#: The publishers beside the actors: two on the HTTP API (single and batch), the 4 KiB
#: firehose for slow readers to fall behind on, and one WebSocket.
PUBLISHERS = ("api", "firehose", "ws")


class LoadSettings:
    """What the load process is told on its command line."""

    def __init__(
        self,
        port: int,
        seconds: float,
        seed: int,
        actors: int,
        api_key: str,
        secret: str,
        behaviours: tuple[str, ...] = BEHAVIOURS,
        publishers: tuple[str, ...] = PUBLISHERS,
    ) -> None:
        self.port = port
        self.seconds = seconds
        self.seed = seed
        self.actors = actors
        self.api_key = api_key
        self.secret = secret
        #: The actors' behaviours and the publishers this run has (all of them by default):
        #: fewer, to find out which part of the mix a server's growth comes from.
        self.behaviours = behaviours
        self.publishers = publishers


class _Load:
    """One run's shared state: settings, deadline and the counters every actor adds to."""

    def __init__(self, settings: LoadSettings) -> None:
        self.s = settings
        self.stats: Counter[str] = Counter()
        self.deadline = time.monotonic() + settings.seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    # --- names ---------------------------------------------------------------------------

    @staticmethod
    def shared(rng: random.Random) -> str:
        # Skewed: a few channels are busy, most are quiet.
        return f"soak:shared:{min(int(rng.expovariate(1 / 8)), SHARED_CHANNELS - 1)}"

    @staticmethod
    def made_up(rng: random.Random) -> str:
        return f"soak:made-up:{rng.getrandbits(64):016x}"

    def channels(self, rng: random.Random) -> list[str]:
        names = {self.shared(rng) for _ in range(rng.randint(1, 6))}
        names.update(self.made_up(rng) for _ in range(rng.choice((0, 0, 5, 20, 60))))
        return sorted(names)

    def token(self, user: str) -> str:
        claims = {"sub": user, "exp": int(time.time()) + 3600, "info": {"name": user}}
        return jwt.encode(claims, self.s.secret, algorithm="HS256")

    # --- actors --------------------------------------------------------------------------

    async def actor(self, n: int) -> None:
        rng = random.Random(f"{self.s.seed}-{n}")
        # Spread the first connections over the first seconds instead of one burst.
        await asyncio.sleep(rng.uniform(0, min(10.0, self.s.seconds / 4)))
        funcs: list[Callable[[random.Random, float], Awaitable[None]]] = [
            getattr(self, name) for name in self.s.behaviours
        ]
        weights = [_WEIGHTS[name] for name in self.s.behaviours]
        for _ in range(MAX_ROUNDS):
            if self.left() < 2:
                return
            behaviour = rng.choices(funcs, weights)[0]
            name = behaviour.__name__
            lifetime = min(rng.uniform(2, 40), self.left() - 1)
            self.stats[f"{name}.started"] += 1
            try:
                # A safety net only: each behaviour ends by itself (the slow ones within 95 s).
                await asyncio.wait_for(behaviour(rng, lifetime), max(lifetime, 95) + 30)
            except Exception as e:  # counted and reported, never fatal to the run
                self.stats[f"error.{name}.{type(e).__name__}"] += 1
            await asyncio.sleep(rng.uniform(0.05, 1.0))

    async def _ws(self, path: str) -> ClientConnection:
        return await connect(
            f"ws://{HOST}:{self.s.port}{path}",
            max_queue=None,
            open_timeout=15,
            ping_interval=None,  # the server pings; the library answers by itself
            close_timeout=2,
        )

    async def _ws_read(self, ws: ClientConnection, rng: random.Random, lifetime: float) -> None:
        """Read until ``lifetime`` is up, publishing now and then like a chat client."""
        end = time.monotonic() + lifetime
        next_publish = time.monotonic() + rng.uniform(1, 20)
        for _ in range(MAX_ROUNDS):
            now = time.monotonic()
            if now >= end:
                return
            if now >= next_publish:
                next_publish = now + rng.uniform(5, 30)
                target = self.shared(rng) if rng.random() < 0.7 else self.made_up(rng)
                body = {"type": "publish", "channel": target, "data": {"from": "ws-client"}}
                await ws.send(orjson.dumps(body))
                self.stats["publish.ws-client"] += 1
            try:
                frame = await asyncio.wait_for(ws.recv(), min(end, next_publish) - now)
            except TimeoutError:
                continue
            self.stats["ws.frames"] += 1
            if isinstance(frame, str) and '"type":"error"' in frame:
                self.stats["ws.error-frames"] += 1

    async def _ws_subscribe(self, ws: ClientConnection, channels: list[str]) -> None:
        for ref, channel in enumerate(channels):
            await ws.send(orjson.dumps({"type": "subscribe", "channel": channel, "ref": ref}))

    async def ws_reader(self, rng: random.Random, lifetime: float) -> None:
        async with await self._ws("/ws") as ws:
            await self._ws_subscribe(ws, self.channels(rng))
            await self._ws_read(ws, rng, lifetime)

    async def ws_vanish(self, rng: random.Random, lifetime: float) -> None:
        ws = await self._ws("/ws")
        try:
            await self._ws_subscribe(ws, self.channels(rng))
            await self._ws_read(ws, rng, lifetime)
        finally:
            _rst(ws.transport.get_extra_info("socket"))
            ws.transport.abort()
            self.stats["vanished.ws"] += 1

    async def ws_member(self, rng: random.Random, lifetime: float) -> None:
        """A user with a token in a presence room: join, ask who is there, leave."""
        user = f"user-{rng.randrange(USERS)}"
        room = f"room:{rng.randrange(ROOMS)}"
        async with await self._ws(f"/ws?token={self.token(user)}&channel={room}") as ws:
            await ws.send(orjson.dumps({"type": "presence", "channel": room, "ref": "p"}))
            await self._ws_read(ws, rng, lifetime)

    async def _http(self, request: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(HOST, self.s.port)
        writer.write(request)
        return reader, writer

    def _get(self, path: str) -> bytes:
        return f"GET {path} HTTP/1.1\r\nHost: {HOST}:{self.s.port}\r\n\r\n".encode()

    def _query(self, channels: list[str]) -> str:
        return "&".join(f"channel={c}" for c in channels)

    async def _sse(self, rng: random.Random, lifetime: float, *, vanish: bool) -> None:
        reader, writer = await self._http(self._get(f"/sse?{self._query(self.channels(rng))}"))
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
            if not head.startswith(b"HTTP/1.1 200"):
                self.stats[f"sse.refused.{head[9:12].decode(errors='replace')}"] += 1
                return
            end = time.monotonic() + lifetime
            for _ in range(MAX_ROUNDS):
                left = end - time.monotonic()
                if left <= 0:
                    break
                try:
                    chunk = await asyncio.wait_for(reader.read(65536), left)
                except TimeoutError:
                    break
                if not chunk:
                    self.stats["sse.closed-by-server"] += 1
                    break
                self.stats["sse.events"] += chunk.count(b"\ndata:") + chunk.startswith(b"data:")
        finally:
            if vanish:
                _rst(writer.get_extra_info("socket"))
                writer.transport.abort()
                self.stats["vanished.sse"] += 1
            else:
                writer.close()

    async def sse_reader(self, rng: random.Random, lifetime: float) -> None:
        await self._sse(rng, lifetime, vanish=False)

    async def sse_vanish(self, rng: random.Random, lifetime: float) -> None:
        await self._sse(rng, lifetime, vanish=True)

    async def _poll(self, rng: random.Random, lifetime: float, *, vanish: bool) -> None:
        """Long or short polls on one keep-alive connection, following the cursor."""
        channels = self.channels(rng)[:8]
        query = self._query(channels)
        wait = rng.choice((0, 5, 10, 20))
        reader, writer = await asyncio.open_connection(HOST, self.s.port)
        cursor = ""
        end = time.monotonic() + lifetime
        try:
            for _ in range(MAX_ROUNDS):
                if time.monotonic() >= end:
                    break
                # A long poll ends with the actor's lifetime, not up to 20 s after it.
                timeout = min(wait, max(int(end - time.monotonic()), 0))
                if wait and not timeout:
                    break  # under a second left: no short polls in a tight loop
                path = f"/poll?{query}&timeout={timeout}" + (f"&cursor={cursor}" if cursor else "")
                writer.write(self._get(path))
                if vanish and rng.random() < 0.3:
                    await asyncio.sleep(rng.uniform(0, timeout))  # gone while the poll waits
                    break
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout + 15)
                length = _content_length(head)
                body = await asyncio.wait_for(reader.readexactly(length), 15)
                if not head.startswith(b"HTTP/1.1 200"):
                    self.stats[f"poll.refused.{head[9:12].decode(errors='replace')}"] += 1
                    break
                answer = orjson.loads(body)
                self.stats["poll.answers"] += 1
                self.stats["poll.messages"] += len(answer.get("messages", ()))
                cursor = answer.get("cursor", cursor)
                if wait == 0:
                    await asyncio.sleep(min(rng.uniform(0.5, 3), max(end - time.monotonic(), 0)))
        finally:
            if vanish:
                _rst(writer.get_extra_info("socket"))
                writer.transport.abort()
                self.stats["vanished.poll"] += 1
            else:
                writer.close()

    async def poller(self, rng: random.Random, lifetime: float) -> None:
        await self._poll(rng, lifetime, vanish=False)

    async def poll_vanish(self, rng: random.Random, lifetime: float) -> None:
        await self._poll(rng, lifetime, vanish=True)

    async def _raw(self, request: bytes, rcvbuf: int = 0) -> socket.socket:
        """A non-blocking socket that has sent ``request`` and read the response head."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # Before connect, so the window stays small: the server's writes back up fast.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (HOST, self.s.port)), 15)
            await loop.sock_sendall(sock, request)
            head = b""
            for _ in range(64):
                if b"\r\n\r\n" in head:
                    break
                part = await asyncio.wait_for(loop.sock_recv(sock, 4096), 15)
                if not part:
                    raise ConnectionError("closed before the response head")
                head += part
        except BaseException:
            sock.close()
            raise
        if not (head.startswith(b"HTTP/1.1 101") or head.startswith(b"HTTP/1.1 200")):
            sock.close()
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
        return sock

    async def slow_reader(self, rng: random.Random, lifetime: float) -> None:
        """Subscribe to the firehose and stop reading: the server must cut this one off."""
        # Long enough to fill the kernel's buffers (up to 4 MiB of send buffer on loopback)
        # and then max_buffer_bytes, at the firehose's ~100 KB/s.
        lifetime = rng.uniform(60, 90)
        if rng.random() < 0.5:
            request = ws_upgrade_request(HOST, self.s.port, f"/ws?channel={FIREHOSE}")
            kind = "ws"
        else:
            request = self._get(f"/sse?channel={FIREHOSE}")
            kind = "sse"
        sock = await self._raw(request, rcvbuf=4096)
        try:
            await asyncio.sleep(min(lifetime, max(self.left() - 1, 0)))
            self.stats[f"slow.{kind}.{_server_closed(sock)}"] += 1
        finally:
            _rst(sock)
            sock.close()

    async def silent_ws(self, rng: random.Random, lifetime: float) -> None:
        """Subscribe, then neither read nor answer pings, as a peer that lost its network.

        The server pings every 25 s and gives up 10 s later; after 50 s it should have
        closed the connection. (Not read, the kernel's buffer keeps what it sent.)
        """
        del lifetime
        request = ws_upgrade_request(HOST, self.s.port, f"/ws?channel={self.shared(rng)}")
        sock = await self._raw(request)
        try:
            stay = 50.0
            if self.left() < stay + 2:
                return
            await asyncio.sleep(stay)
            self.stats[f"silent.{_server_closed(sock)}"] += 1
        finally:
            _rst(sock)
            sock.close()

    # --- publishers ----------------------------------------------------------------------

    async def http_publisher(self, rate: float, firehose: bool) -> None:
        """``POST /api/publish`` on one keep-alive connection at about ``rate`` per second."""
        rng = random.Random(f"{self.s.seed}-publisher-{firehose}")
        pad = "x" * FIREHOSE_BYTES
        for _ in range(MAX_ROUNDS):
            if self.left() < 1:
                return
            try:
                reader, writer = await asyncio.open_connection(HOST, self.s.port)
            except OSError as e:
                self.stats[f"error.publisher.{type(e).__name__}"] += 1
                await asyncio.sleep(1)
                continue
            try:
                for _ in range(MAX_ROUNDS):
                    if self.left() < 1:
                        return
                    body: Any
                    if firehose:
                        body = {"channel": FIREHOSE, "data": {"pad": pad}}
                    elif rng.random() < 0.1:
                        body = [
                            {"channel": self.shared(rng) if rng.random() < 0.8
                             else self.made_up(rng), "data": {"n": i}}
                            for i in range(rng.randint(2, 20))
                        ]  # fmt: skip
                    else:
                        body = {"channel": self.shared(rng), "data": {"t": time.time()}}
                    raw = orjson.dumps(body)
                    writer.write(
                        b"POST /api/publish HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"
                        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                        % (self.s.api_key.encode(), len(raw), raw)
                    )
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
                    await asyncio.wait_for(reader.readexactly(_content_length(head)), 15)
                    status = head[9:12].decode(errors="replace")
                    kind = "firehose" if firehose else "api"
                    self.stats[f"publish.{kind}.{status}"] += (
                        len(body) if isinstance(body, list) else 1
                    )
                    await asyncio.sleep(rng.expovariate(rate))
            except Exception as e:
                self.stats[f"error.publisher.{type(e).__name__}"] += 1
            finally:
                writer.close()

    async def ws_publisher(self, rate: float) -> None:
        """An anonymous WebSocket publishing to the shared channels, reading its replies."""
        rng = random.Random(f"{self.s.seed}-ws-publisher")
        for _ in range(MAX_ROUNDS):
            if self.left() < 1:
                return
            try:
                async with await self._ws("/ws") as ws:
                    for ref in range(MAX_ROUNDS):
                        if self.left() < 1:
                            return
                        command = {"type": "publish", "channel": self.shared(rng),
                                   "data": {"ref": ref}, "ref": ref}  # fmt: skip
                        await ws.send(orjson.dumps(command))
                        reply = await asyncio.wait_for(ws.recv(), 15)
                        ok = isinstance(reply, str) and '"type":"published"' in reply
                        self.stats["publish.ws." + ("ok" if ok else "refused")] += 1
                        await asyncio.sleep(rng.expovariate(rate))
            except Exception as e:
                self.stats[f"error.ws-publisher.{type(e).__name__}"] += 1
                await asyncio.sleep(1)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            return int(line[15:])
    return 0


def _rst(sock: socket.socket | None) -> None:
    """Make the coming close a RST: the peer sees the connection vanish, no FIN, no close."""
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)


def _server_closed(sock: socket.socket) -> str:
    """Read what is buffered: "closed-by-server" if it ends in EOF, else "still-open"."""
    for _ in range(10_000):
        try:
            data = sock.recv(1 << 20)
        except BlockingIOError:
            return "still-open"
        except OSError:
            return "closed-by-server"
        if not data:
            return "closed-by-server"
    return "still-open"


async def _main(settings: LoadSettings) -> dict[str, Any]:
    load = _Load(settings)
    tasks = [load.actor(n) for n in range(settings.actors)] if settings.behaviours else []
    if "api" in settings.publishers:
        tasks += [load.http_publisher(rate=30, firehose=False) for _ in range(2)]
    if "firehose" in settings.publishers:
        tasks.append(load.http_publisher(rate=25, firehose=True))
    if "ws" in settings.publishers:
        tasks.append(load.ws_publisher(rate=20))
    started = time.monotonic()
    await asyncio.gather(*tasks)
    return {
        "seconds": round(time.monotonic() - started, 1),
        "stats": dict(sorted(load.stats.items())),
    }


def run_load(settings: LoadSettings) -> dict[str, Any]:
    """Run the load until its deadline; return the counters."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a pushwire dependency
        return asyncio.run(_main(settings))
    return uvloop.run(_main(settings))


def names_in(known: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    """An argparse type: a comma-separated subset of ``known`` ("" for none)."""

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(n for n in (x.strip() for x in text.split(",")) if n)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown: {', '.join(unknown)} (choose from {', '.join(known)})"
            )
        return names

    return parse


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak_load")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--actors", type=int, default=800)
    p.add_argument("--api-key", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--behaviours", type=names_in(BEHAVIOURS), default=BEHAVIOURS)
    p.add_argument("--publishers", type=names_in(PUBLISHERS), default=PUBLISHERS)
    a = p.parse_args(argv)
    settings = LoadSettings(a.port, a.seconds, a.seed, a.actors, a.api_key, a.secret,
                            a.behaviours, a.publishers)  # fmt: skip
    found = run_load(settings)
    sys.stdout.write(orjson.dumps(found).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
