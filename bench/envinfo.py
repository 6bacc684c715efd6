"""What the figures were measured on: machine, kernel, runtimes and package versions.

Recorded with every matrix run (bench-results.json) because on a 2-core VM the absolute
figures depend on all of it; only the ratios between targets are meant to travel.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.affinity import loadgen_cpus, server_cpus
from bench.procstat import system_cpu
from bench.targets import BENCH_DIR, PEERS_DIR


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _node_package(name: str) -> str:
    pkg = PEERS_DIR / "node_modules" / name / "package.json"
    try:
        return str(json.loads(pkg.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "not installed"


def _command(argv: list[str], cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    return out.stdout.strip() or "unavailable"


def _commit() -> str:
    """Short HEAD of the repository, with ``+dirty`` when src/ has uncommitted changes."""
    root = BENCH_DIR.parent
    head = _command(["git", "rev-parse", "--short", "HEAD"], root)
    dirty = _command(["git", "status", "--porcelain", "--", "src"], root)
    return head + ("+dirty" if dirty not in ("", "unavailable") else "")


def background_load(seconds: float = 1.0) -> float:
    """Fraction of all CPUs busy over ``seconds`` before a run (other tenants' load)."""
    b0, _, t0 = system_cpu()
    time.sleep(seconds)
    b1, _, t1 = system_cpu()
    return round((b1 - b0) / max(t1 - t0, 1e-9), 3)


def collect() -> dict[str, Any]:
    """Return a JSON-ready description of the machine and software under test."""
    mem_kib = next(
        (int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
         if line.startswith("MemTotal:")),
        0,
    )  # fmt: skip
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "node": _command(["node", "--version"]),
        "npm": _command(["npm", "--version"]),
        "packages": {
            "pushwire": _version("pushwire"),
            "uvloop": _version("uvloop"),
            "websockets": _version("websockets"),
            "httptools": _version("httptools"),
            "orjson": _version("orjson"),
            "ws (npm)": _node_package("ws"),
            "@trufflesuite/uws-js-unofficial (npm)": _node_package(
                "@trufflesuite/uws-js-unofficial"
            ),
        },
        "pushwire_commit": _commit(),
        "rlimit_nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "somaxconn": _read("/proc/sys/net/core/somaxconn"),
        "tcp_tw_reuse": _read("/proc/sys/net/ipv4/tcp_tw_reuse"),
        "ip_local_port_range": _read("/proc/sys/net/ipv4/ip_local_port_range"),
        "server_cpus": sorted(server_cpus() or []),
        "loadgen_cpus": sorted(loadgen_cpus() or []),
    }
