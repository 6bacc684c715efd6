"""RedisBroker: many nodes as one server, over Redis (``--broker redis://HOST:6379/0``).

- Fan-out: each channel is a Redis pub/sub channel (sharded pub/sub, ``SPUBLISH``,
  on Redis 7+); a node subscribes to the channels it has subscribers on.
- History: a stream per channel (``XADD ... MAXLEN size``) beside a hash with the
  epoch and top offset, written by one Lua script together with the publish
  (see ``redis_scripts``), so a publication is in history exactly when it was sent.
  The stream expires after the channel's history TTL, the hash after
  ``history_meta_ttl_seconds`` without a publication (refreshed while a node has
  subscribers), so abandoned channels do not grow Redis for ever.
- Presence: per channel, a hash of (user, node) entries with an expiry each (a
  sorted set), refreshed by the node holding the connections every third of
  ``presence_ttl_seconds``; a crashed node's users expire and leave.
- Surveys (``/api/channels``, disconnects): a question published to every node,
  answers collected from as many nodes as the node registry lists as live.

Losing Redis: publishes fail at once (``broker_unavailable``), clients stay
connected; the subscriber connection reconnects with back-off, subscribes to
everything again, and the node fills from history what it missed.

Redis Cluster: the same URL (or several seed hosts, ``redis://a:7000,b:7001``);
the broker asks the server (``INFO``: ``cluster_enabled:1``) and then works
through ``RedisCluster`` and a pub/sub connection per primary (``redis_cluster``).
The cluster is one broker to a node: losing any primary is losing the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from redis.retry import Retry

from pushwire.brokers.redis_cluster import ClusterSubscriber, seed_urls
from pushwire.brokers.redis_pipe import ScriptPipe
from pushwire.brokers.redis_scripts import JOIN, LEAVE, MEMBERS, PUBLISH, READ, ChannelKeys
from pushwire.brokers.registry import BrokerSettings, redacted_url
from pushwire.core.broker import BrokerEvents, HistoryOptions
from pushwire.core.history import HistoryPage, Publication, StreamPosition, new_epoch
from pushwire.core.presence import Member
from pushwire.errors import BrokerUnavailableError, UsageError

__all__ = ["RedisBroker", "open_redis_broker"]

logger = logging.getLogger("pushwire.redis")

_BACKOFF_FIRST_SECONDS = 0.1
_BACKOFF_MAX_SECONDS = 5.0
_SURVEY_SECONDS = 1.0  # how long a survey waits for nodes that do not answer
_EMPTY_STREAM_TTL_SECONDS = 600  # the epoch of a channel only read, never published to


_Subscriber = PubSub | ClusterSubscriber


def open_redis_broker(url: str, settings: BrokerSettings) -> RedisBroker:
    return RedisBroker(url, settings)


class RedisBroker:
    """A broker over one Redis server or a Redis Cluster (found out when it connects)."""

    name = "redis"

    def __init__(
        self, url: str, settings: BrokerSettings, *, clock: Callable[[], float] | None = None
    ) -> None:
        self._url = url
        self._settings = settings
        self._clock = clock
        self._node = secrets.token_hex(6)
        self._seeds = seed_urls(url)
        options: dict[str, Any] = {
            "retry": Retry(NoBackoff(), 0),  # never silently: a lost link is for us to see
            "socket_timeout": settings.timeout_seconds,
            "socket_connect_timeout": min(settings.timeout_seconds, 2.0),
            "socket_keepalive": True,
        }
        self._options = options
        self._client: Redis | RedisCluster = Redis.from_url(self._seeds[0], **options)
        self._listen_client = Redis.from_url(self._seeds[0], **{**options, "socket_timeout": None})
        self._pipe = ScriptPipe(self._client)
        self._mode = "p"  # "s" once the server is known to have sharded pub/sub
        self._cluster: RedisCluster | None = None  # once the server says it is one
        self._probed = False
        self._misconfigured: UsageError | None = None
        self._events: BrokerEvents | None = None
        self._closed = False
        self._connected = False
        self._channels: set[str] = set()  # what this node has subscribers on
        self._topics: dict[bytes, str] = {}  # pub/sub channel -> pushwire channel
        self._confirming: dict[bytes, asyncio.Future[None]] = {}
        self._pubsub: _Subscriber | None = None
        self._held: dict[tuple[str, str], bytes] = {}  # (channel, user) -> entry payload
        self._presence_channels: set[str] = set()  # channels whose stale members we sweep
        self._surveys: dict[str, tuple[list[bytes], asyncio.Event]] = {}
        self._survey_topic = f"{settings.prefix}:survey".encode()
        self._reply_topic = f"{settings.prefix}:reply:{self._node}".encode()
        self._nodes_key = f"{settings.prefix}:nodes".encode()
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._first_link = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._connected

    # Life cycle.

    async def start(self, events: BrokerEvents) -> None:
        """Connect, or keep trying in the background: a node starts even while Redis is down."""
        self._events = events
        self._listener = asyncio.get_running_loop().create_task(self._listen_forever())
        self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_link.wait(), self._settings.timeout_seconds)
        if self._misconfigured is not None:
            await self.close()
            raise self._misconfigured
        if not self._connected:
            logger.warning("redis at %s is not reachable yet; retrying", redacted_url(self._url))

    async def close(self) -> None:
        self._closed = True
        self._events = None
        for task in (self._listener, self._ticker, *self._tasks):
            if task is not None:
                task.cancel()
        with contextlib.suppress(RedisError, OSError):
            await self._leave_everything()
        self._pipe.close()
        for client in (self._client, self._listen_client):
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()
        self._connected = False

    # Publishing and history.

    def _now_arg(self) -> str:
        return "" if self._clock is None else repr(self._clock())

    def _ready(self) -> None:
        if self._events is None:
            raise UsageError("broker is not started" if not self._closed else "broker is closed")
        if not self._connected:
            raise BrokerUnavailableError("the node cannot reach Redis just now")

    async def _run(self, future: asyncio.Future[Any]) -> Any:
        try:
            return await asyncio.wait_for(future, self._settings.timeout_seconds)
        except (RedisError, OSError, TimeoutError) as exc:
            raise BrokerUnavailableError(f"Redis did not answer: {exc}") from None

    async def publish(
        self,
        channel: str,
        data: bytes,
        *,
        event: str | None,
        options: HistoryOptions,
        publisher: bytes | None = None,
    ) -> Publication:
        self._ready()
        keys = ChannelKeys.of(self._settings.prefix, channel)
        args = (
            keys.topic,
            data,
            event or "",
            publisher or b"",
            max(options.size, 0),
            max(int(options.ttl_seconds + 0.999), 1),
            max(int(self._settings.history_meta_ttl_seconds), 1),
            new_epoch(),
            self._now_arg(),
            self._mode,
        )
        epoch, offset, now = await self._run(
            self._pipe.call(PUBLISH, (keys.meta, keys.stream), args)
        )
        return Publication(
            channel,
            StreamPosition(epoch.decode(), int(offset)),
            data,
            event,
            float(now),
            publisher,
        )

    async def history(
        self,
        channel: str,
        *,
        since: StreamPosition | None,
        limit: int,
        options: HistoryOptions,
    ) -> HistoryPage:
        self._ready()
        keys = ChannelKeys.of(self._settings.prefix, channel)
        size = max(options.size, 0)
        wanted = min(limit, size)
        args = (
            "" if since is None else since.offset,
            wanted,
            new_epoch(),
            _EMPTY_STREAM_TTL_SECONDS,
            self._now_arg(),
        )
        epoch_raw, top_raw, now_raw, entries, newest_first = await self._run(
            self._pipe.call(READ, (keys.meta, keys.stream), args)
        )
        epoch = epoch_raw.decode()
        top = StreamPosition(epoch, int(top_raw))
        if wanted <= 0 or (since is not None and since.epoch != epoch):
            return HistoryPage((), top)
        oldest_allowed = float(now_raw) - options.ttl_seconds
        lowest = top.offset - size  # the stream may hold more than this rule's size
        publications = []
        for entry_id, fields in reversed(entries) if newest_first else entries:
            offset = int(entry_id.split(b"-", 1)[0])
            publication = _from_entry(channel, epoch, offset, fields)
            if offset > lowest and publication.time >= oldest_allowed:
                publications.append(publication)
        return HistoryPage(tuple(publications), top)

    # Subscribing.

    async def subscribe(self, channel: str) -> None:
        if channel in self._channels:
            return
        self._channels.add(channel)
        topic = ChannelKeys.of(self._settings.prefix, channel).topic
        self._topics[topic] = channel
        pubsub = self._pubsub
        if pubsub is None or not self._connected:
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

    async def unsubscribe(self, channel: str) -> None:
        if channel not in self._channels:
            return
        self._channels.discard(channel)
        self._presence_channels.discard(channel)
        topic = ChannelKeys.of(self._settings.prefix, channel).topic
        self._topics.pop(topic, None)
        pubsub = self._pubsub
        if pubsub is not None and self._connected:
            with contextlib.suppress(RedisError, OSError):
                if self._mode == "s":
                    await pubsub.sunsubscribe(topic)
                else:
                    await pubsub.unsubscribe(topic)

    async def _subscribe_topics(self, pubsub: _Subscriber, topics: list[bytes]) -> None:
        for start in range(0, len(topics), 1000):
            part = topics[start : start + 1000]
            if self._mode == "s":
                await pubsub.ssubscribe(*part)
            else:
                await pubsub.subscribe(*part)

    # Presence.

    async def join(self, channel: str, member: Member) -> None:
        payload = orjson.dumps(
            {"user": member.user, "info": member.info, "connections": member.connections}
        )
        self._held[(channel, member.user)] = payload
        self._presence_channels.add(channel)
        if self._connected:
            await self._run(self._join_call(channel, member.user, payload))

    def _join_call(self, channel: str, user: str, payload: bytes) -> asyncio.Future[Any]:
        keys = ChannelKeys.of(self._settings.prefix, channel)
        args = (
            f"{user}\0{self._node}",
            payload,
            user,
            self._settings.presence_ttl_seconds,
            keys.topic,
            self._mode,
        )
        return self._pipe.call(JOIN, keys.presence, args)

    async def leave(self, channel: str, user: str) -> None:
        if self._held.pop((channel, user), None) is None:
            return
        if self._connected:
            await self._run(self._leave_call(channel, user))

    def _leave_call(self, channel: str, user: str) -> asyncio.Future[Any]:
        keys = ChannelKeys.of(self._settings.prefix, channel)
        args = (f"{user}\0{self._node}", user, keys.topic, self._mode)
        return self._pipe.call(LEAVE, keys.presence, args)

    async def members(self, channel: str) -> list[Member]:
        self._ready()
        keys = ChannelKeys.of(self._settings.prefix, channel)
        payloads = await self._run(
            self._pipe.call(MEMBERS, keys.presence, (keys.topic, self._mode))
        )
        merged: dict[str, Member] = {}
        for payload in payloads:
            entry = orjson.loads(payload)
            user = entry["user"]
            known = merged.get(user)
            connections = entry["connections"] + (0 if known is None else known.connections)
            merged[user] = Member(user, entry["info"], connections)
        return [merged[user] for user in sorted(merged)]

    async def _leave_everything(self) -> None:
        """On a clean stop this node's members leave at once, not after the TTL."""
        held, self._held = self._held, {}
        if not self._connected:
            return  # (calls queued now would only fail, unread, when the pipe closes)
        calls = [self._leave_call(channel, user) for channel, user in held]
        calls.append(self._pipe.call_command("ZREM", self._nodes_key, self._node))
        if calls:
            await asyncio.wait_for(
                asyncio.gather(*calls, return_exceptions=True), self._settings.timeout_seconds
            )

    # Surveys.

    async def survey(self, question: bytes) -> list[bytes]:
        self._ready()
        now = time.time()
        with contextlib.suppress(RedisError):
            await self._client.zremrangebyscore(self._nodes_key, "-inf", now)
        try:
            live = int(await self._client.zcard(self._nodes_key))
        except (RedisError, OSError) as exc:
            raise BrokerUnavailableError(f"Redis did not answer: {exc}") from None
        ask = secrets.token_hex(8)
        answers: list[bytes] = []
        done = asyncio.Event()
        self._surveys[ask] = (answers, done)
        try:
            message = self._node.encode() + b" " + ask.encode() + b" " + question
            try:
                await self._client.publish(self._survey_topic, message)
            except (RedisError, OSError) as exc:
                raise BrokerUnavailableError(f"Redis did not answer: {exc}") from None
            expected = max(live, 1)
            deadline = asyncio.get_running_loop().time() + _SURVEY_SECONDS
            while len(answers) < expected:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                done.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), remaining)
            return list(answers)
        finally:
            del self._surveys[ask]

    def _answer(self, message: bytes) -> None:
        events = self._events
        if events is None:
            return
        asker, ask, question = message.split(b" ", 2)
        try:
            answer = events.on_survey(question)
        except Exception:
            logger.warning("cannot answer a survey", exc_info=True)
            return
        topic = f"{self._settings.prefix}:reply:{asker.decode()}".encode()
        self._spawn(self._reply(topic, ask + b" " + answer))

    async def _reply(self, topic: bytes, message: bytes) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._client.publish(topic, message)

    def _answered(self, message: bytes) -> None:
        ask, answer = message.split(b" ", 1)
        survey = self._surveys.get(ask.decode())
        if survey is not None:
            survey[0].append(answer)
            survey[1].set()

    # The subscriber link: deliveries, and what reconnecting means.

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
                    await self._after_relink()
                linked_before = True
                await self._deliver_until_lost(pubsub)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self._misconfigured is None and (self._connected or not linked_before):
                    logger.warning("redis link lost (%s); reconnecting", exc)
            finally:
                self._connected = False
                self._pubsub = None
                for future in self._confirming.values():
                    if not future.done():
                        future.set_exception(RedisError("link lost"))
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
            if self._misconfigured is not None:
                logger.error("%s", self._misconfigured)
                self._first_link.set()  # start() raises it
                return
            await asyncio.sleep(delay)  # (close() cancels this task: no need to look)
            delay = min(delay * 2, _BACKOFF_MAX_SECONDS)

    async def _probe(self) -> None:
        """Learn what the server is (a version; one server or a cluster), once."""
        if self._probed:
            return
        info: dict[str, Any] = {}
        for number, seed in enumerate(self._seeds):
            client = self._client if number == 0 else Redis.from_url(seed, **self._options)
            try:
                info = await client.info()
                break
            except ResponseError as exc:
                if "SELECT is not allowed in cluster mode" in str(exc):
                    self._misconfigured = _cluster_database_error(self._url)
                raise
            except (RedisError, OSError):
                if number == len(self._seeds) - 1:
                    raise
            finally:
                if client is not self._client:
                    await client.aclose()
        version = tuple(int(part) for part in str(info.get("redis_version", "0")).split(".")[:2])
        self._mode = "s" if version >= (7, 0) else "p"
        if int(info.get("cluster_enabled", 0)) == 1:
            await self._become_cluster()
        elif len(self._seeds) > 1:
            self._misconfigured = UsageError(
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
            self._misconfigured = _cluster_database_error(self._url)
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
        old, self._client = self._client, cluster
        self._cluster = cluster
        self._pipe.use(cluster)
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
        """Connect, learn what the server can do, and subscribe to every channel again."""
        if self._cluster is None:
            info = await self._client.info("server")
            version = tuple(
                int(part) for part in str(info.get("redis_version", "0")).split(".")[:2]
            )
            self._mode = "s" if version >= (7, 0) else "p"
        await self._pipe.load()
        await self._register_node()
        await pubsub.subscribe(self._survey_topic, self._reply_topic)
        pending = {self._survey_topic, self._reply_topic}
        await self._confirm(pubsub, pending)
        # Channels subscribed meanwhile were only noted (no link yet): take them too,
        # until a round finds none new. Nothing awaits between the last round and
        # marking the link up, so no subscribe can slip between.
        done: set[bytes] = set()
        while new := [topic for topic in self._topics if topic not in done]:
            await self._subscribe_topics(pubsub, new)
            await self._confirm(pubsub, set(new))
            done.update(new)
        self._pubsub = pubsub
        self._connected = True
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

    async def _after_relink(self) -> None:
        # Presence: what this node holds may have expired meanwhile; write it again.
        for (channel, user), payload in list(self._held.items()):
            self._join_call(channel, user, payload).add_done_callback(_ignore_result)
        if self._events is not None:
            self._events.on_resubscribed()

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
            if topic == self._survey_topic:
                self._answer(data)
            elif topic == self._reply_topic:
                self._answered(data)
            else:
                self._on_channel_message(topic, data)
        except Exception:
            logger.warning("a message from redis on %r could not be read", topic, exc_info=True)

    def _on_channel_message(self, topic: bytes, data: bytes) -> None:
        channel = self._topics.get(topic)
        events = self._events
        if channel is None or events is None:
            return
        kind = data[:1]
        if kind == b"p":
            events.on_publication(_decode_publication(channel, data))
        elif kind in (b"j", b"l"):
            entry = orjson.loads(data[1:])
            self._presence_channels.add(channel)
            if kind == b"j":
                events.on_join(channel, entry["user"], entry["info"])
            else:
                events.on_leave(channel, entry["user"], entry["info"])

    # Every third of the presence TTL: refresh what this node holds, sweep the stale.

    async def _tick_forever(self) -> None:
        interval = self._settings.presence_ttl_seconds / 3
        while not self._closed:
            await asyncio.sleep(interval)
            if not self._connected:
                continue
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                logger.info("refreshing presence at redis failed (%s); retrying", exc)

    async def _tick(self) -> None:
        calls = [self._join_call(c, u, payload) for (c, u), payload in list(self._held.items())]
        for channel in list(self._presence_channels & self._channels):
            keys = ChannelKeys.of(self._settings.prefix, channel)
            calls.append(self._pipe.call(MEMBERS, keys.presence, (keys.topic, self._mode)))
        meta_ttl = max(int(self._settings.history_meta_ttl_seconds), 1)
        for channel in list(self._channels):
            # A channel with subscribers keeps its epoch, however long it is quiet.
            meta = ChannelKeys.of(self._settings.prefix, channel).meta
            calls.append(self._pipe.call_command("EXPIRE", meta, meta_ttl, "XX"))
        calls.append(self._register_call())
        await asyncio.wait_for(
            asyncio.gather(*calls, return_exceptions=True), self._settings.timeout_seconds * 2
        )

    def _register_call(self) -> asyncio.Future[Any]:
        expires = time.time() + self._settings.presence_ttl_seconds
        return self._pipe.call_command("ZADD", self._nodes_key, expires, self._node)

    async def _register_node(self) -> None:
        await self._client.zadd(
            self._nodes_key, {self._node: time.time() + self._settings.presence_ttl_seconds}
        )

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _cluster_database_error(url: str) -> UsageError:
    return UsageError(
        f"the broker URL {redacted_url(url)} names a database other than 0, "
        "but Redis Cluster has only database 0: end the URL with /0 or no path"
    )


def _decode_publication(channel: str, data: bytes) -> Publication:
    """Read what the publish script sent: see ``redis_scripts.PUBLISH``."""
    epoch, offset, when, event_length, publisher_length, rest = data[1:].split(b" ", 5)
    event_end = int(event_length)
    publisher_end = event_end + int(publisher_length)
    return Publication(
        channel,
        StreamPosition(epoch.decode(), int(offset)),
        rest[publisher_end:],
        rest[:event_end].decode() or None,
        float(when),
        rest[event_end:publisher_end] or None,
    )


def _from_entry(channel: str, epoch: str, offset: int, fields: Any) -> Publication:
    """One stream entry (as XRANGE in a script gives it: a flat list of names and values)."""
    values: dict[bytes, bytes] = (
        dict(zip(fields[::2], fields[1::2], strict=True)) if isinstance(fields, list) else fields
    )
    return Publication(
        channel,
        StreamPosition(epoch, offset),
        values[b"d"],
        values[b"e"].decode() or None,
        float(values[b"t"]),
        values[b"p"] or None,
    )


def _ignore_result(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
