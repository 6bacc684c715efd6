"""The servers under test: how to start them, where to subscribe and where to publish.

Each run starts a fresh server process (so memory baselines and CPU counters are clean) and
stops it with SIGTERM by its PID, escalating to SIGKILL of that same PID only if it hangs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.affinity import pin_self, server_cpus
from bench.wire import API_KEY, CHANNEL

BENCH_DIR = Path(__file__).resolve().parent
PEERS_DIR = BENCH_DIR / "peers"
HOST = "127.0.0.1"

#: Long-poll timeout the subscribers ask for, in seconds.
POLL_TIMEOUT = 30


@dataclass(frozen=True)
class Target:
    """A server implementation and the protocols the benchmark uses with it."""

    name: str
    transports: tuple[str, ...]
    publishers: tuple[str, ...]
    pub_path: str
    pub_style: str  # "raw" (peers re-broadcast frames) or "pushwire" (publish envelope)
    data_dir: str = ""  # pushwire: SQLite history in this directory; empty: --memory

    def command(self, port: int) -> list[str]:
        """Return the argv that starts the server on ``port``."""
        if self.name == "pushwire":
            history = ["--data-dir", self.data_dir] if self.data_dir else ["--memory"]
            return [
                sys.executable, "-m", "pushwire", "serve",
                "--host", HOST, "--port", str(port), *history,
            ]  # fmt: skip
        script = {"node-ws": "ws_server.js", "uws": "uws_server.js"}[self.name]
        return [node_binary(), str(PEERS_DIR / script), str(port)]

    def env(self) -> dict[str, str]:
        """Return the environment for the server process."""
        env = dict(os.environ)
        if self.name == "pushwire":
            env["PUSHWIRE_API_KEY"] = API_KEY
            # The publisher is the benchmark's backend: no per-connection publish limit.
            env["PUSHWIRE_MAX_PUBLISHES_PER_SECOND"] = "0"
        return env

    def sub_path(self, transport: str) -> str:
        """Return the request path a subscriber of ``transport`` opens."""
        if transport not in self.transports:
            raise ValueError(f"{self.name} has no {transport} transport in this benchmark")
        if self.name != "pushwire":
            return "/ws"
        return {
            "ws": f"/ws?channel={CHANNEL}",
            "sse": f"/sse?channel={CHANNEL}",
            "poll": f"/poll?channel={CHANNEL}&timeout={POLL_TIMEOUT}",
        }[transport]


TARGETS: dict[str, Target] = {
    "pushwire": Target("pushwire", ("ws", "sse", "poll"), ("ws", "http"), "/ws", "pushwire"),
    "node-ws": Target("node-ws", ("ws",), ("ws",), "/pub", "raw"),
    "uws": Target("uws", ("ws",), ("ws",), "/pub", "raw"),
}


def node_binary() -> str:
    """Return the path of ``node``; fail clearly if it is missing."""
    path = shutil.which("node")
    if path is None:
        raise RuntimeError("node is not on PATH; the peer servers need Node.js 20")
    return path


def ensure_peers_installed() -> None:
    """Run ``npm ci`` in bench/peers when its node_modules is missing (pinned lockfile)."""
    if (PEERS_DIR / "node_modules" / "ws").is_dir() and (
        PEERS_DIR / "node_modules" / "@trufflesuite" / "uws-js-unofficial"
    ).is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not on PATH; cannot install the peer servers")
    print("bench: installing peer servers with npm ci ...", file=sys.stderr)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=PEERS_DIR, check=True)


def free_port() -> int:
    """Return a loopback TCP port that is free right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def http_status(port: int, path: str, timeout: float = 1.0) -> int | None:
    """Return the status of ``GET path`` on the loopback server, or None if unreachable."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            req = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n"
            s.sendall(req.encode())
            head = s.recv(64)
    except OSError:
        return None
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    return int(parts[1])


class ServerProcess:
    """A server started for one run; a context manager that always stops it."""

    def __init__(self, target: Target, log_dir: Path) -> None:
        self.target = target
        self.port = free_port()
        self.log_path = log_dir / f"{target.name}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """PID of the running server."""
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        cpus = server_cpus()
        self.proc = subprocess.Popen(
            self.target.command(self.port),
            cwd=PEERS_DIR if self.target.name != "pushwire" else BENCH_DIR.parent,
            env=self.target.env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Runs in the child before exec, so every thread the server starts inherits it.
            preexec_fn=(lambda: pin_self(cpus)) if cpus else None,
        )
        log.close()
        try:
            self._wait_healthy(30.0)
        except Exception:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_healthy(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.target.name} exited with {self.proc.returncode}: {self.log_tail()}"
                )
            if http_status(self.port, "/health") == 200:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.target.name} not healthy after {timeout}s: {self.log_tail()}")

    def alive(self) -> bool:
        """True while the server process runs."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM the server by PID; SIGKILL that PID if it has not exited after 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def log_tail(self, n: int = 1500) -> str:
        """Last ``n`` characters of the server's combined stdout/stderr."""
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""
