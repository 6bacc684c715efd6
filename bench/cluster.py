"""Several pushwire nodes on one broker: fan-out across nodes, and publications/s per history.

``cluster`` starts N ``pushwire serve`` processes (or one with ``--workers N``) on a shared
broker, spreads the subscribers evenly over them, publishes through the first node with the
fan-out scenario's publishers and loop (``bench.scenarios``), and reads CPU and memory of every
node and of the broker, and the broker's commands and bytes. ``publish-rate`` is the same run
with one node and one subscriber, where the embedded broker (memory or SQLite history) can be
compared with Redis. Broker keys carry a per-run prefix and are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.brokerstat import BrokerProbe, BrokerReading, NatsProbe, RedisProbe, difference
from bench.loadgen import LoadGen
from bench.procstat import (
    cpu_seconds,
    process_cpu_seconds,
    process_rss_bytes,
    process_tree,
    rss_bytes,
    runqueue_wait_seconds,
    system_cpu,
)
from bench.progress import Progress
from bench.publishers import Publisher
from bench.scenarios import (
    RunResult,
    RunSpec,
    _drain,
    _open_publisher,
    _Snap,
    _sync,
    _utilization,
    publish_back_to_back,
)
from bench.stall_probe import StallProbeProcess
from bench.targets import HOST, TARGETS, ServerProcess, Target

__all__ = ["BROKER_URLS", "ClusterSpec", "run_cluster"]

#: Where each broker is expected on this machine; Redis database 8 is the benchmarks'.
BROKER_URLS = {"redis": "redis://127.0.0.1:6379/8", "nats": "nats://127.0.0.1:4222"}


@dataclass
class ClusterSpec(RunSpec):
    """A cluster run. ``broker`` "memory" means one node with the embedded broker."""

    broker: str = "redis"
    broker_url: str = ""  # empty: BROKER_URLS[broker]
    nodes: int = 1
    serve_workers: int = 0  # > 0: one `pushwire serve --workers N` instead of separate nodes
    verify: bool = False  # check every delivery's stream offset (slower readers)

    @property
    def url(self) -> str:
        """The broker URL the nodes are given ("memory" for the embedded broker)."""
        return "memory" if self.broker == "memory" else self.broker_url or BROKER_URLS[self.broker]

    @property
    def label(self) -> str:
        """Short name of the configuration, e.g. ``redis x3 ws (ws pub)``."""
        if self.broker == "memory":
            where = f"embedded/{self.history}"
        elif self.serve_workers:
            where = f"{self.broker} --workers {self.serve_workers}"
        else:
            where = f"{self.broker} x{self.nodes}"
        return f"{where} {self.transport} ({self.publisher} pub)"


@dataclass(frozen=True)
class NodeTarget(Target):
    """``pushwire serve`` on a broker, with a per-run key prefix (or on its embedded broker)."""

    broker_url: str = "memory"
    prefix: str = "bench"
    serve_workers: int = 0

    def command(self, port: int) -> list[str]:
        argv = [sys.executable, "-m", "pushwire", "serve", "--host", HOST, "--port", str(port)]
        if self.broker_url != "memory":
            argv += ["--broker", self.broker_url]
        elif self.data_dir:
            argv += ["--data-dir", self.data_dir]
        else:
            argv.append("--memory")
        if self.serve_workers:
            argv += ["--workers", str(self.serve_workers)]
        return [*argv, "--no-demo"]

    def env(self) -> dict[str, str]:
        env = super().env()
        env["PUSHWIRE_BROKER_PREFIX"] = self.prefix
        return env


@dataclass
class _Nodes:
    """The node processes of one run, and every PID whose CPU and memory count as a node's."""

    servers: list[ServerProcess]

    def pids(self) -> list[int]:
        """Each node's process and its descendants (the workers of ``--workers``)."""
        return [p for server in self.servers for p in process_tree(server.pid)]

    def cpu(self) -> float:
        return sum(cpu_seconds(server.pid) for server in self.servers)

    def wait(self) -> float:
        return sum(runqueue_wait_seconds(server.pid) for server in self.servers)


async def _cluster_snap(lg: LoadGen, nodes: _Nodes) -> _Snap:
    loadgen = (await lg.stats()).cpu
    return _Snap(
        time.monotonic(), nodes.cpu(), nodes.wait(), system_cpu(), time.process_time(), loadgen
    )


def _per_process(nodes: _Nodes, cpu0: dict[int, float]) -> list[dict[str, Any]]:
    """CPU seconds since ``cpu0`` and RSS of every node process (workers separately)."""
    out = []
    for pid in nodes.pids():
        with contextlib.suppress(OSError):
            out.append(
                {
                    "pid": pid,
                    "cpu_s": round(process_cpu_seconds(pid) - cpu0.get(pid, 0.0), 3),
                    "rss_mb": round(process_rss_bytes(pid) / 2**20, 1),
                }
            )
    return out


def _node_target(spec: ClusterSpec, prefix: str, data_dir: str) -> NodeTarget:
    base = TARGETS["pushwire"]
    return NodeTarget(
        base.name,
        base.transports,
        base.publishers,
        base.pub_path,
        base.pub_style,
        broker_url=spec.url,
        prefix=prefix,
        serve_workers=spec.serve_workers,
        data_dir=data_dir,
    )


async def _connect_all(
    spec: ClusterSpec, lg: LoadGen, nodes: _Nodes, res: RunResult, pr: Progress
) -> int:
    """Open the subscribers, an equal share per node, one node after another; time each."""
    path = TARGETS["pushwire"].sub_path(spec.transport)
    n = len(nodes.servers)
    shares = [spec.subscribers // n + (1 if i < spec.subscribers % n else 0) for i in range(n)]
    per_node: list[dict[str, Any]] = []
    rss_before: list[int] = []
    ready = 0
    for server, share in zip(nodes.servers, shares, strict=True):
        pr.update(f"connecting {share:,} subscribers to :{server.port}", force=True)
        rss0 = rss_bytes(server.pid)
        rss_before.append(rss0)
        conn = await lg.connect(spec.transport, HOST, server.port, path, share)
        ready += conn.ready
        per_node.append(
            {
                "port": server.port,
                "subscribers": conn.ready,
                "connect_s": round(conn.elapsed, 3),
                "connects_per_s": round(conn.ready / conn.elapsed) if conn.elapsed else None,
                "rss_before_connect_mb": round(rss0 / 2**20, 1),
            }
        )
        if conn.failed:
            res.errors.append(f"{conn.failed} subscribers failed on :{server.port}: {conn.errors}")
    # Let lazy per-connection setup finish before sampling RSS (as the conns scenario does).
    await asyncio.sleep(2.0)
    for server, entry, rss0 in zip(nodes.servers, per_node, rss_before, strict=True):
        rss1 = rss_bytes(server.pid)
        entry["rss_after_connect_mb"] = round(rss1 / 2**20, 1)
        entry["rss_per_conn_kib"] = round((rss1 - rss0) / max(entry["subscribers"], 1) / 1024, 2)
    res.metrics["nodes"] = per_node
    return ready


def _broker_metrics(delta: dict[str, Any], messages: int, delivered: int) -> dict[str, Any]:
    """Per publication and per delivery: the broker's commands, bytes and CPU."""
    out: dict[str, Any] = {"broker": delta}
    if not messages:
        return out
    out.update(
        broker_operations_per_publication=round(delta["operations"] / messages, 2),
        broker_in_bytes_per_publication=round(delta["net_in_bytes"] / messages, 1),
        broker_out_bytes_per_publication=round(delta["net_out_bytes"] / messages, 1),
    )
    if delivered:
        out.update(
            broker_out_bytes_per_delivery=round(delta["net_out_bytes"] / delivered, 2),
            broker_operations_per_delivery=round(delta["operations"] / delivered, 4),
        )
        if delta["cpu_s"] is not None:
            out["broker_cpu_s_per_1m"] = round(delta["cpu_s"] / delivered * 1e6, 3)
    if delta["cpu_s"] is not None:
        out["broker_cpu_us_per_publication"] = round(delta["cpu_s"] / messages * 1e6, 1)
    return out


async def _measure(
    spec: ClusterSpec,
    nodes: _Nodes,
    probe: BrokerProbe | None,
    lg: LoadGen,
    res: RunResult,
    pr: Progress,
) -> None:
    """Subscribe, prove readiness, publish back to back, drain, and fill ``res.metrics``."""
    ready = await _connect_all(spec, lg, nodes, res, pr)
    pub: Publisher = await _open_publisher(spec, TARGETS["pushwire"], nodes.servers[0].port)
    subs = await _sync(lg, pub, ready, pr)
    res.metrics["subscribers"] = subs
    if subs < ready:
        res.errors.append(f"only {subs}/{ready} subscribers received the sync probe")
    if not subs:
        raise RuntimeError("no subscriber is receiving")
    await lg.reset(verify=spec.verify)
    cpu0 = {pid: process_cpu_seconds(pid) for pid in nodes.pids()}
    broker0: BrokerReading | None = probe.read(nodes.pids()) if probe else None
    snap0 = await _cluster_snap(lg, nodes)
    # publish-rate: how long requests wait for the node's loop meanwhile (commits, checkpoints).
    stalls = (
        StallProbeProcess(HOST, nodes.servers[0].port) if spec.scenario == "publish-rate" else None
    )
    if stalls is not None:
        await stalls.start()
    t_start_ns = time.time_ns()
    seq, window = await publish_back_to_back(spec, lg, pub, subs, pr)
    expected = seq * subs
    total, last_rx = await _drain(lg, pub, expected, pr)
    if stalls is not None:
        res.metrics["loop_stall_probe"] = await stalls.stop()
    snap1 = await _cluster_snap(lg, nodes)
    broker1 = probe.read(nodes.pids()) if probe else None
    st = await lg.stats()
    wall = max((last_rx - t_start_ns) / 1e9, 1e-9)
    await pub.close()
    node_cpu = snap1.server - snap0.server
    util = _utilization(snap0, snap1)
    res.metrics.update(
        messages=seq,
        expected=expected,
        delivered=total,
        lost=expected - total,
        duplicated=max(total - expected, 0),
        min_per_sub=st.min,
        max_per_sub=st.max,
        messages_per_read=round(total / st.reads, 2) if st.reads else None,
        verified=spec.verify,
        window=window,
        seconds=round(wall, 3),
        deliveries_per_s=round(total / wall),
        publications_per_s=round(seq / wall),
        node_cpu_s=round(node_cpu, 3),
        node_cpu_s_per_1m=round(node_cpu / total * 1e6, 3) if total else None,
        node_cpu_us_per_publication=round(node_cpu / seq * 1e6, 1) if seq else None,
        processes=_per_process(nodes, cpu0),
        publish_errors=pub.errors,
        publish_failed=pub.failed,
    )
    if spec.verify:
        res.metrics.update(offsets_repeated=st.repeats, offsets_skipped=st.skips)
        if st.repeats or st.skips:
            res.errors.append(f"offsets repeated {st.repeats:,}, skipped {st.skips:,}")
    if broker0 is not None and broker1 is not None:
        delta = difference(broker0, broker1)
        res.metrics.update(_broker_metrics(delta, seq, total))
        if delta["cpu_s"] is not None:
            broker_util = delta["cpu_s"] / max(snap1.t - snap0.t, 1e-9)
            util["broker_cpu_util"] = round(broker_util, 3)
            # The broker is another process on this machine, not a foreign one.
            util["foreign_cpu"] = round(max(util["foreign_cpu"] - broker_util, 0.0), 3)
        _check_shared(spec, delta, seq, res)
    res.metrics.update(util)
    if pub.failed:
        res.errors.append(f"{pub.failed} publish errors: {pub.errors}")
    if expected != total:
        res.errors.append(f"lost {expected - total:,} deliveries; subscribers: {st.errors}")


def _check_shared(spec: ClusterSpec, delta: dict[str, Any], seq: int, res: RunResult) -> None:
    """Say so when someone else used the broker during the run (its figures include them)."""
    if spec.broker == "redis":
        # Our nodes run exactly one script per publication (no presence here), so more
        # scripts mean someone else's work is in the figures.
        extra = delta["per_command"].get("evalsha", 0) - seq
        res.metrics["broker_extra_scripts"] = extra
        if extra > seq // 100 + 2:
            res.errors.append(
                f"the broker ran {extra:,} scripts besides this run's {seq:,} publications: "
                "it was shared meanwhile, so its CPU, commands and bytes include others' work"
            )
    elif delta["foreign_connections"]:
        res.errors.append(
            f"{delta['foreign_connections']} other connections to the broker during the run: "
            "its CPU and bytes may include their work"
        )


def _check_workers(spec: ClusterSpec, nodes: _Nodes, res: RunResult) -> None:
    """``--workers N`` must really give N serving processes (the flag may not have landed)."""
    if not spec.serve_workers:
        return
    count = len(nodes.pids())
    res.metrics["serve_processes"] = count
    if count < spec.serve_workers:
        res.errors.append(
            f"pushwire serve --workers {spec.serve_workers} runs {count} process(es): "
            "this pushwire does not start workers yet"
        )


async def run_cluster(spec: ClusterSpec) -> RunResult:
    """Start the nodes (and the broker probe), measure, stop them, delete the run's keys."""
    result = RunResult(spec)
    prefix = f"bench-{secrets.token_hex(4)}"
    count = 1 if spec.serve_workers or spec.broker == "memory" else spec.nodes
    progress = Progress(f"[{spec.scenario} {spec.label} x{spec.subscribers}]")
    data_dir = tempfile.mkdtemp(prefix="pushwire-bench-") if spec.history == "sqlite" else ""
    target = _node_target(spec, prefix, data_dir if spec.broker == "memory" else "")
    probe: BrokerProbe | None = None
    t0 = time.monotonic()
    try:
        if spec.broker != "memory":
            probe = RedisProbe(spec.url) if spec.broker == "redis" else NatsProbe(spec.url)
            result.metrics["broker_pid"] = probe.pid
            if probe.pid is None:
                result.errors.append(f"{spec.broker}'s process is not visible: no broker CPU")
        with contextlib.ExitStack() as stack:
            servers = [
                stack.enter_context(ServerProcess(target, Path(spec.log_dir))) for _ in range(count)
            ]
            nodes = _Nodes(servers)
            _check_workers(spec, nodes, result)
            async with LoadGen(spec.workers) as lg:
                try:
                    await _measure(spec, nodes, probe, lg, result, progress)
                finally:
                    await lg.close_all()
            for server in servers:
                if not server.alive():
                    result.errors.append(f"node :{server.port} died: {server.log_tail(500)}")
    except Exception as exc:  # a failed run is a result too
        result.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        if probe is not None:
            try:
                result.metrics["broker_keys_deleted"] = await probe.delete_prefix(prefix)
            except Exception as exc:  # say so: the run's keys are left behind
                result.errors.append(f"could not delete the {prefix} keys: {exc}")
            await probe.close()
        if data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
    result.metrics["broker_prefix"] = prefix
    result.wall_s = time.monotonic() - t0
    progress.done()
    return result


def run(spec: ClusterSpec) -> RunResult:
    """Run one cluster scenario in a fresh event loop (uvloop when available)."""
    from bench.affinity import loadgen_cpus, pin_self

    pin_self(loadgen_cpus())  # workers started from here inherit it
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run_cluster(spec))
    return uvloop.run(run_cluster(spec))
