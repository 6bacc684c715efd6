"""A real Redis Cluster of the tests' own: three primaries on free ports, no replicas.

``RedisClusterServers`` starts three ``redis-server --cluster-enabled yes`` processes
in a directory of its own, joins them with ``redis-cli --cluster create`` and waits
for ``cluster_state:ok``; a test may kill one primary (its own process, by PID) and
start it again on the same port, where it comes back with its slots (its
``nodes-PORT.conf``) but, without persistence, empty. The session fixture
``redis_cluster`` (tests/conftest.py) shares one among the tests that need it.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.waiting import wait_until_sync

__all__ = ["RedisClusterServers", "forget_cluster_prefix", "require_redis_cluster_tools"]

#: How long a primary may be silent before the others mark it failed: short, so a
#: killed one is noticed soon; the tests restart it well within this, or past it.
NODE_TIMEOUT_MS = 3000


def require_redis_cluster_tools() -> tuple[str, str]:
    """redis-server and redis-cli, or skip (fail with PUSHWIRE_REQUIRE_SERVICES=1)."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is not None and cli is not None:
        return server, cli
    message = "redis-server and redis-cli are needed for the Redis Cluster tests"
    if os.environ.get("PUSHWIRE_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " (.ci/run installs the redis-server package)")
    pytest.skip(message)


class RedisClusterServers:
    """Three primaries of one Redis Cluster, each a process of ours."""

    def __init__(self, directory: Path, primaries: int = 3) -> None:
        self.server, self.cli = require_redis_cluster_tools()
        self.directory = directory
        self.ports = [_cluster_port() for _ in range(primaries)]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        #: The broker URL: every primary as a seed (one would do).
        self.url = "redis://" + ",".join(f"127.0.0.1:{port}" for port in self.ports) + "/0"

    def start(self) -> None:
        for port in self.ports:
            self.start_node(port)
        subprocess.run(
            [self.cli, "--cluster", "create", *(f"127.0.0.1:{port}" for port in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        self.wait_ok()

    def start_node(self, port: int) -> None:
        self.processes[port] = subprocess.Popen(
            [self.server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", str(self.directory / f"nodes-{port}.conf"),
             "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--save", "", "--appendonly", "no",
             "--dir", str(self.directory), "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until_sync(lambda: self._ask(port, b"PING").startswith(b"+PONG"), timeout_seconds=10,
                        message=f"redis-server on {port} to start")  # fmt: skip

    def kill_node(self, port: int) -> None:
        process = self.processes.pop(port, None)
        if process is not None:
            process.kill()
            process.wait()

    def wait_ok(self, timeout_seconds: float = 20.0) -> None:
        """Until every primary says ``cluster_state:ok`` (and so knows every slot's owner)."""

        def ok() -> bool:
            return all(b"cluster_state:ok" in self._ask(p, b"CLUSTER INFO") for p in self.ports)

        wait_until_sync(ok, timeout_seconds=timeout_seconds, message="cluster_state:ok")

    def owner_of(self, key: bytes) -> int:
        """The port of the primary owning ``key``'s slot (asked of the cluster)."""
        from redis.crc import key_slot

        slot = key_slot(key)
        reply = self._ask(self.ports[0], b"CLUSTER NODES")
        for line in reply.decode().splitlines():
            fields = line.split()
            if len(fields) < 9 or "master" not in fields[2]:
                continue
            for ranges in fields[8:]:
                low, _, high = ranges.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return int(fields[1].split("@")[0].rsplit(":", 1)[1])
        raise AssertionError(f"no primary owns slot {slot}")

    def stop(self) -> None:
        for port in list(self.processes):
            self.kill_node(port)

    def _ask(self, port: int, command: bytes) -> bytes:
        """One inline command, its raw reply (or b"" if the node does not answer)."""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
                sock.sendall(command + b"\r\n")
                reply = b""
                while True:
                    part = sock.recv(65536)
                    reply += part
                    if not part or _whole(reply):
                        return reply
        except OSError:
            return b""


def _cluster_port() -> int:
    """A free port P whose cluster bus port, P + 10000, is free too (and below 65536)."""
    for _ in range(200):
        port = random.randrange(20000, 30000)
        try:
            with socket.socket() as one, socket.socket() as bus:
                one.bind(("127.0.0.1", port))
                bus.bind(("127.0.0.1", port + 10000))
                return port
        except OSError:
            continue
    raise RuntimeError("no free pair of ports for a Redis Cluster node")


def _whole(reply: bytes) -> bool:
    """A simple reply (+, -) ends at its first CRLF; a bulk one ($LEN) after LEN bytes."""
    if reply[:1] != b"$":
        return reply.endswith(b"\r\n")
    header, _, rest = reply.partition(b"\r\n")
    return int(header[1:]) < 0 or len(rest) >= int(header[1:]) + 2


async def forget_cluster_prefix(prefix: str, ports: list[int]) -> None:
    """Delete every key under ``prefix`` on each primary (SCAN is per node in a cluster)."""
    from redis.asyncio import Redis

    for port in ports:
        client = Redis(host="127.0.0.1", port=port)
        try:
            keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
            for key in keys:  # one by one: several keys in one DEL must share a slot
                await client.delete(key)
        except OSError:
            pass
        finally:
            await client.aclose()
