"""Reconnecting WebSocket subscribers for ``python -m bench storm``, one worker's share.

Each subscriber behaves as ``pushwire.client.Client`` does when its server dies: after a
connection drops it waits ``Backoff.delay_seconds(unstable)`` (full jitter, 0-0.5 s when the
connection had lasted), then every failed attempt in a row doubles the cap
(``delay_seconds(unstable + failures)``, up to 30 s); the policy object is the client's own
(``pushwire.client.backoff.Backoff``), so the storm is the one real clients make. Once
connected it resubscribes with the cursor of the last message it got.

The subscribers are raw ``asyncio.Protocol`` connections, as in ``bench.readers``: 5,000 of
them per process must leave CPU for the server. Per message they parse only the ``id`` and
the ``seq`` of the data (one regex), and check it continues the stream: offsets seen again
are counted as duplicates, offsets jumped over as losses, and an in-order CRC-32 of
``offset:seq`` is kept so the coordinator can compare what each subscriber holds with the
committed stream read back from history after the run.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import time
import zlib
from asyncio import FIRST_COMPLETED
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any, cast

import orjson

from bench.wire import check_ws_upgrade_response, ws_frame, ws_upgrade_request
from bench.worker import Command, Worker, raise_nofile_limit
from pushwire.client.backoff import Backoff

#: Like ``pushwire.client``: a connection that lasted this long resets the back-off.
STABLE_CONNECTION_SECONDS = 5.0
#: Like ``ClientOptions.connect_timeout_seconds``: TCP connect plus the upgrade.
CONNECT_TIMEOUT_SECONDS = 10.0

#: A publication frame as the server writes it, with the storm's data ``{"seq": N}``.
_MESSAGE = re.compile(
    rb'\{"type":"message","channel":"[^"]*","id":"([^"-]+)-(\d+)","data":\{"seq":(\d+)\}'
)
_MESSAGE_HEAD = b'{"type":"message"'


def digest_step(digest: int, offset: int, seq: int) -> int:
    """Fold one publication into a subscriber's in-order digest (the coordinator uses it too)."""
    return zlib.crc32(b"%d:%d," % (offset, seq), digest)


class _Conn(asyncio.Protocol):
    """One connection of a :class:`StormClient`: the upgrade, then frames."""

    def __init__(self, owner: StormClient) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self._head = b""
        self._buf = b""
        self.upgraded = False
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        owner = self.owner
        self.transport.write(ws_upgrade_request(owner.host, owner.port, "/ws"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionResetError("closed during the upgrade"))
        if not self.lost.done():
            self.lost.set_result(None)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if not self.upgraded:
            self._head += data
            k = self._head.find(b"\r\n\r\n")
            if k < 0:
                return
            problem = check_ws_upgrade_response(self._head[: k + 4])
            if problem is not None:
                if not self.opened.done():
                    self.opened.set_exception(HandshakeRefused(problem))
                self.abort()
                return
            data = self._head[k + 4 :]
            self._head = b""
            self.upgraded = True
            self.opened.set_result(None)
            assert self.transport is not None
            self.transport.write(ws_frame(self.owner.subscribe_frame()))
            if not data:
                return
        if self._buf:
            data = self._buf + data
        n = len(data)
        i = 0
        owner = self.owner
        while i + 2 <= n:
            opcode = data[i] & 0x0F
            ln = data[i + 1] & 0x7F
            start = i + 2
            if ln == 126:
                if i + 4 > n:
                    break
                ln = data[i + 2] << 8 | data[i + 3]
                start = i + 4
            elif ln == 127:
                if i + 10 > n:
                    break
                ln = int.from_bytes(data[i + 2 : i + 10], "big")
                start = i + 10
            end = start + ln
            if end > n:
                break
            if opcode == 0x1:
                owner.on_text(data[start:end])
            elif opcode == 0x9 and self.transport is not None:
                self.transport.write(ws_frame(data[start:end], opcode=0xA))
            elif opcode == 0x8 and self.transport is not None:
                self.transport.write(ws_frame(data[start : start + 2], opcode=0x8))
                self.transport.close()
            i = end
        self._buf = data[i:] if i < n else b""


class HandshakeRefused(Exception):
    """The server answered the upgrade with something other than 101 (such as a 503)."""


class StormClient:
    """One subscriber that survives its server: reconnects, resubscribes, counts."""

    def __init__(self, worker: StormWorker, channel: str) -> None:
        self.worker = worker
        self.host = worker.host
        self.port = worker.port
        self.channel = channel
        self.epoch: str | None = None
        #: Offset of the last message taken (the cursor), and where the stream began for us.
        self.offset = -1
        self.start_offset = -1
        self.digest = 0
        self.duplicates = 0
        self.lost = 0
        self.epoch_changes = 0
        self.gaps = 0
        self.not_recovered = 0
        self.subscribed = False
        #: Whether a connection of ours has dropped (the kill) since the first subscription.
        self.dropped = False
        #: Set at each ``subscribed`` reply (the ramp waits for the first one).
        self.subscribed_event = asyncio.Event()
        #: Set at the first ``subscribed`` after a drop (time.time(), comparable across
        #: processes), and when the replay behind it reached where live delivery went on.
        self.back_at = 0.0
        self.caught_up_at = 0.0
        self._live_from = -1
        self.conn: _Conn | None = None
        self._stop = asyncio.Event()

    def subscribe_frame(self) -> bytes:
        frame: dict[str, Any] = {"type": "subscribe", "channel": self.channel, "ref": 1}
        if self.epoch is not None:
            frame["cursor"] = f"{self.epoch}-{self.offset}"
        return orjson.dumps(frame)

    # -- frames -------------------------------------------------------------------------------
    def on_text(self, payload: bytes) -> None:
        if payload.startswith(_MESSAGE_HEAD):
            m = _MESSAGE.match(payload)
            if m is not None:
                self._on_message(m.group(1).decode(), int(m.group(2)), int(m.group(3)))
                return
        self._on_control(orjson.loads(payload))

    def _on_message(self, epoch: str, offset: int, seq: int) -> None:
        if epoch != self.epoch:
            self.epoch_changes += 1
            return
        expected = self.offset + 1
        if offset < expected:
            self.duplicates += 1
            return
        if offset > expected:
            self.lost += offset - expected
        self.offset = offset
        self.digest = digest_step(self.digest, offset, seq)
        self.worker.delivered += 1
        if not self.caught_up_at and self.back_at and offset >= self._live_from:
            self.caught_up_at = time.time()

    def _on_control(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "subscribed":
            self._on_subscribed(frame)
        elif kind == "gap":
            self.gaps += 1
        else:
            self.worker.frames[f"{kind}: {frame.get('code', '')}"] += 1

    def _on_subscribed(self, frame: dict[str, Any]) -> None:
        epoch, _, offset = str(frame["cursor"]).rpartition("-")
        live_from = int(offset)
        if self.epoch is None:  # the first subscription: the stream starts here
            self.epoch, self.offset, self.start_offset = epoch, live_from, live_from
        elif frame.get("recovered") is not True:
            self.not_recovered += 1
            if epoch != self.epoch:
                self.epoch_changes += 1
        self.subscribed = True
        self.subscribed_event.set()
        self.worker.subscribed_replies += 1
        if self.dropped and not self.back_at:
            self.back_at = time.time()
            self._live_from = live_from
            if self.offset >= live_from:
                self.caught_up_at = self.back_at

    # -- the connection loop -------------------------------------------------------------------
    async def run(self, first: asyncio.Semaphore) -> None:
        """Connect, and reconnect for as long as the run lasts, as ``pushwire.Client`` does."""
        backoff = Backoff()
        failures = 0
        unstable = 0
        loop = self.worker.loop
        held: asyncio.Semaphore | None = first
        await first.acquire()
        try:
            while not self._stop.is_set():
                conn = _Conn(self)
                self.conn = conn
                self.worker.attempts += 1
                began = time.time()
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                        await loop.create_connection(lambda c=conn: c, self.host, self.port)  # type: ignore[misc]
                        await conn.opened
                except (OSError, TimeoutError, HandshakeRefused) as exc:
                    conn.abort()
                    self.worker.failed(exc, began)
                    failures += 1
                    await asyncio.sleep(backoff.delay_seconds(unstable + failures))
                    continue
                opened_at = loop.time()
                if held is not None:
                    # The first connection: hold the ramp's slot until subscribed.
                    subscribed = asyncio.ensure_future(self.subscribed_event.wait())
                    await asyncio.wait((subscribed, conn.lost), return_when=FIRST_COMPLETED)
                    subscribed.cancel()
                    held.release()
                    held = None
                await conn.lost
                self.subscribed = False
                self.dropped = True
                if self._stop.is_set():
                    return
                self.worker.drops += 1
                stable = loop.time() - opened_at >= STABLE_CONNECTION_SECONDS
                unstable = 0 if stable else unstable + 1
                failures = 0
                await asyncio.sleep(backoff.delay_seconds(unstable))
        finally:
            if held is not None:
                held.release()

    def stop(self) -> None:
        self._stop.set()
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.close()


class StormWorker(Worker):
    """A load-generator worker (``bench.worker``) with the storm's commands."""

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        self.host = "127.0.0.1"
        self.port = 0
        self.clients: list[StormClient] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.attempts = 0
        self.drops = 0
        self.delivered = 0
        self.subscribed_replies = 0
        #: Failed connection attempts: when they began (time.time()) and what; the coordinator sorts
        #: them into phases by its own clock (a busy worker reads its commands late).
        self.failure_kinds: list[str] = []
        self.failure_log: list[tuple[float, int]] = []
        self.frames: Counter[str] = Counter()

    def failed(self, exc: BaseException, began: float) -> None:
        """Log a failed attempt by when it began: a SYN sent after ``/health`` answered and
        refused is the server's doing, whenever this busy loop got to the error."""
        refused = getattr(exc, "errno", None) == errno.ECONNREFUSED
        if isinstance(exc, ConnectionRefusedError) or refused:
            kind = "refused (ECONNREFUSED)"
        elif isinstance(exc, TimeoutError):
            kind = "timeout"
        elif isinstance(exc, HandshakeRefused):
            kind = f"upgrade refused: {exc}"[:80]
        else:
            kind = f"{type(exc).__name__}: {exc}"[:80]
        if kind not in self.failure_kinds:
            self.failure_kinds.append(kind)
        self.failure_log.append((began, self.failure_kinds.index(kind)))

    def _finish(self) -> None:
        for client in self.clients:
            client.stop()
        super()._finish()

    async def op_storm_start(self, cmd: Command) -> dict[str, Any]:
        """Start ``count`` subscribers (at most ``concurrency`` first connections at once)."""
        self.host, self.port = cmd["host"], cmd["port"]
        first = asyncio.Semaphore(cmd["concurrency"])
        for _ in range(cmd["count"]):
            client = StormClient(self, cmd["channel"])
            self.clients.append(client)
            self.tasks.append(self.loop.create_task(client.run(first)))
        return {"started": cmd["count"]}

    async def op_storm_progress(self, cmd: Command) -> dict[str, Any]:
        """Counters cheap enough to poll twice a second."""
        top = cmd.get("top", -1)
        return {
            "clients": len(self.clients),
            "subscribed": sum(1 for c in self.clients if c.subscribed),
            "back": sum(1 for c in self.clients if c.back_at),
            "caught_up": sum(1 for c in self.clients if c.caught_up_at),
            "at_top": sum(1 for c in self.clients if c.offset >= top),
            "min_offset": min((c.offset for c in self.clients), default=-1),
            "attempts": self.attempts,
            "delivered": self.delivered,
            "cpu": time.process_time(),
        }

    async def op_storm_report(self, cmd: Command) -> dict[str, Any]:
        """Everything the verdict needs: per-subscriber state and the counters."""
        cs = self.clients
        return {
            "start_offsets": [c.start_offset for c in cs],
            "offsets": [c.offset for c in cs],
            "epochs": sorted({c.epoch or "" for c in cs}),
            "digests": [c.digest for c in cs],
            "back_at": [c.back_at for c in cs],
            "caught_up_at": [c.caught_up_at for c in cs],
            "duplicates": sum(c.duplicates for c in cs),
            "lost": sum(c.lost for c in cs),
            "epoch_changes": sum(c.epoch_changes for c in cs),
            "gaps": sum(c.gaps for c in cs),
            "not_recovered": sum(c.not_recovered for c in cs),
            "attempts": self.attempts,
            "drops": self.drops,
            "subscribed_replies": self.subscribed_replies,
            "failure_kinds": self.failure_kinds,
            "failure_log": self.failure_log,
            "frames": dict(self.frames),
            "cpu": time.process_time(),
        }

    async def op_storm_stop(self, cmd: Command) -> dict[str, Any]:
        for client in self.clients:
            client.stop()
        for task in self.tasks:
            task.cancel()  # some sleep in a back-off of up to 30 s
        await asyncio.gather(*self.tasks, return_exceptions=True)
        return {}


async def _amain(conn: Connection) -> None:
    worker = StormWorker(conn)
    worker.loop.add_reader(conn.fileno(), worker.on_readable)
    os.set_blocking(conn.fileno(), True)  # replies (10k-entry lists) are written whole
    try:
        await worker.done
    finally:
        worker.loop.remove_reader(conn.fileno())
        await asyncio.sleep(0.05)


def storm_worker_main(conn: Connection) -> None:
    """Process entry point (``multiprocessing`` target)."""
    raise_nofile_limit()
    try:
        import uvloop
    except ImportError:
        asyncio.run(_amain(conn))
    else:
        uvloop.run(_amain(conn))
