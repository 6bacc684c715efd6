"""The Redis broker on Redis Cluster: seed URLs, and sharded pub/sub across primaries.

Commands and scripts need nothing of their own here: redis-py's ``RedisCluster``
routes each by its key's slot (every key of a channel carries the hash tag
``{CHANNEL}``, so a script's keys share one slot), and its pipeline splits a batch
into one pipeline per primary, in order per node.

Sharded pub/sub is different. ``SSUBSCRIBE`` must reach the primary owning the
channel's slot, and redis-py's ``ClusterPubSub`` reads its per-node connections
by polling them in turn (a timeout per node, so latency or a busy loop) and
reconnects them silently, which would hide a gap. So ``ClusterSubscriber`` keeps
one pub/sub connection per primary with a reader task each, merges what they read
into one queue, and turns any trouble (a lost connection, a ``MOVED`` answer to a
subscribe, a slot taken away by resharding) into an error on that queue: the
broker then drops the whole link and relinks with back-off, re-reading the
cluster's layout, subscribing again and filling from history (a refill or a gap,
never silence), exactly as it does when a single Redis server goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisError

from pushwire.errors import UsageError

__all__ = ["ClusterSubscriber", "node_url", "seed_urls"]


def seed_urls(url: str) -> list[str]:
    """``redis://a:7000,b:7001/0`` as one URL per host (a single host: just ``[url]``).

    Extra hosts are seed nodes of a cluster: any one that answers tells where the
    others are. User and password, written once before the first host, go to all.
    """
    parts = urlsplit(url)
    credentials, at, hosts = parts.netloc.rpartition("@")
    if "," not in hosts:
        return [url]
    seeds = []
    for host in hosts.split(","):
        if not host:
            raise UsageError(f"an empty host in the broker URL {url!r}")
        netloc = f"{credentials}{at}{host}"
        seeds.append(urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")))
    return seeds


def node_url(url: str, host: str, port: int) -> str:
    """``url`` pointed at one cluster node (database 0: a cluster has no other)."""
    parts = urlsplit(url)
    credentials, at, _ = parts.netloc.rpartition("@")
    netloc = f"{credentials}{at}{host}:{port}"
    return urlunsplit((parts.scheme, netloc, "/0", parts.query, ""))


class ClusterSubscriber:
    """Pub/sub over every primary of a cluster, read as one stream of messages.

    It answers what the broker asks of a ``PubSub``: ``subscribe`` (classic topics,
    which Redis Cluster delivers cluster-wide, so one connection takes them),
    ``ssubscribe`` (each topic on the primary owning its slot), their unsubscribes,
    ``get_message`` and ``aclose``. A connection is kept to every primary, even one
    owning no subscribed channel, so that losing any part of the cluster is seen.
    """

    def __init__(
        self, cluster: RedisCluster, url: str, options: dict[str, Any], watch: bytes
    ) -> None:
        self._cluster = cluster
        self._url = url
        self._options = options
        self._watch = watch  # a classic topic never published: keeps each connection open
        self._clients: dict[str, Redis] = {}
        self._pubsubs: dict[str, PubSub] = {}
        self._home = ""  # the primary that takes the classic subscriptions
        self._where: dict[bytes, str] = {}  # sharded topic -> primary it is subscribed at
        # Our SUNSUBSCRIBEs not yet confirmed, per topic: any other is Redis's own.
        self._leaving: dict[bytes, int] = {}
        self._queue: asyncio.Queue[dict[str, Any] | BaseException] = asyncio.Queue()
        self._readers: list[asyncio.Task[None]] = []

    async def connect(self) -> None:
        """Learn the cluster's layout afresh and open a connection to each primary."""
        await self._cluster.nodes_manager.initialize()
        primaries = sorted(self._cluster.get_primaries(), key=lambda node: node.name)
        if not primaries:
            raise RedisError("the cluster lists no primary")
        for node in primaries:
            client = Redis.from_url(node_url(self._url, node.host, int(node.port)), **self._options)
            self._clients[node.name] = client
            pubsub = client.pubsub()
            self._pubsubs[node.name] = pubsub
            await pubsub.subscribe(self._watch)
            # Read the confirmation here, before the reader starts: the watch topic
            # is this module's own and none of the broker's business.
            for _ in range(100):
                message = await pubsub.get_message(timeout=1.0)
                if message is not None and message["type"] == "subscribe":
                    break
            else:
                raise RedisError(f"cluster node {node.name} did not confirm a subscription")
            # A primary just restarted may answer before it serves its slots again.
            ask = cast(Callable[..., Awaitable[dict[str, Any]]], client.execute_command)
            state = (await ask("CLUSTER INFO")).get("cluster_state")
            if state != "ok":
                raise RedisError(f"cluster node {node.name} says cluster_state:{state}")
        self._home = primaries[0].name
        for name, pubsub in self._pubsubs.items():
            reader = asyncio.get_running_loop().create_task(self._read(name, pubsub))
            self._readers.append(reader)

    async def subscribe(self, *topics: bytes) -> None:
        await self._pubsubs[self._home].subscribe(*topics)

    async def unsubscribe(self, *topics: bytes) -> None:
        await self._pubsubs[self._home].unsubscribe(*topics)

    async def ssubscribe(self, *topics: bytes) -> None:
        # SSUBSCRIBE takes several channels only of one slot (else CROSSSLOT).
        by_slot: defaultdict[int, list[bytes]] = defaultdict(list)
        for topic in topics:
            by_slot[key_slot(topic)].append(topic)
        for slot, same_slot in by_slot.items():
            owner = self._cluster.nodes_manager.slots_cache.get(slot)
            name = owner[0].name if owner else ""
            pubsub = self._pubsubs.get(name)
            if pubsub is None:
                # The layout changed under us: relink (which reads it again), never
                # leave a channel unsubscribed in silence.
                error = RedisError(f"slot {slot} has no linked primary ({name or 'none'})")
                self._queue.put_nowait(error)
                raise error
            for topic in same_slot:
                self._where[topic] = name
            await pubsub.ssubscribe(*same_slot)

    async def sunsubscribe(self, *topics: bytes) -> None:
        for topic in topics:
            name = self._where.pop(topic, None)
            if name is not None:
                self._leaving[topic] = self._leaving.get(topic, 0) + 1
                await self._pubsubs[name].sunsubscribe(topic)

    async def get_message(self, timeout: float | None) -> dict[str, Any] | None:  # noqa: ASYNC109  (the PubSub signature)
        """The next message from any primary; raises what broke a connection."""
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None
        if isinstance(item, BaseException):
            self._queue.put_nowait(item)  # whoever asks next learns it too
            raise item
        return item

    async def _read(self, name: str, pubsub: PubSub) -> None:
        try:
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                if message["type"] == "sunsubscribe":
                    topic = message["channel"]
                    pending = self._leaving.pop(topic, 0)
                    if pending > 1:
                        self._leaving[topic] = pending - 1
                    if pending:
                        continue
                    if topic in self._where:
                        # Not asked for: the slot moved (resharding, failover).
                        raise RedisError(f"cluster node {name} dropped {topic!r}: slot moved")
                self._queue.put_nowait(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._queue.put_nowait(exc)

    async def aclose(self) -> None:
        for reader in self._readers:
            reader.cancel()
        for reader in self._readers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        for pubsub in self._pubsubs.values():
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()
        self._readers.clear()
        self._pubsubs.clear()
        self._clients.clear()
