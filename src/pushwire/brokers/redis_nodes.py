"""The Redis broker's registry of live nodes: how many answers a survey waits for.

One sorted set, ``PREFIX:nodes``: each node's id, scored by the time its entry
expires. A node registers when it links, refreshes its entry while it runs and
removes it on a clean stop; a crashed node's entry expires. Times are the
nodes' own clocks (``time.time()``), not Redis's.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from pushwire.brokers.redis_pipe import ScriptPipe

__all__ = ["NodeRegistry"]


class NodeRegistry:
    """This node's entry in the registry, and the count of every live node's."""

    def __init__(self, prefix: str, node: str, *, ttl_seconds: float) -> None:
        self._key = f"{prefix}:nodes".encode()
        self._node = node
        self._ttl_seconds = ttl_seconds

    async def register(self, client: Redis | RedisCluster) -> None:
        """Add (or renew) this node's entry at once, outside the pipe (on every link)."""
        await client.zadd(self._key, {self._node: time.time() + self._ttl_seconds})

    def refresh(self, pipe: ScriptPipe) -> asyncio.Future[Any]:
        """Queue the renewal of this node's entry, in order with the pipe's other calls."""
        return pipe.call_command("ZADD", self._key, time.time() + self._ttl_seconds, self._node)

    def unregister(self, pipe: ScriptPipe) -> asyncio.Future[Any]:
        """Queue the removal of this node's entry (a clean stop)."""
        return pipe.call_command("ZREM", self._key, self._node)

    async def forget_expired(self, client: Redis | RedisCluster) -> None:
        """Remove the entries of nodes that stopped refreshing them (crashed)."""
        await client.zremrangebyscore(self._key, "-inf", time.time())

    async def count(self, client: Redis | RedisCluster) -> int:
        """How many nodes the registry lists (call :meth:`forget_expired` first)."""
        return int(await client.zcard(self._key))
