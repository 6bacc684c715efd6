"""The longest wait for the server's event loop, seen from a client: tiny requests, timed.

While a run publishes, a probe on a connection of its own sends ``GET /health`` every
``interval_s`` and times each answer. The server answers /health at once, on the loop,
so a round trip is (almost) the time the request waited for the loop: the longest one
bounds every stall of the run (a big commit group, a WAL checkpoint, a flush to many
subscribers), unlike the server's own lag gauge, which samples only every 0.5 s.

The probe runs in a process of its own (``python -m bench.stall_probe HOST PORT``, until
its stdin closes), so that the publisher's busy loop does not delay its reads; on this
shared machine a round trip still includes any wait for a CPU (the run queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

__all__ = ["StallProbe", "StallProbeProcess"]

#: At most this many round trips are kept (a run is seconds long; this is minutes).
MAX_SAMPLES = 100_000
#: The probe process stops by itself after this long, whatever happens to its parent.
MAX_SECONDS = 600.0


class StallProbeProcess:
    """The probe in a process of its own: :meth:`start`, then :meth:`stop` for the summary."""

    def __init__(self, host: str, port: int, interval_s: float = 0.005) -> None:
        self.argv = [sys.executable, "-m", "bench.stall_probe", host, str(port), str(interval_s)]
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert self._proc.stdout is not None
        await asyncio.wait_for(self._proc.stdout.readline(), 10)  # connected

    async def stop(self) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None
        assert proc.stdin is not None
        proc.stdin.close()
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        summary: dict[str, Any] = json.loads(out)
        return summary


class StallProbe:
    """Start with :meth:`start`, stop with :meth:`stop`, read :meth:`summary`."""

    def __init__(self, host: str, port: int, interval_s: float = 0.005) -> None:
        self.host = host
        self.port = port
        self.interval_s = interval_s
        self.samples: list[float] = []  # seconds
        self.errors: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def start(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self._task = asyncio.create_task(self._run(reader, writer))

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = f"GET /health HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode()
        try:
            while not self._stop.is_set() and len(self.samples) < MAX_SAMPLES:
                t0 = time.perf_counter()
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await asyncio.wait_for(reader.readexactly(length), 30)
                self.samples.append(time.perf_counter() - t0)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.interval_s)
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            writer.close()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    def summary(self) -> dict[str, Any]:
        """Round trips in ms: count, p50, p99, p99.9 and max."""
        values = sorted(self.samples)
        if not values:
            return {"samples": 0, "errors": self.errors}

        def at(q: float) -> float:
            return round(values[min(len(values) - 1, int(q * len(values)))] * 1e3, 2)

        return {
            "samples": len(values),
            "interval_ms": self.interval_s * 1e3,
            "p50_ms": at(0.50),
            "p99_ms": at(0.99),
            "p999_ms": at(0.999),
            "max_ms": round(values[-1] * 1e3, 2),
            "errors": self.errors,
        }


async def _main(host: str, port: int, interval_s: float) -> None:
    probe = StallProbe(host, port, interval_s)
    await probe.start()
    print("connected", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(reader.read(), MAX_SECONDS)  # until the parent closes stdin
    await probe.stop()
    print(json.dumps(probe.summary()), flush=True)


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
