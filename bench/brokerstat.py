"""Readings from the broker a cluster run shares: its CPU, commands and bytes, and cleanup.

Redis only, for now: ``INFO`` gives commands processed (commands run inside Lua scripts
included) and network bytes since start; its ``process_id`` gives the CPU from /proc, as for
the nodes (``bench.procstat``). The figures are server-wide: anyone else using the same Redis
during a run is counted too: every reading also counts the clients of other databases, and
``bench.cluster`` checks the scripts run against the publications it made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from bench.procstat import cpu_seconds

__all__ = ["BrokerReading", "RedisProbe", "difference"]

#: Our own ``INFO`` calls per reading, subtracted from the command counts.
_OWN_COMMANDS = ("info", "client|list")


@dataclass(frozen=True, slots=True)
class BrokerReading:
    """Counters of the broker at one instant (cumulative since it started)."""

    cpu_s: float | None  # None when its process is not visible from here
    commands: int
    net_in_bytes: int
    net_out_bytes: int
    per_command: dict[str, int] = field(default_factory=dict)
    #: Microseconds Redis spent executing each command (its own accounting, I/O excluded).
    per_command_us: dict[str, int] = field(default_factory=dict)
    #: Clients connected to other databases (someone else's tests, say) at this instant.
    foreign_clients: int = 0


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
        "commands": b.commands - a.commands - own,
        "net_in_bytes": b.net_in_bytes - a.net_in_bytes,
        "net_out_bytes": b.net_out_bytes - a.net_out_bytes,
        "per_command": per_command,
        "script_us_per_call": round(script_us / script_calls, 1) if script_calls else None,
        "foreign_clients": max(a.foreign_clients, b.foreign_clients),
    }


class RedisProbe:
    """Reads a Redis server's counters over its own connection (in the run's database)."""

    def __init__(self, url: str) -> None:
        # Imported here: the other scenarios do not need the Redis client.
        import redis

        self._client: Any = redis.Redis.from_url(url, socket_timeout=5)
        self._db = int(self._client.connection_pool.connection_kwargs.get("db", 0))
        pid = int(self._client.info("server")["process_id"])
        self.pid: int | None = pid if os.path.exists(f"/proc/{pid}/stat") else None

    def read(self) -> BrokerReading:
        """Take a reading: one ``INFO`` and one ``CLIENT LIST``."""
        info = self._client.info("stats", "commandstats")
        per_command = {
            key.removeprefix("cmdstat_"): int(value["calls"])
            for key, value in info.items()
            if key.startswith("cmdstat_")
        }
        per_command_us = {
            key.removeprefix("cmdstat_"): int(value["usec"])
            for key, value in info.items()
            if key.startswith("cmdstat_")
        }
        clients = self._client.client_list()
        return BrokerReading(
            cpu_s=cpu_seconds(self.pid) if self.pid is not None else None,
            commands=int(info["total_commands_processed"]),
            net_in_bytes=int(info["total_net_input_bytes"]),
            net_out_bytes=int(info["total_net_output_bytes"]),
            per_command=per_command,
            per_command_us=per_command_us,
            foreign_clients=sum(1 for c in clients if int(c.get("db", 0)) != self._db),
        )

    def delete_prefix(self, prefix: str) -> int:
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

    def close(self) -> None:
        """Close the probe's connection."""
        self._client.close()
