"""Soak: does a server under churning, clumsy traffic stay the same size for half an hour?

``python -m bench soak --minutes N``: starts a ``pushwire serve`` (SQLite history, or
``--memory``), runs the seeded mix of ``bench.soak_load`` against it in a process of its
own for N minutes, and every ``--interval`` seconds samples the server from outside:
RSS (``/proc/PID/status`` VmRSS), open files (``/proc/PID/fd``), CPU seconds, and from
``/metrics`` its connections, channels, subscriptions, slow-consumer cut-offs and the
event-loop lag histogram (a 0.5 s timer inside the server notes how late it runs); the
time a ``GET /health`` round trip takes is sampled too, as a second opinion on the lag
that includes the kernel and the HTTP path. After the load ends, a short cool-down shows
what the server keeps once everyone is gone.

The samples go to a JSONL file (first line: the run's settings; then one line per sample;
last: the summary), the plot to a PNG, and the summary to stdout. Everything started is
stopped by PID; every loop ends by count or time; only loopback addresses are used.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.procstat import cpu_seconds, open_fds, rss_bytes
from bench.soak_load import BEHAVIOURS, FIREHOSE, PUBLISHERS
from bench.targets import HOST, free_port, http_status

__all__ = ["SoakSpec", "scrape_metrics", "soak"]

MIB = 1024 * 1024
_CONFIG = f"""
[[channels]]
prefix = ""
history_size = 1000
history_ttl_seconds = 120

[[channels]]
prefix = "room:"
presence = true
join_leave = true
history_ttl_seconds = 120

[[channels]]
prefix = "{FIREHOSE}"
history_size = 50
history_ttl_seconds = 60
"""
_SAMPLE = re.compile(r"^([a-z_]+)(?:\{([^}]*)\})? ([0-9.eE+-]+|NaN|\+Inf)$")


class SoakSpec:
    """One soak run's settings."""

    def __init__(
        self,
        *,
        seconds: float,
        seed: int = 1,
        memory: bool = False,
        actors: int = 800,
        interval: float = 5.0,
        warm_up: float | None = None,
        cool_down: float = 30.0,
        meta_ttl: float = 120.0,
        out: Path,
        plot: Path | None,
        trace: Path | None = None,
        trim_probe: bool = False,
        heap: bool = False,
        behaviours: tuple[str, ...] = BEHAVIOURS,
        publishers: tuple[str, ...] = PUBLISHERS,
    ) -> None:
        self.seconds = seconds
        self.seed = seed
        self.memory = memory
        self.actors = actors
        self.interval = interval
        # The first minutes fill history up to its TTL and warm caches: not counted as growth.
        self.warm_up = min(180.0, seconds * 0.2) if warm_up is None else warm_up
        self.cool_down = cool_down
        self.meta_ttl = meta_ttl
        self.out = out
        self.plot = plot
        #: A directory: run the server under tracemalloc (bench.soak_trace) and have it
        #: write what grew at the end of warm-up, at four steps after it and at the end.
        self.trace = trace
        #: With ``trace``: instead of tracemalloc, malloc_trim(0) at those points.
        self.trim_probe = trim_probe
        #: Run the server on jemalloc (bench.soak_heap) and sample its live heap beside RSS.
        self.heap = heap
        #: Part of the load only (``bench.soak_load``'s names): which part makes it grow?
        self.behaviours = behaviours
        self.publishers = publishers

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "run",
            "seconds": self.seconds,
            "seed": self.seed,
            "history": "memory" if self.memory else "sqlite",
            "actors": self.actors,
            "interval_seconds": self.interval,
            "warm_up_seconds": self.warm_up,
            "cool_down_seconds": self.cool_down,
            "history_meta_ttl_seconds": self.meta_ttl,
            "allocator": "jemalloc" if self.heap else "default",
            "behaviours": list(self.behaviours),
            "publishers": list(self.publishers),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }


def soak(spec: SoakSpec) -> dict[str, Any]:
    """Run the soak; write the JSONL (and the plot); return the summary."""
    api_key = secrets.token_hex(16)
    secret = secrets.token_hex(32)
    port = free_port()
    spec.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pushwire-soak-") as tmp:
        config = Path(tmp) / "soak.toml"
        config.write_text(_CONFIG)
        log_path = Path(tmp) / "server.log"
        env = dict(os.environ)
        env.update(
            PUSHWIRE_API_KEY=api_key,
            PUSHWIRE_TOKEN_SECRET=secret,
            PUSHWIRE_DATA_DIR=str(Path(tmp) / "data"),
            PUSHWIRE_HISTORY_META_TTL_SECONDS=str(spec.meta_ttl),
            PUSHWIRE_LOG_LEVEL="warning",
        )
        module = "pushwire"
        if spec.trace is not None:
            spec.trace.mkdir(parents=True, exist_ok=True)
            env["PUSHWIRE_SOAK_TRACE_DIR"] = str(spec.trace)
            env["PUSHWIRE_SOAK_TRACEMALLOC"] = "0" if spec.trim_probe else "1"
            module = "bench.soak_trace"
        heap_file: Path | None = None
        if spec.heap:
            from bench.soak_heap import HEAP_FILE_ENV, find_jemalloc

            jemalloc = find_jemalloc()
            if spec.trace is not None or jemalloc is None:
                raise SystemExit(
                    "--heap needs libjemalloc (Debian: apt-get install libjemalloc2)"
                    if jemalloc is None
                    else "--heap and --trace measure different things: one at a time"
                )
            heap_file = Path(tmp) / "heap.json"
            env.update({"LD_PRELOAD": jemalloc, "PYTHONMALLOC": "malloc",
                        HEAP_FILE_ENV: str(heap_file)})  # fmt: skip
            module = "bench.soak_heap"
        command = [sys.executable, "-m", module, "serve", "--port", str(port),
                   "--config", str(config)]  # fmt: skip
        if spec.memory:
            command.append("--memory")
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                command,
                cwd=Path(__file__).resolve().parent.parent,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        load: subprocess.Popen[bytes] | None = None
        try:
            _wait_healthy(port, server)
            samples: list[dict[str, Any]] = []
            with spec.out.open("w") as out:
                out.write(json.dumps(spec.to_json()) + "\n")
                sampler = _Sampler(port, server.pid, Path(tmp) / "data", heap_file)
                samples.append(sampler.sample(0.0, "idle"))
                out.write(json.dumps(samples[-1]) + "\n")
                load = subprocess.Popen(
                    [sys.executable, "-m", "bench.soak_load", "--port", str(port),
                     "--seconds", str(spec.seconds), "--seed", str(spec.seed),
                     "--actors", str(spec.actors), "--api-key", api_key, "--secret", secret,
                     "--behaviours", ",".join(spec.behaviours),
                     "--publishers", ",".join(spec.publishers)],
                    env=_without_allocator(env), stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                )  # fmt: skip
                started = time.monotonic()
                load_ends = started + spec.seconds
                ends = load_ends + spec.cool_down
                rounds = int((spec.seconds + spec.cool_down) / spec.interval) + 2
                # At the end of warm-up, at four even steps after it, and just before the end.
                step = (spec.seconds - spec.warm_up) / 5
                traces = [spec.warm_up + k * step for k in range(5)] + [spec.seconds - 1]
                due = started
                for _ in range(rounds):
                    # The next slot; ones missed (a slow scrape of a busy server) are skipped.
                    due += spec.interval * max(1, -int((due - time.monotonic()) // spec.interval))
                    if due > ends + 0.5 or server.poll() is not None:
                        break
                    time.sleep(max(due - time.monotonic(), 0))
                    t = time.monotonic() - started
                    phase = "load" if time.monotonic() < load_ends else "cool-down"
                    samples.append(sampler.sample(t, phase))
                    out.write(json.dumps(samples[-1]) + "\n")
                    out.flush()
                    if spec.trace is not None and traces and t >= traces[0]:
                        traces = [x for x in traces if x > t]
                        server.send_signal(signal.SIGUSR1)
                load_result = _finish_load(load, timeout=60)
                summary = summarise(spec, samples, load_result, log_path, server)
                out.write(json.dumps(summary) + "\n")
        finally:
            if load is not None and load.poll() is None:
                load.kill()
                load.wait(5)
            _stop(server)
    if spec.plot is not None:
        from bench.soak_plot import plot

        plot(spec.out, spec.plot)
    return summary


class _Sampler:
    """Reads the server's figures from /proc and /metrics."""

    def __init__(self, port: int, pid: int, data_dir: Path, heap_file: Path | None) -> None:
        self.port = port
        self.pid = pid
        self.data_dir = data_dir
        self.heap_file = heap_file
        self._lag_before: dict[str, float] = {}

    def sample(self, t: float, phase: str) -> dict[str, Any]:
        health_ms, status = _health_round_trip(self.port)
        metrics = scrape_metrics(self.port)
        lag = _lag_since(self._lag_before, metrics)
        if metrics:
            self._lag_before = {k: v for k, v in metrics.items() if "loop_lag" in k}
        conns = {
            k.split('transport="')[1].split('"')[0]: int(v)
            for k, v in metrics.items()
            if k.startswith("pushwire_connections{")
        }
        return {
            "type": "sample",
            "t": round(t, 1),
            "phase": phase,
            "rss_mib": round(rss_bytes(self.pid) / MIB, 2),
            **_rss_parts(self.pid),
            "fds": open_fds(self.pid),
            "disk_mib": _disk_mib(self.data_dir),
            "cpu_s": round(cpu_seconds(self.pid), 2),
            "health_ms": health_ms,
            "health_status": status,
            "lag_max_s": lag[0],
            "lag_mean_ms": lag[1],
            "tcp_connections": int(metrics.get("pushwire_tcp_connections", -1)),
            "connections": conns,
            "channels": int(metrics.get("pushwire_channels", -1)),
            "subscriptions": int(metrics.get("pushwire_subscriptions", -1)),
            "history_streams": int(metrics.get("pushwire_history_streams", -1)),
            "slow_consumers": int(_total(metrics, "pushwire_slow_consumers_total{")),
            "closed": _closed_by_reason(metrics),
            "publications": int(_total(metrics, "pushwire_publications_total{")),
            "deliveries": int(_total(metrics, "pushwire_deliveries_total{")),
            **_heap(self.heap_file),
        }


def _heap(path: Path | None) -> dict[str, float]:
    """The server's jemalloc account (bench.soak_heap), in MiB; nothing without ``--heap``."""
    if path is None:
        return {}
    try:
        stats = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    kinds = ("allocated", "active", "resident", "sqlite")
    return {f"heap_{k}_mib": round(stats[k] / MIB, 2) for k in kinds if k in stats}


def _without_allocator(env: dict[str, str]) -> dict[str, str]:
    """The load generator's environment: the server's allocator settings are not for it."""
    return {k: v for k, v in env.items() if k not in ("LD_PRELOAD", "PYTHONMALLOC")}


def _rss_parts(pid: int) -> dict[str, float]:
    """RssAnon (the heap: Python objects, malloc arenas) and RssFile (mapped files) in MiB."""
    out: dict[str, float] = {}
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name in ("RssAnon", "RssFile"):
            out[f"{name[3:].lower()}_mib"] = round(int(value.split()[0]) / 1024, 2)
    return out


def _disk_mib(data_dir: Path) -> float:
    """What the history files (SQLite database, its WAL and shared memory) take on disk."""
    total = 0
    for path in data_dir.glob("history*"):
        try:
            total += path.stat().st_size
        except OSError:
            continue
    return round(total / MIB, 2)


def _health_round_trip(port: int) -> tuple[float | None, int | None]:
    """Milliseconds for ``GET /health`` on a new connection, and its status."""
    started = time.perf_counter()
    try:
        with socket.create_connection((HOST, port), timeout=10) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = s.recv(64)
    except OSError:
        return None, None
    ms = round((time.perf_counter() - started) * 1000, 2)
    parts = head.split(b" ", 2)
    return ms, int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def scrape_metrics(port: int) -> dict[str, float]:
    """``/metrics`` as ``{"name{labels}": value}``, the ``worker`` label dropped."""
    try:
        with socket.create_connection((HOST, port), timeout=10) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            chunks = []
            for _ in range(10_000):
                part = s.recv(1 << 16)
                if not part:
                    break
                chunks.append(part)
    except OSError:
        return {}
    body = b"".join(chunks).split(b"\r\n\r\n", 1)[-1].decode(errors="replace")
    found: dict[str, float] = {}
    for line in body.splitlines():
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = ",".join(
            part
            for part in (m.group(2) or "").split(",")
            if part and not part.startswith("worker=")
        )
        key = f"{m.group(1)}{{{labels}}}" if labels else m.group(1)
        found[key] = float(m.group(3))
    return found


def _lag_since(
    before: dict[str, float], now: dict[str, float]
) -> tuple[float | None, float | None]:
    """(upper bound of the worst lag, mean lag in ms) observed since the last scrape."""
    prefix = "pushwire_event_loop_lag_seconds"
    count = now.get(f"{prefix}_count", 0) - before.get(f"{prefix}_count", 0)
    if count <= 0:
        return None, None
    total = now.get(f"{prefix}_sum", 0) - before.get(f"{prefix}_sum", 0)
    worst = 0.0
    previous = 0.0
    bounds = sorted(
        (float(k.split('le="')[1].rstrip('"}')), v - before.get(k, 0))
        for k, v in now.items()
        if k.startswith(f"{prefix}_bucket{{") and "+Inf" not in k
    )
    for bound, cumulative in bounds:
        if cumulative > previous:
            worst = bound
        previous = cumulative
    if previous < count:
        worst = float("inf")
    return worst, round(total / count * 1000, 3)


def _total(metrics: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in metrics.items() if k.startswith(prefix))


def _closed_by_reason(metrics: dict[str, float]) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, v in metrics.items():
        if k.startswith("pushwire_connections_closed_total{"):
            reason = k.split('reason="')[1].split('"')[0]
            out[reason] = out.get(reason, 0) + int(v)
    return dict(sorted(out.items()))


def _wait_healthy(port: int, server: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"pushwire serve exited with {server.returncode}")
        if http_status(port, "/health") == 200:
            return
        time.sleep(0.05)
    raise RuntimeError("pushwire serve did not become healthy")


def _finish_load(load: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    try:
        stdout, stderr = load.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        load.kill()
        stdout, stderr = load.communicate(timeout=5)
        return {
            "error": "the load did not end by itself; killed",
            "stderr": stderr.decode()[-2000:],
        }
    lines = stdout.decode().strip().splitlines()
    if load.returncode != 0 or not lines:
        return {"error": f"load exited with {load.returncode}", "stderr": stderr.decode()[-2000:]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(5)


def _slope_per_10_min(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MiB), in MiB per 10 minutes."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (y - mean_y) for t, y in points)
    return round(cov / var * 600, 2)


def _medians_by_window(points: list[tuple[float, float]], window: float) -> list[float]:
    """The median of each ``window`` seconds of (seconds, MiB), from the first point on.

    A saw-tooth (a cache filling, then cleared) moves a least-squares slope by as much as
    the tooth, depending on where the run starts and stops in it; the median of each
    window shows whether the level itself moves. Windows without a point are skipped.
    """
    if not points:
        return []
    start = points[0][0]
    groups: dict[int, list[float]] = {}
    for t, y in points:
        groups.setdefault(int((t - start) // window), []).append(y)
    return [round(_median(groups[k]) or 0.0, 1) for k in sorted(groups)]


def _second_half(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points in the later half of the time they span."""
    if not points:
        return []
    middle = (points[0][0] + points[-1][0]) / 2
    return [(t, y) for t, y in points if t >= middle]


def summarise(
    spec: SoakSpec,
    samples: list[dict[str, Any]],
    load: dict[str, Any],
    log_path: Path,
    server: subprocess.Popen[bytes],
) -> dict[str, Any]:
    """The run's figures: RSS at the marks, its slope after warm-up, files, lag, errors."""
    during = [s for s in samples if s["phase"] == "load"]
    steady = [s for s in during if s["t"] >= spec.warm_up]
    cool = [s for s in samples if s["phase"] == "cool-down"]
    rss = [s["rss_mib"] for s in samples]
    lags = [s["lag_max_s"] for s in samples if s["lag_max_s"] is not None]
    health = [s["health_ms"] for s in samples if s["health_ms"] is not None]
    stats: dict[str, int] = load.get("stats", {})
    load_errors = {k: v for k, v in stats.items() if k.startswith("error.")}
    log = log_path.read_text(errors="replace") if log_path.exists() else ""
    lines = log.splitlines()
    bad_lines = [
        line for line in lines
        if "Traceback" in line or " ERROR " in line or " CRITICAL " in line
    ]  # fmt: skip
    warnings = [line for line in lines if " WARNING " in line]
    last = samples[-1] if samples else {}
    steady_rss = [s["rss_mib"] for s in steady]
    steady_points = [(s["t"], s["rss_mib"]) for s in steady]
    return {
        "type": "summary",
        "samples": len(samples),
        "server_exit": server.poll(),
        "rss_idle_mib": samples[0]["rss_mib"] if samples else None,
        "rss_after_warm_up_mib": steady[0]["rss_mib"] if steady else None,
        "rss_end_of_load_mib": during[-1]["rss_mib"] if during else None,
        "rss_after_cool_down_mib": cool[-1]["rss_mib"] if cool else None,
        "rss_max_mib": max(rss) if rss else None,
        "rss_steady_min_max_mib": [min(steady_rss), max(steady_rss)] if steady_rss else None,
        "rss_slope_mib_per_10_min": _slope_per_10_min(steady_points),
        # Is it still rising once the high-water marks are reached, or level?
        "rss_slope_second_half_mib_per_10_min": _slope_per_10_min(_second_half(steady_points)),
        "rss_median_by_5_min_mib": _medians_by_window(steady_points, 300),
        **_heap_summary(steady, cool),
        "disk_max_mib": max(s["disk_mib"] for s in samples) if samples else None,
        "disk_end_mib": last.get("disk_mib"),
        "fds_idle": samples[0]["fds"] if samples else None,
        "fds_max": max(s["fds"] for s in samples) if samples else None,
        "fds_end": last.get("fds"),
        "tcp_connections_max": max(s["tcp_connections"] for s in samples) if samples else None,
        "loop_lag_worst_bucket_s": max(lags) if lags else None,
        "loop_lag_mean_ms": _mean([s["lag_mean_ms"] for s in during]),
        "health_ms_median": _median(health),
        "health_ms_max": max(health) if health else None,
        "health_failures": sum(1 for s in samples if s["health_status"] != 200),
        "server_cpu_s": last.get("cpu_s"),
        "publications": last.get("publications"),
        "deliveries": last.get("deliveries"),
        "slow_consumers_cut_off": last.get("slow_consumers"),
        "closed_by_reason": last.get("closed"),
        "load": load,
        "load_errors": load_errors,
        "server_log_error_lines": len(bad_lines),
        "server_log_first_errors": bad_lines[:5],
        "server_log_warning_lines": len(warnings),
        "server_log_first_warnings": warnings[:3],
    }


def _heap_summary(steady: list[dict[str, Any]], cool: list[dict[str, Any]]) -> dict[str, Any]:
    """With ``--heap``: live heap and the pages holding it, their range and slope after warm-up."""
    out: dict[str, Any] = {}
    for kind in ("allocated", "active", "sqlite"):
        key = f"heap_{kind}_mib"
        points = [(s["t"], s[key]) for s in steady if key in s]
        if not points:
            continue
        values = [y for _, y in points]
        out[f"{key}_steady_min_max"] = [min(values), max(values)]
        out[f"heap_{kind}_slope_mib_per_10_min"] = _slope_per_10_min(points)
        out[f"heap_{kind}_slope_second_half_mib_per_10_min"] = _slope_per_10_min(
            _second_half(points)
        )
        out[f"heap_{kind}_median_by_5_min_mib"] = _medians_by_window(points, 300)
        ended = [s[key] for s in cool if key in s]
        out[f"{key}_after_cool_down"] = ended[-1] if ended else None
    return out


def _mean(values: list[Any]) -> float | None:
    xs = [v for v in values if v is not None]
    return round(sum(xs) / len(xs), 3) if xs else None


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    xs = sorted(values)
    return xs[len(xs) // 2]
