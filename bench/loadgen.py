"""Coordinator side of the load generator: starts worker processes and aggregates their stats.

The coordinator runs the publishers in its own event loop and talks to the workers over pipes
(see ``bench.worker``). Every worker is a child started here and is ended here, by its own
process handle, when the run is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing as mp
import os
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from bench.worker import worker_main

#: Handshakes in flight per worker while opening connections. Several workers open in parallel,
#: so the server sees up to ``workers * CONNECT_CONCURRENCY`` pending connections: below the
#: 511-512 listen backlog of Node and uWS, above asyncio's default of 100.
CONNECT_CONCURRENCY = 128


@dataclass
class Stats:
    """Counters summed over all workers at one instant."""

    subs: int = 0
    open: int = 0
    synced: int = 0
    total: int = 0
    min: int = 0
    max: int = 0
    last_rx_ns: int = 0
    cpu: float = 0.0
    http_errors: int = 0
    gaps: int = 0
    #: Reads that delivered messages, summed over subscribers (total / reads: batching).
    reads: int = 0
    #: With verification on (``reset(verify=True)``): deliveries whose stream offset was seen
    #: before (duplicates), and offsets skipped over (losses), summed over subscribers.
    repeats: int = 0
    skips: int = 0
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class ConnectResult:
    """Outcome of opening a batch of subscribers across all workers."""

    ready: int
    failed: int
    elapsed: float
    errors: dict[str, int]
    #: Longest single connect+handshake; ~1 s or more means SYNs were dropped and retried.
    slowest: float = 0.0


class LoadGen:
    """A pool of worker processes holding subscribers, driven by async commands."""

    def __init__(self, workers: int, target: Callable[[Connection], None] = worker_main) -> None:
        """``target`` is the workers' entry point: ``bench.worker``'s, or a scenario's own."""
        self.n = workers
        self._target = target
        self._ctx = mp.get_context("spawn")
        self._procs: list[BaseProcess] = []
        self._conns: list[Connection] = []
        self._ids = itertools.count()
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> LoadGen:
        self._loop = asyncio.get_running_loop()
        for _ in range(self.n):
            parent, child = self._ctx.Pipe()
            proc = self._ctx.Process(target=self._target, args=(child,), daemon=True)
            proc.start()
            child.close()
            self._procs.append(proc)
            self._conns.append(parent)
            self._loop.add_reader(parent.fileno(), self._on_reply, parent)
            # Keep the pipe blocking so a multi-megabyte reply is read whole (see worker.py).
            os.set_blocking(parent.fileno(), True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(TimeoutError, EOFError, OSError):
            await asyncio.wait_for(self.broadcast({"op": "exit"}), 10)
        assert self._loop is not None
        for conn in self._conns:
            self._loop.remove_reader(conn.fileno())
            conn.close()
        for proc in self._procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()  # our own child, by handle
                proc.join(5)

    def _on_reply(self, conn: Connection) -> None:
        try:
            reply: dict[str, Any] = conn.recv()
        except (EOFError, OSError):
            assert self._loop is not None
            self._loop.remove_reader(conn.fileno())
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(EOFError("a load-generator worker died"))
            return
        fut = self._pending.pop(reply.pop("id"))
        if not fut.done():
            fut.set_result(reply)

    async def call(self, index: int, cmd: dict[str, Any]) -> dict[str, Any]:
        """Send ``cmd`` to worker ``index`` and wait for its reply."""
        assert self._loop is not None
        cid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self._pending[cid] = fut
        self._conns[index].send({**cmd, "id": cid})
        reply = await fut
        if "error" in reply:
            raise RuntimeError(f"worker {index}: {reply['error']}")
        return reply

    async def broadcast(self, cmd: dict[str, Any]) -> list[dict[str, Any]]:
        """Send ``cmd`` to every worker; return the replies in worker order."""
        return list(await asyncio.gather(*(self.call(i, cmd) for i in range(self.n))))

    async def connect(
        self, transport: str, host: str, port: int, path: str, count: int
    ) -> ConnectResult:
        """Open ``count`` subscribers spread evenly over the workers; time the whole batch."""
        shares = [count // self.n + (1 if i < count % self.n else 0) for i in range(self.n)]
        t0 = time.perf_counter()
        replies = await asyncio.gather(
            *(
                self.call(
                    i,
                    {
                        "op": "connect",
                        "transport": transport,
                        "host": host,
                        "port": port,
                        "path": path,
                        "count": share,
                        "concurrency": CONNECT_CONCURRENCY,
                    },
                )
                for i, share in enumerate(shares)
                if share
            )
        )
        elapsed = time.perf_counter() - t0
        errors: dict[str, int] = {}
        for r in replies:
            for k, v in r["errors"].items():
                errors[k] = errors.get(k, 0) + v
        return ConnectResult(
            ready=sum(r["ready"] for r in replies),
            failed=sum(r["failed"] for r in replies),
            elapsed=elapsed,
            errors=errors,
            slowest=max(r["slowest"] for r in replies),
        )

    async def stats(self) -> Stats:
        """Return counters summed (min/max: extremes) over all workers."""
        replies = await self.broadcast({"op": "stats"})
        s = Stats()
        with_subs = [r for r in replies if r["open"]]
        for r in replies:
            s.subs += r["subs"]
            s.open += r["open"]
            s.synced += r["synced"]
            s.total += r["total"]
            s.cpu += r["cpu"]
            s.http_errors += r["http_errors"]
            s.gaps += r["gaps"]
            s.reads += r["reads"]
            s.repeats += r["repeats"]
            s.skips += r["skips"]
            s.last_rx_ns = max(s.last_rx_ns, r["last_rx_ns"])
            for k, v in r["errors"].items():
                s.errors[k] = s.errors.get(k, 0) + v
        s.min = min((r["min"] for r in with_subs), default=0)
        s.max = max((r["max"] for r in with_subs), default=0)
        return s

    async def total(self) -> tuple[int, int, int]:
        """Return (deliveries since reset, newest delivery ns, slowest subscriber's count)."""
        replies = await self.broadcast({"op": "total"})
        mins = [r["min"] for r in replies if r["min"] is not None]
        return (
            sum(r["total"] for r in replies),
            max(r["last_rx_ns"] for r in replies),
            min(mins, default=0),
        )

    async def reset(self, record_latency: bool = False, verify: bool = False) -> None:
        """Zero every counter; turn per-message latency recording and verifying on or off."""
        await self.broadcast({"op": "reset", "record": record_latency, "verify": verify})

    async def latencies(self) -> array[int]:
        """Return all recorded latencies (ns) from every worker."""
        out: array[int] = array("q")
        for r in await self.broadcast({"op": "latencies"}):
            out.frombytes(r["lat_ns"])
        return out

    async def ping_all(self) -> int:
        """Make every WebSocket subscriber send one ping frame; return how many did."""
        return sum(r["sent"] for r in await self.broadcast({"op": "ping"}))

    async def close_all(self) -> None:
        """Close every subscriber in every worker."""
        await self.broadcast({"op": "close"})
