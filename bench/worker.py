"""One load-generator worker process: holds a share of the subscribers, obeys the coordinator.

Subscribers are spread over several processes so that (a) no process needs 20,000 open files
and (b) reading fan-out traffic is not limited to one core. The coordinator drives each worker
with small pickled commands over a ``multiprocessing`` pipe; the worker's uvloop event loop
watches the pipe with ``add_reader`` so commands never block the readers.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

from bench.readers import SUBSCRIBERS, PollSubscriber, Recorder, Subscriber, WsSubscriber
from bench.wire import ws_frame

Command = dict[str, Any]


def raise_nofile_limit() -> int:
    """Raise this process's open-file soft limit to its hard limit; return the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Worker:
    """State of one worker: its subscribers and latency recorder."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.rec = Recorder()
        self.subs: list[Subscriber] = []
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = self.loop.create_future()

    def on_readable(self) -> None:
        """Dispatch one command from the coordinator (runs as its own task if it waits)."""
        try:
            cmd: Command = self.conn.recv()
        except EOFError:
            self._finish()
            return
        self.loop.create_task(self._run(cmd))

    async def _run(self, cmd: Command) -> None:
        op = cmd["op"]
        try:
            result = await getattr(self, "op_" + op)(cmd)
        except Exception as exc:  # reported to the coordinator, which fails the run
            result = {"error": f"{type(exc).__name__}: {exc}"}
        self.conn.send({"id": cmd["id"], **result})

    def _finish(self) -> None:
        for sub in self.subs:
            sub.close()
        if not self.done.done():
            self.done.set_result(None)

    # -- commands ----------------------------------------------------------------------------
    async def op_connect(self, cmd: Command) -> dict[str, Any]:
        """Open ``count`` subscribers, at most ``concurrency`` handshakes in flight."""
        cls = SUBSCRIBERS[cmd["transport"]]
        host, port, path = cmd["host"], cmd["port"], cmd["path"]
        sem = asyncio.Semaphore(cmd["concurrency"])
        timeout = cmd.get("timeout", 30.0)
        errors: Counter[str] = Counter()
        ready = 0
        slowest = 0.0

        async def one() -> None:
            nonlocal ready, slowest
            async with sem:
                t = time.perf_counter()
                sub = cls(host, port, path, self.rec)
                try:
                    await asyncio.wait_for(
                        self.loop.create_connection(lambda: sub, host, port), timeout
                    )
                    await asyncio.wait_for(sub.ready_fut, timeout)
                except (OSError, ConnectionError, TimeoutError) as exc:
                    errors[f"{type(exc).__name__}: {exc}"[:120]] += 1
                    sub.close()
                    return
                self.subs.append(sub)
                ready += 1
                slowest = max(slowest, time.perf_counter() - t)

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(cmd["count"])))
        return {
            "ready": ready,
            "failed": sum(errors.values()),
            "errors": dict(errors.most_common(5)),
            "elapsed": time.perf_counter() - t0,
            "slowest": slowest,
        }

    async def op_total(self, cmd: Command) -> dict[str, Any]:
        """Report the delivery total and the slowest subscriber's count (polled often)."""
        return {
            "total": self.rec.total,
            "last_rx_ns": self.rec.last_rx_ns,
            "min": min((s.count for s in self.subs if not s.closed), default=None),
        }

    async def op_stats(self, cmd: Command) -> dict[str, Any]:
        """Report per-subscriber counters (walks every subscriber: not for tight loops)."""
        counts = [s.count for s in self.subs if not s.closed]
        open_subs = len(counts)
        errors: Counter[str] = Counter(s.error for s in self.subs if s.error)
        return {
            "subs": len(self.subs),
            "open": open_subs,
            "synced": sum(1 for s in self.subs if s.synced and not s.closed),
            "total": sum(s.count for s in self.subs),
            "min": min(counts) if counts else 0,
            "max": max(counts) if counts else 0,
            "last_rx_ns": max((s.last_rx_ns for s in self.subs), default=0),
            "cpu": time.process_time(),
            "http_errors": sum(s.http_errors for s in self.subs if isinstance(s, PollSubscriber)),
            "gaps": sum(s.gaps for s in self.subs if isinstance(s, PollSubscriber)),
            "reads": sum(s.reads for s in self.subs),
            "repeats": sum(s.repeats for s in self.subs),
            "skips": sum(s.skips for s in self.subs),
            "errors": dict(errors.most_common(3)),
        }

    async def op_reset(self, cmd: Command) -> dict[str, Any]:
        """Zero counters and latency samples; switch latency recording and verifying on or off."""
        for sub in self.subs:
            sub.reset()
        self.rec.lat_ns = self.rec.lat_ns.__class__("q")
        self.rec.total = 0
        self.rec.last_rx_ns = 0
        self.rec.record = bool(cmd.get("record", False))
        self.rec.verify = bool(cmd.get("verify", False))
        return {}

    async def op_latencies(self, cmd: Command) -> dict[str, Any]:
        """Hand over the recorded publish-to-receive latencies (int64 ns, raw bytes)."""
        return {"lat_ns": self.rec.lat_ns.tobytes()}

    async def op_ping(self, cmd: Command) -> dict[str, Any]:
        """Send one ping frame from every open WebSocket subscriber (their first frame)."""
        sent = 0
        for sub in self.subs:
            if isinstance(sub, WsSubscriber) and not sub.closed and sub.transport is not None:
                sub.transport.write(ws_frame(b"", opcode=0x9))
                sent += 1
        return {"sent": sent}

    async def op_close(self, cmd: Command) -> dict[str, Any]:
        """Close every subscriber and forget them."""
        for sub in self.subs:
            sub.close()
        await asyncio.sleep(0.05)
        n = len(self.subs)
        self.subs = []
        return {"closed": n}

    async def op_exit(self, cmd: Command) -> dict[str, Any]:
        """Close everything and let the process end."""
        self.loop.call_soon(self._finish)
        return {}


async def _amain(conn: Connection) -> None:
    worker = Worker(conn)
    worker.loop.add_reader(conn.fileno(), worker.on_readable)
    # add_reader made the pipe non-blocking; pickled replies (latency samples: megabytes) must
    # be written whole, so switch it back. Reads only happen when data is there.
    os.set_blocking(conn.fileno(), True)
    try:
        await worker.done
    finally:
        worker.loop.remove_reader(conn.fileno())
        await asyncio.sleep(0.05)  # let transports flush their FINs


def worker_main(conn: Connection) -> None:
    """Process entry point (``multiprocessing`` target)."""
    raise_nofile_limit()
    try:
        import uvloop
    except ImportError:  # still correct without uvloop, only slower
        asyncio.run(_amain(conn))
    else:
        uvloop.run(_amain(conn))
