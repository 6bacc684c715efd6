"""Where a WebSocket accept's time goes: pushwire's own Python, and the floor beneath it.

``python -m bench accept-probe`` measures the figures behind the accept analysis in
docs/performance.md:

* **micro**: pushwire's handshake (validation by ``websockets`` plus the 101) and the library's
  ``process_request`` alone, best of three ``timeit`` runs;
* **in-process**: pushwire's request path for one upgrade (HTTP parsing, the handshake, the
  session, the URL subscription and the first reply) driven through ``HttpConnection`` with a
  stand-in transport and no sockets, so what is timed is Python alone (best of several rounds);
* **floor**: a bare uvloop server that answers each upgrade with a minimal 101 (it computes the
  accept key and nothing else) and ``pushwire serve``, each accepting the same connections from
  the benchmark's load generator: wall time and server CPU per accept (from /proc), user and
  system time apart.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.affinity import loadgen_cpus, pin_self
from bench.loadgen import LoadGen
from bench.procstat import cpu_seconds
from bench.targets import BENCH_DIR, HOST, TARGETS, ServerProcess, Target

__all__ = ["probe", "serve_floor"]

_UPGRADE = (
    b"GET /ws?channel=bench HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# -- in-process -------------------------------------------------------------------------------
class _StandInTransport:
    """Takes writes and answers the questions ``HttpConnection`` asks; no socket behind it."""

    __slots__ = ("closing", "written")

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _in_process(connections: int, rounds: int) -> float:
    """Best per-accept time (µs) of ``rounds`` rounds of ``connections`` upgrades."""
    from pushwire.server.app import Server
    from pushwire.server.config import Config
    from pushwire.server.http import HttpConnection

    server = Server(Config(history="memory", api_key="probe"))
    await server.node.start()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)  # as `pushwire serve` sets it

    def accept(n: int) -> list[HttpConnection]:
        opened = []
        for _ in range(n):
            connection = HttpConnection(server, 65536)
            connection.connection_made(_StandInTransport())  # type: ignore[arg-type]
            connection.data_received(_UPGRADE)
            opened.append(connection)
        return opened

    first = accept(1)  # the first subscriber opens the channel through a task
    await asyncio.sleep(0.05)
    if first[0].upgraded is None:
        raise RuntimeError("the in-process upgrade did not switch the connection to WebSocket")
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        opened = accept(connections)
        best = min(best, time.perf_counter() - started)
        for connection in opened:
            connection.connection_lost(None)
        del opened
        gc.collect()
    await server.node.close()
    return best / connections * 1e6


def _handshake_micro(repeat: int = 20_000) -> dict[str, float]:
    """Best-of-three µs for pushwire's whole handshake and for the library's validation in it."""
    import timeit

    from websockets.http11 import Request
    from websockets.server import ServerProtocol

    from pushwire.transports.websocket import _parsed_headers, handshake

    headers = [
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ]
    validator = ServerProtocol()
    request = Request("/ws?channel=bench", _parsed_headers(headers))

    def best(call: Any) -> float:
        return round(min(timeit.repeat(call, number=repeat, repeat=3)) / repeat * 1e6, 2)

    return {
        "handshake_us": best(lambda: handshake("/ws?channel=bench", headers)),
        "library_process_request_us": best(lambda: validator.process_request(request)),
    }


# -- the floor server -------------------------------------------------------------------------
class _FloorProtocol(asyncio.Protocol):
    """Answers an upgrade with a minimal 101 and ``/health`` with 200; parses nothing else."""

    __slots__ = ("transport",)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        start = data.find(b"Sec-WebSocket-Key: ")
        if start < 0:
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            self.transport.close()
            return
        key = data[start + 19 : data.index(b"\r\n", start)]
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: %s\r\n\r\n" % accept
        )


def serve_floor(port: int) -> None:
    """Run the floor server on ``port`` until SIGTERM (started as a subprocess by the probe)."""
    import signal

    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_FloorProtocol, HOST, port, backlog=4096)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        server.close()

    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    uvloop.run(main())


@dataclass(frozen=True)
class _FloorTarget(Target):
    def command(self, port: int) -> list[str]:
        return [sys.executable, "-m", "bench.accept_probe", "--serve-floor", str(port)]

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(BENCH_DIR.parent)}


_FLOOR = _FloorTarget("uvloop-floor", ("ws",), (), "/", "raw")


def _user_system(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


async def _accept(target: Target, connections: int, workers: int) -> dict[str, float]:
    with ServerProcess(target, BENCH_DIR / ".logs") as server:
        await asyncio.sleep(0.5)
        async with LoadGen(workers) as lg:
            user0, system0 = _user_system(server.pid)
            cpu0 = cpu_seconds(server.pid)
            result = await lg.connect("ws", HOST, server.port, "/ws?channel=bench", connections)
            user1, system1 = _user_system(server.pid)
            cpu1 = cpu_seconds(server.pid)
            await lg.close_all()
    if result.failed:
        raise RuntimeError(f"{target.name}: {result.failed} connections failed: {result.errors}")
    per = 1e6 / connections
    return {
        "accept_s": round(result.elapsed, 3),
        "server_cpu_us_per_accept": round((cpu1 - cpu0) * per, 1),
        "user_us_per_accept": round((user1 - user0) * per, 1),
        "system_us_per_accept": round((system1 - system0) * per, 1),
    }


async def _probe(connections: int, workers: int, rounds: int) -> dict[str, Any]:
    pin_self(loadgen_cpus())
    out: dict[str, Any] = {"connections": connections, "rounds": rounds}
    out["micro"] = _handshake_micro()
    out["in_process_python_us_per_accept"] = round(await _in_process(connections, rounds), 1)
    for name, target in (("floor", _FLOOR), ("pushwire", TARGETS["pushwire"])):
        runs = [await _accept(target, connections, workers) for _ in range(rounds)]
        out[name] = sorted(runs, key=lambda run: run["server_cpu_us_per_accept"])
    return out


def probe(connections: int = 10_000, workers: int = 2, rounds: int = 3) -> dict[str, Any]:
    """Run both measurements; each accept run is listed, cheapest server CPU first."""
    return asyncio.run(_probe(connections, workers, rounds))


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--serve-floor":
    serve_floor(int(sys.argv[2]))
