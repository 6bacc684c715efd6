"""Readings from the broker a cluster run shares: its CPU, operations and bytes, and cleanup.

Redis: ``INFO`` gives commands processed (those run inside Lua scripts included), Redis's own
execution time per command, and network bytes; its ``process_id`` gives the CPU from /proc, as
for the nodes (``bench.procstat``). NATS: the server here runs without its monitoring port, so
the figures come from /proc alone: CPU, and the bytes and calls of every ``read``/``write`` it
made (sockets and JetStream's files together; ``write_bytes`` is what reached the disk).

The figures are server-wide: anyone else using the same broker during a run is counted too.
Every reading therefore also counts the broker connections that are not this run's.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from bench.procstat import cpu_seconds

__all__ = ["BrokerProbe", "BrokerReading", "NatsProbe", "RedisProbe", "difference"]

#: Our own ``INFO`` calls per reading, subtracted from the command counts.
_OWN_COMMANDS = ("info", "client|list")


@dataclass(frozen=True, slots=True)
class BrokerReading:
    """Counters of the broker at one instant (cumulative since it started)."""

    cpu_s: float | None  # None when its process is not visible from here
    #: Commands processed (Redis) or read+write system calls (NATS).
    operations: int
    net_in_bytes: int
    net_out_bytes: int
    per_command: dict[str, int] = field(default_factory=dict)
    #: Microseconds Redis spent executing each command (its own accounting, I/O excluded).
    per_command_us: dict[str, int] = field(default_factory=dict)
    #: Bytes the broker wrote to its storage (NATS: JetStream's files), where known.
    disk_write_bytes: int = 0
    #: Broker connections from processes other than this run's nodes and probe.
    foreign_connections: int = 0


class BrokerProbe(Protocol):
    """What a cluster run asks of the broker it measures."""

    pid: int | None

    def read(self, own_pids: list[int]) -> BrokerReading:
        """Take a reading; ``own_pids`` are the run's nodes (their connections are ours)."""

    async def delete_prefix(self, prefix: str) -> int:
        """Delete everything the run's nodes made under ``prefix``; return how many things."""

    async def close(self) -> None:
        """Close the probe's own connection."""


def difference(a: BrokerReading, b: BrokerReading) -> dict[str, Any]:
    """What happened between readings ``a`` and ``b`` (our own INFO calls left out)."""
    own = sum(b.per_command.get(c, 0) - a.per_command.get(c, 0) for c in _OWN_COMMANDS)
    per_command = {
        name: b.per_command[name] - a.per_command.get(name, 0)
        for name in sorted(b.per_command)
        if name not in _OWN_COMMANDS and b.per_command[name] != a.per_command.get(name, 0)
    }
    script_calls = per_command.get("evalsha", 0)
    script_us = b.per_command_us.get("evalsha", 0) - a.per_command_us.get("evalsha", 0)
    cpu = None if a.cpu_s is None or b.cpu_s is None else round(b.cpu_s - a.cpu_s, 3)
    return {
        "cpu_s": cpu,
        "operations": b.operations - a.operations - own,
        "net_in_bytes": b.net_in_bytes - a.net_in_bytes,
        "net_out_bytes": b.net_out_bytes - a.net_out_bytes,
        "disk_write_bytes": b.disk_write_bytes - a.disk_write_bytes,
        "per_command": per_command,
        "script_us_per_call": round(script_us / script_calls, 1) if script_calls else None,
        "foreign_connections": max(a.foreign_connections, b.foreign_connections),
    }


def _socket_inodes(pids: list[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    return inodes


def foreign_connections(port: int, own_pids: list[int]) -> int:
    """Established loopback TCP connections to ``port`` not held by ``own_pids``."""
    mine = _socket_inodes([*own_pids, os.getpid()])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                # remote address is "HEXIP:HEXPORT"; state 01 is ESTABLISHED
                if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port:
                    count += fields[9] not in mine
    return count


class RedisProbe:
    """Reads a Redis server's counters over its own connection (in the run's database)."""

    def __init__(self, url: str) -> None:
        # Imported here: the other scenarios do not need the Redis client.
        import redis

        self._client: Any = redis.Redis.from_url(url, socket_timeout=5)
        self._port = urlsplit(url).port or 6379
        pid = int(self._client.info("server")["process_id"])
        self.pid: int | None = pid if os.path.exists(f"/proc/{pid}/stat") else None

    def read(self, own_pids: list[int]) -> BrokerReading:
        """Take a reading: one ``INFO``."""
        info = self._client.info("stats", "commandstats")
        stats = {k.removeprefix("cmdstat_"): v for k, v in info.items() if k.startswith("cmd")}
        return BrokerReading(
            cpu_s=cpu_seconds(self.pid) if self.pid is not None else None,
            operations=int(info["total_commands_processed"]),
            net_in_bytes=int(info["total_net_input_bytes"]),
            net_out_bytes=int(info["total_net_output_bytes"]),
            per_command={name: int(v["calls"]) for name, v in stats.items()},
            per_command_us={name: int(v["usec"]) for name, v in stats.items()},
            foreign_connections=foreign_connections(self._port, own_pids),
        )

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key of this database that starts ``prefix:``; return how many."""
        deleted = 0
        batch: list[bytes] = []
        for key in self._client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += int(self._client.unlink(*batch))
                batch = []
        if batch:
            deleted += int(self._client.unlink(*batch))
        return deleted

    async def close(self) -> None:
        """Close the probe's connection."""
        self._client.close()


def _find_pid(command: str) -> int | None:
    """The PID of the one process named ``command``, or None if there is not exactly one."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == command:
                    found.append(int(entry.name))
    return found[0] if len(found) == 1 else None


class NatsProbe:
    """Reads a local nats-server's CPU and I/O counters from /proc; cleans up over NATS."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._port = urlsplit(url).port or 4222
        self.pid: int | None = _find_pid("nats-server")

    def read(self, own_pids: list[int]) -> BrokerReading:
        """Take a reading of /proc/PID/io (all zero if the server is not visible)."""
        io: dict[str, int] = {}
        if self.pid is not None:
            for line in Path(f"/proc/{self.pid}/io").read_text().splitlines():
                name, _, value = line.partition(":")
                io[name] = int(value)
        return BrokerReading(
            cpu_s=cpu_seconds(self.pid) if self.pid is not None else None,
            operations=io.get("syscr", 0) + io.get("syscw", 0),
            net_in_bytes=io.get("rchar", 0),
            net_out_bytes=io.get("wchar", 0),
            disk_write_bytes=io.get("write_bytes", 0),
            foreign_connections=foreign_connections(self._port, own_pids),
        )

    async def delete_prefix(self, prefix: str) -> int:
        """Delete the history stream and the two KV buckets the nodes made under ``prefix``."""
        import nats
        from nats.js.errors import NotFoundError

        client = await nats.connect(self._url, connect_timeout=5, allow_reconnect=False)
        deleted = 0
        try:
            js = client.jetstream()
            for stream in (f"{prefix}_history", f"KV_{prefix}_presence", f"KV_{prefix}_nodes"):
                with contextlib.suppress(NotFoundError):
                    deleted += bool(await js.delete_stream(stream))
        finally:
            await client.close()
        return deleted

    async def close(self) -> None:
        """Nothing held between calls."""
