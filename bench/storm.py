"""``python -m bench storm``: kill -9 a server under 10,000 subscribers and count what comes back.

One ``pushwire serve`` with SQLite history (a temporary data directory) and N WebSocket
subscribers of one channel in load-generator processes (``bench.storm_clients``: the Python
client's back-off and resubscription). A backend publishes a steady stream through
``POST /api/publish``; only publications answered with an id count as sent. The server is
killed with SIGKILL mid-stream and started again on the same port and data directory after
``--down`` seconds, while the subscribers keep trying to come back and the publisher keeps
trying to publish.

The verdict is counted, not assumed: after the run the committed stream is read back through
``GET /api/history`` (the truth: a publication in flight at the kill may or may not be in
it), and every subscriber must hold every offset of it after where it started, once and in
order (an in-order digest of ``offset:seq`` compared with the one computed from history),
in the same epoch, with every acknowledged publication among them. Reported: the time from
the restart until every subscriber had its ``subscribed`` reply (back) and had the replay up
to the live position (caught up), the server's peak RSS before and during the storm, the
connection attempts, and every failed attempt by kind and by when it began (down and
starting: the port is closed, so "refused" is expected; after the new server answered
``/health``, any refusal or timeout is the server's), and the server's CPU share and
run-queue wait while publishing steadily and during the storm (the machine may be shared).

Every process is started here and ended here by its PID; every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.loadgen import LoadGen
from bench.procstat import process_cpu_seconds, runqueue_wait_seconds, tcp_counters
from bench.storm_clients import digest_step, storm_worker_main
from bench.targets import HOST, free_port, http_status
from bench.wire import API_KEY

__all__ = ["StormSpec", "run_storm"]

CHANNEL = "storm"
#: First connections in flight per worker while the subscribers are opened (the ramp).
RAMP_CONCURRENCY = 128


@dataclass
class StormSpec:
    """One storm run."""

    clients: int = 10_000
    rate: float = 20.0  # publications per second, through the HTTP API
    kill_after: float = 5.0  # seconds of steady publishing before the SIGKILL
    down: float = 2.0  # seconds between the kill and the restart
    tail: float = 3.0  # seconds of publishing after every subscriber is back
    workers: int = 2
    settle_timeout: float = 120.0  # the longest wait for every subscriber to come back
    ramp_timeout: float = 180.0


@dataclass
class _Server:
    """``pushwire serve`` on a fixed port and data directory; restartable, killable by PID."""

    port: int
    data_dir: Path
    log_path: Path
    history_size: int
    proc: subprocess.Popen[bytes] | None = None
    rss_peak: int = 0

    def spawn(self) -> float:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHWIRE_")}
        env["PUSHWIRE_API_KEY"] = API_KEY
        env["PUSHWIRE_CHANNELS"] = json.dumps([{"prefix": "", "history_size": self.history_size}])
        command = [
            sys.executable, "-m", "pushwire", "serve", "--host", HOST, "--port", str(self.port),
            "--data-dir", str(self.data_dir),
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        self.rss_peak = 0
        return time.time()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def wait_healthy(self, seconds: float) -> float:
        assert self.proc is not None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log_tail()}")
            if await asyncio.to_thread(http_status, self.port, "/health", 0.5) == 200:
                return time.time()
            await asyncio.sleep(0.02)
        raise RuntimeError(f"the server did not answer /health in {seconds} s: {self.log_tail()}")

    def status(self, key: str) -> int:
        """A ``kB`` line of /proc/PID/status, in bytes (0 once gone)."""
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        return 0

    async def sample(self, stop: asyncio.Event) -> None:
        """Sample VmRSS every 50 ms until ``stop``, keeping the peak of this process."""
        while not stop.is_set():
            self.rss_peak = max(self.rss_peak, self.status("VmRSS"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)

    def kill(self) -> None:
        """SIGKILL by PID: a crash, no goodbye to anyone."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


@dataclass
class _Publisher:
    """A backend publishing ``{"seq": N}`` at a steady rate; only answered ones count."""

    http: httpx.AsyncClient
    rate: float
    acked: list[tuple[str, int, int]] = field(default_factory=list)  # (epoch, offset, seq)
    unacked: list[tuple[int, str]] = field(default_factory=list)  # (seq, why)
    seq: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        interval = 1.0 / self.rate
        next_at = loop.time()
        while not stop.is_set():
            self.seq += 1
            body = {"channel": CHANNEL, "data": {"seq": self.seq}}
            try:
                answer = await self.http.post("/api/publish", json=body, timeout=2.0)
            except httpx.HTTPError as exc:
                self.unacked.append((self.seq, type(exc).__name__))
            else:
                if answer.status_code == 200:
                    epoch, _, offset = answer.json()["id"].rpartition("-")
                    self.acked.append((epoch, int(offset), self.seq))
                else:
                    self.unacked.append((self.seq, f"HTTP {answer.status_code}"))
            next_at = max(next_at + interval, loop.time() - interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(next_at - loop.time(), 0))

    @property
    def top(self) -> int:
        return self.acked[-1][1] if self.acked else 0


class _Usage:
    """The server's CPU and run-queue wait over a phase (the machine may be shared)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.t0 = time.monotonic()
        self.cpu0 = process_cpu_seconds(pid)
        self.wait0 = runqueue_wait_seconds(pid)

    def since(self) -> dict[str, float]:
        """CPU seconds, and the shares of the phase spent on CPU and waiting for one."""
        seconds = time.monotonic() - self.t0
        cpu = process_cpu_seconds(self.pid) - self.cpu0
        wait = runqueue_wait_seconds(self.pid) - self.wait0
        return {
            "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu, 2),
            "cpu_share": round(cpu / seconds, 2),
            "runqueue_wait_share": round(wait / seconds, 2),
        }


def _log(msg: str) -> None:
    print(f"storm: {msg}", file=sys.stderr, flush=True)


async def _progress(gen: LoadGen, top: int = -1) -> dict[str, int]:
    replies = await gen.broadcast({"op": "storm_progress", "top": top})
    out: dict[str, int] = {}
    for r in replies:
        for k, v in r.items():
            if k == "min_offset":
                out[k] = min(out.get(k, v), v)
            elif k != "cpu":
                out[k] = out.get(k, 0) + v
    return out


async def _wait_for(
    gen: LoadGen, what: str, done: Callable[[dict[str, int]], bool], seconds: float, top: int = -1
) -> tuple[bool, dict[str, int]]:
    """Poll the workers twice a second until ``done(progress)`` or ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    last = 0.0
    while True:
        p = await _progress(gen, top)
        if done(p):
            return True, p
        if time.monotonic() > deadline:
            _log(f"gave up waiting for {what} after {seconds:g} s: {p}")
            return False, p
        if time.monotonic() - last > 2:
            _log(f"{what}: {p}")
            last = time.monotonic()
        await asyncio.sleep(0.5)


async def _read_stream(http: httpx.AsyncClient, epoch: str) -> list[tuple[int, int]]:
    """The committed stream, (offset, seq) oldest first, paged through the history API."""
    out: list[tuple[int, int]] = []
    cursor = f"{epoch}-0"
    for _ in range(10_000):  # pages of 1,000: bounded
        answer = await http.get(
            "/api/history", params={"channel": CHANNEL, "since": cursor, "limit": 1000}
        )
        answer.raise_for_status()
        page = answer.json()
        if page.get("gap"):
            raise RuntimeError(f"history has a gap after {cursor}: history_size too small?")
        messages = page["messages"]
        if not messages:
            return out
        for m in messages:
            e, _, offset = m["id"].rpartition("-")
            if e != epoch:
                raise RuntimeError(f"history epoch {e} is not the stream's {epoch}")
            out.append((int(offset), int(m["data"]["seq"])))
        cursor = messages[-1]["id"]
    return out


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values = sorted(values)

    def pick(q: float) -> float:
        return round(values[min(int(q * len(values)), len(values) - 1)], 3)

    return {"p50": pick(0.5), "p99": pick(0.99), "max": round(values[-1], 3)}


async def _storm(spec: StormSpec, work: Path) -> dict[str, Any]:
    expected = int(spec.rate * (spec.kill_after + spec.down + spec.settle_timeout + spec.tail))
    server = _Server(
        port=free_port(),
        data_dir=work / "data",
        log_path=work / "server.log",
        history_size=max(1000, 2 * expected),
    )
    result: dict[str, Any] = {"spec": spec.__dict__.copy(), "port": server.port}
    server.spawn()
    sampling = asyncio.Event()
    samplers: list[asyncio.Task[None]] = []
    try:
        await server.wait_healthy(30)
        samplers.append(asyncio.create_task(server.sample(sampling)))
        base = f"http://{HOST}:{server.port}"
        limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
        async with (
            httpx.AsyncClient(base_url=base, headers={"X-API-Key": API_KEY}, limits=limits) as http,
            LoadGen(spec.workers, target=storm_worker_main) as gen,
        ):
            result.update(await _drive(spec, server, http, gen, samplers, sampling))
    finally:
        sampling.set()
        await asyncio.gather(*samplers, return_exceptions=True)
        server.stop()
    result["server_log_tail"] = server.log_tail(600) if result.get("errors") else ""
    return result


async def _drive(
    spec: StormSpec,
    server: _Server,
    http: httpx.AsyncClient,
    gen: LoadGen,
    samplers: list[asyncio.Task[None]],
    sampling: asyncio.Event,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    errors: list[str] = []
    shares = [spec.clients // gen.n + (i < spec.clients % gen.n) for i in range(gen.n)]
    t_ramp = time.monotonic()
    start = {"op": "storm_start", "host": HOST, "port": server.port, "channel": CHANNEL,
             "concurrency": RAMP_CONCURRENCY}  # fmt: skip
    await asyncio.gather(
        *(gen.call(i, {**start, "count": share}) for i, share in enumerate(shares))
    )
    ok, p = await _wait_for(
        gen, "subscribing", lambda p: p["subscribed"] >= spec.clients, spec.ramp_timeout
    )
    if not ok:
        return {"errors": [f"only {p['subscribed']} of {spec.clients} subscribed"]}
    out["ramp_seconds"] = round(time.monotonic() - t_ramp, 2)
    out["rss_before_storm_mib"] = round(server.status("VmRSS") / 2**20, 1)
    _log(f"{spec.clients} subscribed in {out['ramp_seconds']} s; publishing at {spec.rate}/s")

    publisher = _Publisher(http, spec.rate)
    stop_publishing = asyncio.Event()
    publishing = asyncio.create_task(publisher.run(stop_publishing))
    steady = _Usage(server.pid)
    await asyncio.sleep(spec.kill_after)
    out["server_steady"] = steady.since()

    out["rss_peak_first_process_mib"] = round(
        max(server.status("VmHWM"), server.rss_peak) / 2**20, 1
    )
    tcp_before = tcp_counters()
    first_pid = server.pid
    killed_at = time.time()
    server.kill()
    acked_before_kill = publisher.top
    _log(f"SIGKILLed pid {first_pid} at offset {acked_before_kill}; down for {spec.down} s")
    await asyncio.sleep(max(spec.down - (time.time() - killed_at), 0))

    restarted_at = server.spawn()
    healthy_at = await server.wait_healthy(30)
    storm = _Usage(server.pid)
    samplers.append(asyncio.create_task(server.sample(sampling)))
    _log(f"restarted as pid {server.pid}; /health after {healthy_at - restarted_at:.2f} s")

    ok, p = await _wait_for(
        gen,
        "coming back",
        lambda p: p["caught_up"] >= spec.clients,
        spec.settle_timeout,
    )
    all_back_wall = time.time()
    out["server_storm"] = storm.since()
    if not ok:
        errors.append(f"only {p['caught_up']} of {spec.clients} came back and caught up")
    tcp_after = tcp_counters()
    await asyncio.sleep(spec.tail)
    stop_publishing.set()
    await publishing
    top = publisher.top
    ok, p = await _wait_for(gen, "final delivery", lambda p: p["min_offset"] >= top, 30)
    if not ok:
        errors.append(f"after the tail, the slowest subscriber is at {p['min_offset']} of {top}")
    out["rss_peak_restarted_process_mib"] = round(
        max(server.status("VmHWM"), server.rss_peak) / 2**20, 1
    )
    out["rss_at_end_mib"] = round(server.status("VmRSS") / 2**20, 1)

    reports = await gen.broadcast({"op": "storm_report"})
    await gen.broadcast({"op": "storm_stop"})
    epochs = sorted({e for r in reports for e in r["epochs"]})
    epoch = publisher.acked[0][0] if publisher.acked else ""
    committed = await _read_stream(http, epoch)
    out.update(_verdict(spec, publisher, committed, reports, epochs, epoch, errors))

    back = [t - restarted_at for r in reports for t in r["back_at"] if t]
    caught = [t - restarted_at for r in reports for t in r["caught_up_at"] if t]
    out["restart_to_health_seconds"] = round(healthy_at - restarted_at, 3)
    out["restart_to_back_seconds"] = _percentiles(back)
    out["restart_to_caught_up_seconds"] = _percentiles(caught)
    out["restart_to_all_back_polled_seconds"] = round(all_back_wall - restarted_at, 2)
    out["kill_to_restart_seconds"] = round(restarted_at - killed_at, 3)
    out["attempts"] = sum(r["attempts"] for r in reports)
    out["drops"] = sum(r["drops"] for r in reports)
    bounds = (
        ("before the kill", killed_at),
        ("down", restarted_at),
        ("starting (before /health)", healthy_at),
        ("up (after /health)", float("inf")),
    )
    failures: dict[str, dict[str, int]] = {}
    for r in reports:
        for t, k in r["failure_log"]:
            phase = next(name for name, end in bounds if t < end)
            into = failures.setdefault(phase, {})
            kind = r["failure_kinds"][k]
            into[kind] = into.get(kind, 0) + 1
    out["failed_attempts"] = failures
    frames: dict[str, int] = {}
    for r in reports:
        for kind, n in r["frames"].items():
            frames[kind] = frames.get(kind, 0) + n
    out["unexpected_frames"] = frames
    out["tcp_counters_during_storm"] = {k: tcp_after[k] - tcp_before.get(k, 0) for k in tcp_after}
    out["loadgen_cpu_seconds"] = round(sum(r["cpu"] for r in reports), 1)
    out["failed_attempts_after_health"] = sum(failures.get(bounds[-1][0], {}).values())
    out["errors"] = errors
    return out


def _verdict(
    spec: StormSpec,
    publisher: _Publisher,
    committed: list[tuple[int, int]],
    reports: list[dict[str, Any]],
    epochs: list[str],
    epoch: str,
    errors: list[str],
) -> dict[str, Any]:
    """Count losses and duplicates of every subscriber against the committed stream."""
    offsets = [o for o, _ in committed]
    top = offsets[-1] if offsets else 0
    if offsets != list(range(1, top + 1)):
        errors.append("the committed stream's offsets are not 1..top")
    seq_at = dict(committed)
    missing_acks = [o for e, o, s in publisher.acked if e != epoch or seq_at.get(o) != s]
    if missing_acks:
        errors.append(f"{len(missing_acks)} acknowledged publications not in history")
    if epochs != [epoch]:
        errors.append(f"subscribers saw epochs {epochs}, the stream is {epoch}")
    acked_seqs = {s for _, _, s in publisher.acked}
    unacked_committed = sum(1 for _, s in committed if s not in acked_seqs)

    # Expected digest of the stream after each distinct starting offset.
    prefix = [0]
    for o, s in committed:
        prefix.append(digest_step(prefix[-1], o, s))
    lost = duplicates = wrong = 0
    for r in reports:
        lost += r["lost"]
        duplicates += r["duplicates"]
        for start, end, digest in zip(r["start_offsets"], r["offsets"], r["digests"], strict=True):
            if end < top:
                lost += top - end
            if start < 0 or start > top or digest != _digest_from(committed, start, end):
                wrong += 1
    gaps = sum(r["gaps"] for r in reports)
    not_recovered = sum(r["not_recovered"] for r in reports)
    epoch_changes = sum(r["epoch_changes"] for r in reports)
    for name, n in (("lost", lost), ("duplicated", duplicates), ("with a wrong stream", wrong),
                    ("gaps", gaps), ("not recovered", not_recovered),
                    ("epoch changes", epoch_changes)):  # fmt: skip
        if n:
            errors.append(f"{n} {name}")
    return {
        "committed_top": top,
        "acknowledged": len(publisher.acked),
        "unacknowledged": len(publisher.unacked),
        "unacknowledged_but_committed": unacked_committed,
        "acknowledged_missing_from_history": len(missing_acks),
        "lost": lost,
        "duplicated": duplicates,
        "subscribers_with_wrong_stream": wrong,
        "gaps": gaps,
        "not_recovered": not_recovered,
        "epoch_changes": epoch_changes,
        "deliveries_checked": sum(
            max(end - start, 0)
            for r in reports
            for start, end in zip(r["start_offsets"], r["offsets"], strict=True)
        ),
    }


_digest_cache: dict[tuple[int, int], int] = {}


def _digest_from(committed: list[tuple[int, int]], start: int, end: int) -> int:
    """The in-order digest of the committed publications with offsets in (start, end]."""
    key = (start, end)
    if key not in _digest_cache:
        d = 0
        for o, s in committed:
            if start < o <= end:
                d = digest_step(d, o, s)
        _digest_cache[key] = d
    return _digest_cache[key]


def run_storm(spec: StormSpec) -> dict[str, Any]:
    """Run one storm; returns the figures (``errors`` empty when every check passed)."""
    work = Path(tempfile.mkdtemp(prefix="pushwire-storm-"))
    try:
        out = asyncio.run(_storm(spec, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _digest_cache.clear()
    return out


def summary(out: dict[str, Any]) -> str:
    """A few lines for people: the figures docs/performance.md quotes."""
    b, c = out.get("restart_to_back_seconds", {}), out.get("restart_to_caught_up_seconds", {})
    return "\n".join(
        [
            f"clients {out['spec']['clients']}, committed offsets 1..{out.get('committed_top')}",
            f"restart -> /health {out.get('restart_to_health_seconds')} s; all back "
            f"(subscribed) {b.get('max')} s (p50 {b.get('p50')}); all caught up {c.get('max')} s",
            f"lost {out.get('lost')}, duplicated {out.get('duplicated')}, wrong streams "
            f"{out.get('subscribers_with_wrong_stream')}, gaps {out.get('gaps')}",
            f"peak RSS: {out.get('rss_peak_first_process_mib')} MiB before the kill, "
            f"{out.get('rss_peak_restarted_process_mib')} MiB restarted",
            f"server CPU share steady {out.get('server_steady', {}).get('cpu_share')}, storm "
            f"{out.get('server_storm', {}).get('cpu_share')} (run-queue wait "
            f"{out.get('server_storm', {}).get('runqueue_wait_share')})",
            f"attempts {out.get('attempts')}, failed after /health: "
            f"{out.get('failed_attempts_after_health')}, errors: {out.get('errors')}",
        ]
    )
