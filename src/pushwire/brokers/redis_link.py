"""The Redis broker's link to Redis: what the server is, and the subscriber connection.

``RedisLink`` learns once what the URL leads to (a version: sharded pub/sub from
7.0; one server or a cluster, then commands go through ``RedisCluster``), keeps
the client and the script pipe every other part sends through, and keeps one
pub/sub connection up: subscribed to every topic the broker wants, relinked with
back-off when it is lost. What a message means is the broker's business, not this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from redis.retry import Retry

from pushwire.brokers.redis_cluster import ClusterSubscriber, seed_urls
from pushwire.brokers.redis_nodes import NodeRegistry
from pushwire.brokers.redis_pipe import ScriptPipe
from pushwire.brokers.registry import BrokerSettings, redacted_url
from pushwire.errors import UsageError

__all__ = ["RedisLink"]

logger = logging.getLogger("pushwire.redis")

_BACKOFF_FIRST_SECONDS = 0.1
_BACKOFF_MAX_SECONDS = 5.0

_Subscriber = PubSub | ClusterSubscriber


class RedisLink:
    """The connection to one Redis server or a Redis Cluster, kept up until stopped.

    ``subscribed`` is the broker's live view of the channel topics it wants; on
    every link they are all subscribed again (``SSUBSCRIBE`` when the server has
    sharded pub/sub), and ``classic_topics`` by plain ``SUBSCRIBE``, after the
    scripts are loaded and this node registered in ``nodes``. Every message
    read goes to ``deliver(topic, data)``; after a relink (not the first link),
    ``on_relinked()`` is called: anything published meanwhile reached no node.
    """

    def __init__(
        self,
        url: str,
        settings: BrokerSettings,
        *,
        nodes: NodeRegistry,
        subscribed: Collection[bytes],
        classic_topics: tuple[bytes, ...],
        deliver: Callable[[bytes, bytes], None],
        on_relinked: Callable[[], None],
    ) -> None:
        self._url = url
        self._settings = settings
        self._nodes = nodes
        self._subscribed = subscribed
        self._classic_topics = classic_topics
        self._deliver = deliver
        self._on_relinked = on_relinked
        self._seeds = seed_urls(url)
        options: dict[str, Any] = {
            "retry": Retry(NoBackoff(), 0),  # never silently: a lost link is for us to see
            "socket_timeout": settings.timeout_seconds,
            "socket_connect_timeout": min(settings.timeout_seconds, 2.0),
            "socket_keepalive": True,
        }
        self._options = options
        #: Commands go through this: a ``RedisCluster`` once the server says it is one.
        self.client: Redis | RedisCluster = Redis.from_url(self._seeds[0], **options)
        self._listen_client = Redis.from_url(self._seeds[0], **{**options, "socket_timeout": None})
        #: Scripts go through this, over :attr:`client`.
        self.pipe = ScriptPipe(self.client)
        #: The scripts' and subscribes' pub/sub: ``"s"`` once the server is known to
        #: have sharded pub/sub (Redis 7+), else ``"p"``.
        self.mode = "p"
        #: Whether the link is up: subscribed to everything, commands may be sent.
        self.connected = False
        #: A URL that can never work (found when probing): the broker raises it.
        self.misconfigured: UsageError | None = None
        self._cluster: RedisCluster | None = None  # once the server says it is one
        self._probed = False
        self._closed = False
        self._confirming: dict[bytes, asyncio.Future[None]] = {}
        self._pubsub: _Subscriber | None = None
        self._listener: asyncio.Task[None] | None = None
        self._first_link = asyncio.Event()

    # Life cycle.

    def start(self) -> None:
        """Link in the background, and relink whenever the link is lost, until stopped."""
        self._listener = asyncio.get_running_loop().create_task(self._listen_forever())

    async def wait_first_link(self) -> None:
        """Until the link is first up, or the URL is found to be misconfigured."""
        await self._first_link.wait()

    def stop(self) -> None:
        """Stop relinking; the link goes down at the listener's next await."""
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()

    async def close(self) -> None:
        """Fail what the pipe still holds and close the connections (after :meth:`stop`)."""
        self.pipe.close()
        for client in (self.client, self._listen_client):
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()
        self.connected = False

    # Subscribing.

    async def subscribe(self, topic: bytes) -> None:
        """Subscribe to ``topic`` now, if linked, and wait until Redis confirmed it.

        Unlinked, or if the link fails meanwhile, this returns at once: the next
        link subscribes to everything in ``subscribed``.
        """
        pubsub = self._pubsub
        if pubsub is None or not self.connected:
            return  # subscribed with everything else when the link is back
        confirmed = self._confirming[topic] = asyncio.get_running_loop().create_future()
        try:
            await self._subscribe_topics(pubsub, [topic])
            # Only once Redis has said so is every later publication sure to come here.
            await asyncio.wait_for(asyncio.shield(confirmed), self._settings.timeout_seconds)
        except (RedisError, OSError, TimeoutError):
            pass  # the link is failing: the listener subscribes again when it is back
        finally:
            self._confirming.pop(topic, None)

    async def unsubscribe(self, topic: bytes) -> None:
        """Unsubscribe from ``topic`` if linked (an unlinked one is not subscribed again)."""
        pubsub = self._pubsub
        if pubsub is not None and self.connected:
            with contextlib.suppress(RedisError, OSError):
                if self.mode == "s":
                    await pubsub.sunsubscribe(topic)
                else:
                    await pubsub.unsubscribe(topic)

    async def _subscribe_topics(self, pubsub: _Subscriber, topics: list[bytes]) -> None:
        for start in range(0, len(topics), 1000):
            part = topics[start : start + 1000]
            if self.mode == "s":
                await pubsub.ssubscribe(*part)
            else:
                await pubsub.subscribe(*part)

    # Linking, and what reconnecting means.

    async def _listen_forever(self) -> None:
        delay = _BACKOFF_FIRST_SECONDS
        linked_before = False
        while not self._closed:
            pubsub: _Subscriber | None = None
            try:
                await self._probe()
                pubsub = await self._open_pubsub()
                await self._link(pubsub)
                delay = _BACKOFF_FIRST_SECONDS
                if linked_before:
                    logger.warning("redis link restored; filling from history what was missed")
                    self._on_relinked()
                linked_before = True
                await self._deliver_until_lost(pubsub)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self.misconfigured is None and (self.connected or not linked_before):
                    logger.warning("redis link lost (%s); reconnecting", exc)
            finally:
                self.connected = False
                self._pubsub = None
                for future in self._confirming.values():
                    if not future.done():
                        future.set_exception(RedisError("link lost"))
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
            if self.misconfigured is not None:
                logger.error("%s", self.misconfigured)
                self._first_link.set()  # start() raises it
                return
            await asyncio.sleep(delay)  # (stop() cancels this task: no need to look)
            delay = min(delay * 2, _BACKOFF_MAX_SECONDS)

    async def _probe(self) -> None:
        """Learn what the server is (a version; one server or a cluster), once."""
        if self._probed:
            return
        info: dict[str, Any] = {}
        for number, seed in enumerate(self._seeds):
            client = self.client if number == 0 else Redis.from_url(seed, **self._options)
            try:
                info = await client.info()
                break
            except ResponseError as exc:
                if "SELECT is not allowed in cluster mode" in str(exc):
                    self.misconfigured = _cluster_database_error(self._url)
                raise
            except (RedisError, OSError):
                if number == len(self._seeds) - 1:
                    raise
            finally:
                if client is not self.client:
                    await client.aclose()
        self.mode = _pubsub_mode(info)
        if int(info.get("cluster_enabled", 0)) == 1:
            await self._become_cluster()
        elif len(self._seeds) > 1:
            self.misconfigured = UsageError(
                f"the broker URL {redacted_url(self._url)} names several hosts, "
                "but Redis there is not a cluster (cluster_enabled:0)"
            )
            raise RedisError("misconfigured")
        self._probed = True

    async def _become_cluster(self) -> None:
        """From now on, commands go through ``RedisCluster`` and pub/sub per primary."""
        seed: dict[str, Any] = self._listen_client.connection_pool.connection_kwargs
        db = seed.get("db") or 0
        if int(db) != 0:
            self.misconfigured = _cluster_database_error(self._url)
            raise RedisError("misconfigured")
        nodes = []
        for url in self._seeds:
            parts = urlsplit(url)
            nodes.append(ClusterNode(parts.hostname or "127.0.0.1", parts.port or 6379))
        keep = ("username", "password", "ssl_ca_certs", "ssl_cert_reqs", "ssl_certfile")
        credentials = {name: seed[name] for name in keep if seed.get(name) is not None}
        if urlsplit(self._url).scheme == "rediss":
            credentials["ssl"] = True  # (from_url says so by a connection class instead)
        cluster = RedisCluster(startup_nodes=nodes, **self._options, **credentials)
        try:
            await cluster.initialize()
        except BaseException:
            with contextlib.suppress(Exception):
                await cluster.aclose()
            raise
        old, self.client = self.client, cluster
        self._cluster = cluster
        self.pipe.use(cluster)
        with contextlib.suppress(RedisError, OSError):
            await old.aclose()
        logger.info(
            "redis at %s is a cluster of %d primaries",
            redacted_url(self._url),
            len(cluster.get_primaries()),
        )

    async def _open_pubsub(self) -> _Subscriber:
        if self._cluster is None:
            return self._listen_client.pubsub()
        watch = f"{self._settings.prefix}:watch".encode()
        options = {**self._options, "socket_timeout": None}
        subscriber = ClusterSubscriber(self._cluster, self._seeds[0], options, watch)
        try:
            await subscriber.connect()
        except BaseException:
            await subscriber.aclose()
            raise
        return subscriber

    async def _link(self, pubsub: _Subscriber) -> None:
        """Connect, learn what the server can do, and subscribe to every topic again."""
        if self._cluster is None:
            self.mode = _pubsub_mode(await self.client.info("server"))
        await self.pipe.load()
        await self._nodes.register(self.client)
        await pubsub.subscribe(*self._classic_topics)
        pending = set(self._classic_topics)
        await self._confirm(pubsub, pending)
        # Channels subscribed meanwhile were only noted (no link yet): take them too,
        # until a round finds none new. Nothing awaits between the last round and
        # marking the link up, so no subscribe can slip between.
        done: set[bytes] = set()
        while new := [topic for topic in self._subscribed if topic not in done]:
            await self._subscribe_topics(pubsub, new)
            await self._confirm(pubsub, set(new))
            done.update(new)
        self._pubsub = pubsub
        self.connected = True
        self._first_link.set()

    async def _confirm(self, pubsub: _Subscriber, pending: set[bytes]) -> None:
        """Read until Redis confirmed every topic in ``pending``: only then is nothing missed."""
        deadline = asyncio.get_running_loop().time() + self._settings.timeout_seconds * 4
        while pending:
            if asyncio.get_running_loop().time() > deadline:
                raise RedisError("subscriptions were not confirmed in time")
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            if message["type"] in ("subscribe", "ssubscribe"):
                pending.discard(message["channel"])
            else:
                self._on_message(message)

    async def _deliver_until_lost(self, pubsub: _Subscriber) -> None:
        while not self._closed:
            message = await pubsub.get_message(timeout=None)
            if message is not None:
                self._on_message(message)

    def _on_message(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind in ("subscribe", "ssubscribe"):
            future = self._confirming.get(message["channel"])
            if future is not None and not future.done():
                future.set_result(None)
            return
        if kind not in ("message", "smessage"):
            return
        topic, data = message["channel"], message["data"]
        try:
            self._deliver(topic, data)
        except Exception:
            logger.warning("a message from redis on %r could not be read", topic, exc_info=True)


def _pubsub_mode(info: dict[str, Any]) -> str:
    """``"s"`` (sharded pub/sub) for Redis 7.0 and later, else ``"p"``."""
    version = tuple(int(part) for part in str(info.get("redis_version", "0")).split(".")[:2])
    return "s" if version >= (7, 0) else "p"


def _cluster_database_error(url: str) -> UsageError:
    return UsageError(
        f"the broker URL {redacted_url(url)} names a database other than 0, "
        "but Redis Cluster has only database 0: end the URL with /0 or no path"
    )
