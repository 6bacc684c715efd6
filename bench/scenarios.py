"""The measured scenarios: fan-out throughput, short bursts, latency at a fixed rate, idle
connections.

Every scenario starts a fresh server, opens its subscribers through the load generator, proves
they are all subscribed with "sync" probes (uncounted messages published until every subscriber
has seen one), then measures. All loops are bounded by a message count and/or a deadline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.affinity import loadgen_cpus, pin_self
from bench.loadgen import LoadGen
from bench.procstat import (
    cpu_seconds,
    open_fds,
    rss_bytes,
    runqueue_wait_seconds,
    system_cpu,
    tcp_counters,
)
from bench.progress import Progress
from bench.publishers import HttpPublisher, Publisher, WsPublisher, unacked
from bench.targets import HOST, TARGETS, ServerProcess, Target
from bench.wire import make_message, make_sync

#: Give up waiting for in-flight deliveries after this long without progress.
DRAIN_STALL_S = 10.0
#: Give up proving readiness with sync probes after this long.
SYNC_TIMEOUT_S = 30.0
#: How often the coordinator polls the workers' delivery totals.
POLL_INTERVAL_S = 0.02


@dataclass
class RunSpec:
    """What to run. Fields that do not apply to a scenario are ignored by it."""

    scenario: str  # "fanout" | "burst" | "latency" | "conns"
    target: str
    transport: str = "ws"
    publisher: str = "ws"
    subscribers: int = 1000
    duration: float = 8.0
    max_messages: int = 200_000
    rate: float = 10.0
    connections: int = 10_000
    max_connections: int = 19_000
    workers: int = 2
    window: int = 0  # fan-out: fixed publisher window in messages; 0 = adaptive (window_for)
    http_connections: int = 8  # HTTP publisher: keep-alive connections
    #: pushwire (and the embedded broker of cluster runs): history "memory" or "sqlite".
    history: str = "memory"
    burst: int = 30  # burst: publications per burst, written at once
    bursts: int = 10  # burst: how many, each delivered to everyone before the next
    log_dir: str = "bench/.logs"

    @property
    def label(self) -> str:
        """Short name of the configuration, e.g. ``pushwire/ws (http pub)``."""
        if self.target == "pushwire":
            base = f"pushwire/{self.transport}"
            if self.history == "sqlite":
                base += " sqlite"
            return base if self.scenario == "conns" else f"{base} ({self.publisher} pub)"
        return self.target


@dataclass
class RunResult:
    """One run: its spec, measured figures and whatever went wrong."""

    spec: RunSpec
    metrics: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    wall_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Plain-data form for bench-results.json."""
        d = asdict(self)
        d["label"] = self.spec.label
        return d


#: Upper bound of the publisher window, in messages: well inside pushwire's default history
#: (1,000 publications per channel), so a lagging long-poll subscriber can always catch up.
MAX_WINDOW = 500
#: Lower bound: a publisher pipelines at least this many messages, whatever the rate. Without
#: it a slow target gets a window of 1-2 messages, which starves transports that batch per
#: round trip (a long-poll answer carries everything since the cursor).
MIN_WINDOW = 10


def window_for(msgs_per_s: float) -> int:
    """Messages a publisher may run ahead of the slowest subscriber.

    About 1 s of work at the rate measured so far: far more than one poll interval, so the
    server never idles waiting for the publisher, yet the backlog left to drain when publishing
    stops (and the memory it holds in the server) stays small for slow and fast targets alike.
    """
    return int(max(MIN_WINDOW, min(MAX_WINDOW, msgs_per_s * 1.0)))


@dataclass
class _Snap:
    """CPU counters of everyone involved, at one instant."""

    t: float
    server: float
    wait: float
    machine: tuple[float, float, float]
    own: float
    loadgen: float


async def _snap(lg: LoadGen, pid: int) -> _Snap:
    loadgen = (await lg.stats()).cpu
    return _Snap(
        time.monotonic(),
        cpu_seconds(pid),
        runqueue_wait_seconds(pid),
        system_cpu(),
        time.process_time(),
        loadgen,
    )


def _utilization(a: _Snap, b: _Snap) -> dict[str, float]:
    """CPU-seconds per wall-second of server, load generator, publisher and everyone else.

    ``foreign_cpu`` is what other processes on the (shared) machine used meanwhile: busy time
    minus softirq (loopback TCP work, charged to nobody) minus our own processes. A run with
    a high figure was disturbed and its throughput understates the target.
    """
    wall = max(b.t - a.t, 1e-9)
    total = max(b.machine[2] - a.machine[2], 1e-9)
    ncpu = total / wall
    busy = (b.machine[0] - a.machine[0]) / total
    softirq = (b.machine[1] - a.machine[1]) / total
    server = (b.server - a.server) / wall
    loadgen = (b.loadgen - a.loadgen) / wall
    own = (b.own - a.own) / wall
    foreign = (busy - softirq) * ncpu - server - loadgen - own
    return {
        "server_cpu_util": round(server, 3),
        "server_runq_wait": round((b.wait - a.wait) / wall, 3),
        "loadgen_cpu_util": round(loadgen, 3),
        "publisher_cpu_util": round(own, 3),
        "machine_busy": round(busy, 3),
        "machine_softirq": round(softirq, 3),
        "foreign_cpu": round(max(foreign, 0.0), 3),
    }


async def _open_publisher(spec: RunSpec, target: Target, port: int) -> Publisher:
    if spec.publisher not in target.publishers:
        raise ValueError(f"{target.name} cannot be published to over {spec.publisher}")
    if spec.publisher == "http":
        http = HttpPublisher(spec.http_connections)
        await http.connect(HOST, port)
        return http
    ws = WsPublisher(target.pub_style)
    await ws.connect(HOST, port, target.pub_path)
    return ws


async def _sync(lg: LoadGen, pub: Publisher, expected: int, progress: Progress) -> int:
    """Publish sync probes until ``expected`` subscribers saw one; return how many did."""
    deadline = time.monotonic() + SYNC_TIMEOUT_S
    n = 0
    synced = 0
    while time.monotonic() < deadline:
        pub.publish(make_sync(n))
        n += 1
        await asyncio.sleep(0.25)
        st = await lg.stats()
        synced = st.synced
        progress.update(f"sync {synced}/{expected}")
        if synced >= expected:
            break
    # Let the remaining probes arrive before counters are reset (they are never counted, but
    # a long-poll subscriber must have re-polled with its new cursor).
    await asyncio.sleep(0.3)
    return synced


async def _drain(lg: LoadGen, pub: Publisher, expected: int, progress: Progress) -> tuple[int, int]:
    """Wait until ``expected`` deliveries arrived or progress stalled; return (total, last_rx)."""
    last_change = time.monotonic()
    total, last_rx, _ = await lg.total()
    prev = -1
    while total < expected or unacked(pub) > 0:
        if total != prev:
            prev = total
            last_change = time.monotonic()
        elif time.monotonic() - last_change > DRAIN_STALL_S:
            break
        progress.update(f"drain {total:,}/{expected:,}")
        await asyncio.sleep(POLL_INTERVAL_S)
        total, last_rx, _ = await lg.total()
    return total, last_rx


async def _with_subscribers(
    spec: RunSpec,
    body: Callable[[ServerProcess, LoadGen, RunResult, Progress], Awaitable[None]],
) -> RunResult:
    """Start server and load generator, open the subscribers, run ``body``, clean up."""
    result = RunResult(spec)
    target = TARGETS[spec.target]
    progress = Progress(f"[{spec.scenario} {spec.label} x{spec.subscribers}]")
    t0 = time.monotonic()
    data_dir = ""
    if spec.history == "sqlite" and target.name == "pushwire":
        data_dir = tempfile.mkdtemp(prefix="pushwire-bench-")
        target = dataclasses.replace(target, data_dir=data_dir)
    try:
        with ServerProcess(target, Path(spec.log_dir)) as server:
            async with LoadGen(spec.workers) as lg:
                try:
                    await body(server, lg, result, progress)
                finally:
                    await lg.close_all()
                if not server.alive():
                    result.errors.append(f"server died: {server.log_tail(500)}")
    except Exception as exc:  # a failed run is a result too; the matrix goes on
        result.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        if data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
    result.wall_s = time.monotonic() - t0
    progress.done()
    return result


async def _subscribe_and_sync(
    spec: RunSpec, server: ServerProcess, lg: LoadGen, result: RunResult, progress: Progress
) -> Publisher:
    target = TARGETS[spec.target]
    progress.update(f"connecting {spec.subscribers:,} subscribers", force=True)
    conn = await lg.connect(
        spec.transport, HOST, server.port, target.sub_path(spec.transport), spec.subscribers
    )
    result.metrics["connect_s"] = round(conn.elapsed, 3)
    if conn.failed:
        result.errors.append(f"{conn.failed} subscribers failed to connect: {conn.errors}")
    pub = await _open_publisher(spec, target, server.port)
    synced = await _sync(lg, pub, conn.ready, progress)
    result.metrics["subscribers"] = synced
    if synced < conn.ready:
        result.errors.append(f"only {synced}/{conn.ready} subscribers received the sync probe")
    return pub


async def publish_back_to_back(
    spec: RunSpec, lg: LoadGen, pub: Publisher, subs: int, progress: Progress
) -> tuple[int, int]:
    """Publish measured messages for ``spec.duration`` s (or ``spec.max_messages``).

    Never more than a window of messages ahead of the slowest subscriber nor unacknowledged
    (``spec.window``, or adaptive: see ``window_for``). Returns (messages sent, last window).
    """
    # Until the rate is known: ~50k deliveries ahead.
    window = spec.window or window_for(50_000 / subs)
    t_start_ns = time.time_ns()
    t_end = time.monotonic() + spec.duration
    total, slowest, seq = 0, 0, 0
    next_poll = 0.0
    while seq < spec.max_messages and time.monotonic() < t_end:
        now = time.monotonic()
        if now >= next_poll:
            total, _, slowest = await lg.total()
            next_poll = now + POLL_INTERVAL_S
            rate = total / max((time.time_ns() - t_start_ns) / 1e9, 1e-9)
            if not spec.window and now > t_end - spec.duration + 0.5:
                window = window_for(rate / subs)
            progress.update(f"sent {seq:,}  delivered {total:,}  {rate / 1e3:,.0f}k/s")
        room = min(window - (seq - slowest), window - unacked(pub))
        if room <= 0 or pub.paused:
            await asyncio.sleep(0.001)
            continue
        batch = min(room, 64, spec.max_messages - seq)
        pub.publish_batch([make_message(seq + i) for i in range(batch)])
        seq += batch
        await asyncio.sleep(0)
    return seq, window


async def run_fanout(spec: RunSpec) -> RunResult:
    """Deliveries/s and server CPU per 1M deliveries while publishing back to back."""

    async def body(server: ServerProcess, lg: LoadGen, res: RunResult, pr: Progress) -> None:
        pub = await _subscribe_and_sync(spec, server, lg, res, pr)
        subs = res.metrics["subscribers"]
        if not subs:
            raise RuntimeError("no subscriber is receiving")
        await lg.reset()
        snap0 = await _snap(lg, server.pid)
        t_start_ns = time.time_ns()
        seq, window = await publish_back_to_back(spec, lg, pub, subs, pr)
        expected = seq * subs
        total, last_rx = await _drain(lg, pub, expected, pr)
        snap1 = await _snap(lg, server.pid)
        st = await lg.stats()
        wall = max((last_rx - t_start_ns) / 1e9, 1e-9)
        await pub.close()
        res.metrics.update(
            messages=seq,
            expected=expected,
            delivered=total,
            lost=expected - total,
            min_per_sub=st.min,
            max_per_sub=st.max,
            messages_per_read=round(total / st.reads, 2) if st.reads else None,
            window=window,
            seconds=round(wall, 3),
            deliveries_per_s=round(total / wall),
            server_cpu_s=round(snap1.server - snap0.server, 3),
            cpu_s_per_1m=round((snap1.server - snap0.server) / total * 1e6, 3) if total else None,
            **_utilization(snap0, snap1),
            publish_errors=pub.errors,
            publish_failed=pub.failed,
            server_rss_mb=round(rss_bytes(server.pid) / 2**20, 1),
        )
        if st.http_errors:
            res.errors.append(f"{st.http_errors} long-poll error answers: {st.errors}")
        if st.gaps:
            res.errors.append(f"{st.gaps} long-poll answers reported history gaps")
        if pub.failed:
            res.errors.append(f"{pub.failed} publish errors: {pub.errors}")
        if expected != total:
            res.errors.append(f"lost {expected - total:,} deliveries; subscribers: {st.errors}")

    return await _with_subscribers(spec, body)


async def run_burst(spec: RunSpec) -> RunResult:
    """Server CPU per 1M deliveries of short bursts: ``burst`` publications in one write.

    ``bursts`` times, each delivered to every subscriber before the next is sent; the CPU
    of the whole series (idle gaps included, which cost every target alike) over its
    deliveries. What a chat room or a live score sees: a few messages at once to many,
    not a sustained stream.
    """

    async def body(server: ServerProcess, lg: LoadGen, res: RunResult, pr: Progress) -> None:
        pub = await _subscribe_and_sync(spec, server, lg, res, pr)
        subs = res.metrics["subscribers"]
        if not subs:
            raise RuntimeError("no subscriber is receiving")
        await lg.reset()
        snap0 = await _snap(lg, server.pid)
        seq, total, busy_ns = 0, 0, 0
        for n in range(spec.bursts):
            t_ns = time.time_ns()
            pub.publish_batch([make_message(seq + i) for i in range(spec.burst)])
            seq += spec.burst
            total, last_rx = await _drain(lg, pub, seq * subs, pr)
            busy_ns += max(last_rx - t_ns, 0)
            pr.update(f"burst {n + 1}/{spec.bursts}  delivered {total:,}")
            if total < seq * subs:
                break  # the drain stalled: counted as lost below
        snap1 = await _snap(lg, server.pid)
        await pub.close()
        expected = seq * subs
        cpu = snap1.server - snap0.server
        res.metrics.update(
            messages=seq,
            burst=spec.burst,
            bursts=spec.bursts,
            expected=expected,
            delivered=total,
            lost=expected - total,
            burst_ms=round(busy_ns / max(spec.bursts, 1) / 1e6, 1),
            deliveries_per_s=round(total / max(busy_ns / 1e9, 1e-9)),
            server_cpu_s=round(cpu, 3),
            cpu_s_per_1m=round(cpu / total * 1e6, 3) if total else None,
            **_utilization(snap0, snap1),
            publish_errors=pub.errors,
            server_rss_mb=round(rss_bytes(server.pid) / 2**20, 1),
        )
        if pub.failed:
            res.errors.append(f"{pub.failed} publish errors: {pub.errors}")
        if expected != total:
            res.errors.append(f"lost {expected - total:,} deliveries")

    return await _with_subscribers(spec, body)


def percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return 0
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


async def run_latency(spec: RunSpec) -> RunResult:
    """Publish-to-receive latency at a fixed, low publish rate (every delivery is timed)."""

    async def body(server: ServerProcess, lg: LoadGen, res: RunResult, pr: Progress) -> None:
        pub = await _subscribe_and_sync(spec, server, lg, res, pr)
        subs = res.metrics["subscribers"]
        if not subs:
            raise RuntimeError("no subscriber is receiving")
        await lg.reset(record_latency=True)
        n = max(1, int(spec.duration * spec.rate))
        interval = 1.0 / spec.rate
        snap0 = await _snap(lg, server.pid)
        t0 = time.monotonic()
        for seq in range(n):
            delay = t0 + seq * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            pub.publish(make_message(seq))
            if seq % 5 == 0:
                total, _, _ = await lg.total()
                pr.update(f"sent {seq + 1}/{n}  delivered {total:,}")
        expected = n * subs
        total, _ = await _drain(lg, pub, expected, pr)
        snap1 = await _snap(lg, server.pid)
        lat = sorted((await lg.latencies()).tolist())
        await pub.close()
        res.metrics.update(
            messages=n,
            expected=expected,
            delivered=total,
            lost=expected - total,
            rate=spec.rate,
            samples=len(lat),
            p50_ms=round(percentile(lat, 50) / 1e6, 3),
            p90_ms=round(percentile(lat, 90) / 1e6, 3),
            p99_ms=round(percentile(lat, 99) / 1e6, 3),
            max_ms=round((lat[-1] if lat else 0) / 1e6, 3),
            server_cpu_s=round(snap1.server - snap0.server, 3),
            **_utilization(snap0, snap1),
            publish_errors=pub.errors,
        )
        if expected != total:
            res.errors.append(f"lost {expected - total:,} deliveries")

    return await _with_subscribers(spec, body)


async def run_conns(spec: RunSpec) -> RunResult:
    """Accept time and RSS per idle connection at ``connections``; most connections held."""
    spec.subscribers = spec.connections
    target = TARGETS[spec.target]

    async def body(server: ServerProcess, lg: LoadGen, res: RunResult, pr: Progress) -> None:
        path = target.sub_path(spec.transport)
        await asyncio.sleep(0.5)
        base = rss_bytes(server.pid)
        pr.update(f"connecting {spec.connections:,}", force=True)
        tcp0 = tcp_counters()
        snap0 = await _snap(lg, server.pid)
        first = await lg.connect(spec.transport, HOST, server.port, path, spec.connections)
        snap1 = await _snap(lg, server.pid)
        tcp1 = tcp_counters()
        await asyncio.sleep(2.0)  # let lazy per-connection setup finish before sampling RSS
        rss = rss_bytes(server.pid)
        res.metrics.update(
            connections=first.ready,
            accept_s=round(first.elapsed, 3),
            accept_per_s=round(first.ready / first.elapsed) if first.elapsed else None,
            slowest_connect_s=round(first.slowest, 3),
            accept_server_cpu_s=round(snap1.server - snap0.server, 3),
            accept_util=_utilization(snap0, snap1),
            tcp_during_accept={k: tcp1[k] - tcp0.get(k, 0) for k in tcp1},
            rss_base_mb=round(base / 2**20, 1),
            rss_mb=round(rss / 2**20, 1),
            rss_per_conn_kib=round((rss - base) / max(first.ready, 1) / 1024, 2),
        )
        if spec.transport == "ws":
            # Idle need not mean silent: heartbeats make every client send frames. A server
            # may allocate per-connection state on a client's first frame (pushwire makes its
            # frame parser then), so RSS is measured again once each client has sent one.
            await lg.ping_all()
            await asyncio.sleep(2.0)
            res.metrics["rss_after_ping_kib"] = round(
                (rss_bytes(server.pid) - base) / max(first.ready, 1) / 1024, 2
            )
        if first.failed:
            res.errors.append(f"{first.failed} of {spec.connections} failed: {first.errors}")
        extra = spec.max_connections - spec.connections
        attempted = spec.connections
        if extra > 0:
            pr.update(f"connecting {extra:,} more", force=True)
            more = await lg.connect(spec.transport, HOST, server.port, path, extra)
            attempted += extra
            if more.failed:
                res.errors.append(f"{more.failed} of the extra {extra} failed: {more.errors}")
        st = await lg.stats()
        pub = await _open_publisher(spec, target, server.port)
        held = await _sync(lg, pub, st.open, pr)
        await pub.close()
        res.metrics.update(
            attempted=attempted,
            open_after=st.open,
            held=held,
            server_fds=open_fds(server.pid),
            rss_at_max_mb=round(rss_bytes(server.pid) / 2**20, 1),
        )

    return await _with_subscribers(spec, body)


SCENARIOS: dict[str, Callable[[RunSpec], Coroutine[Any, Any, RunResult]]] = {
    "fanout": run_fanout,
    "burst": run_burst,
    "latency": run_latency,
    "conns": run_conns,
}


def run(spec: RunSpec) -> RunResult:
    """Run one scenario in a fresh event loop (uvloop when available)."""
    pin_self(loadgen_cpus())  # workers started from here inherit it
    coro = SCENARIOS[spec.scenario](spec)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
