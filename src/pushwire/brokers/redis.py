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

Here: publishing, history and what a delivered message means. The link to Redis
is ``redis_link``; presence ``redis_presence``; surveys ``redis_survey`` (counting
``redis_nodes``); the periodic refresh ``redis_upkeep``; scripts ``redis_scripts``,
sent in batches by ``redis_pipe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from pushwire.brokers.redis_link import RedisLink
from pushwire.brokers.redis_nodes import NodeRegistry
from pushwire.brokers.redis_pipe import await_answer
from pushwire.brokers.redis_presence import RedisPresence
from pushwire.brokers.redis_scripts import PUBLISH, READ, ChannelKeys
from pushwire.brokers.redis_survey import RedisSurveys, survey_topics
from pushwire.brokers.redis_upkeep import RedisUpkeep
from pushwire.brokers.registry import BrokerSettings, redacted_url
from pushwire.core.broker import BrokerEvents, HistoryOptions
from pushwire.core.history import HistoryPage, Publication, StreamPosition, new_epoch
from pushwire.core.presence import Member
from pushwire.errors import BrokerUnavailableError, UsageError

__all__ = ["RedisBroker", "open_redis_broker"]

logger = logging.getLogger("pushwire.redis")

_EMPTY_STREAM_TTL_SECONDS = 600  # the epoch of a channel only read, never published to


def open_redis_broker(url: str, settings: BrokerSettings) -> RedisBroker:
    """The broker for ``redis://`` and ``rediss://`` URLs (comma-separated seeds for a cluster)."""
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
        node = secrets.token_hex(6)
        self._events: BrokerEvents | None = None
        self._closed = False
        self._channels: set[str] = set()  # what this node has subscribers on
        self._topics: dict[bytes, str] = {}  # pub/sub channel -> pushwire channel
        nodes = NodeRegistry(settings.prefix, node, ttl_seconds=settings.presence_ttl_seconds)
        self._question_topic, self._answer_topic = survey_topics(settings.prefix, node)
        self._link = RedisLink(
            url,
            settings,
            nodes=nodes,
            subscribed=self._topics.keys(),
            classic_topics=(self._question_topic, self._answer_topic),
            deliver=self._deliver,
            on_relinked=self._after_relink,
        )
        self._pipe = self._link.pipe  # (one pipe for good: it follows the link to a cluster)
        self._presence = RedisPresence(self._link, settings, node=node)
        self._surveys = RedisSurveys(self._link, nodes, prefix=settings.prefix, node=node)
        self._upkeep = RedisUpkeep(
            self._link, settings, presence=self._presence, nodes=nodes, subscribed=self._channels
        )

    @property
    def connected(self) -> bool:
        return self._link.connected

    # Life cycle.

    async def start(self, events: BrokerEvents) -> None:
        """Connect, or keep trying in the background: a node starts even while Redis is down."""
        self._events = events
        self._link.start()
        self._upkeep.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._link.wait_first_link(), self._settings.timeout_seconds)
        if self._link.misconfigured is not None:
            await self.close()
            raise self._link.misconfigured
        if not self._link.connected:
            logger.warning("redis at %s is not reachable yet; retrying", redacted_url(self._url))

    async def close(self) -> None:
        """Stop linking and refreshing; this node's members leave at once (if linked)."""
        self._closed = True
        self._events = None
        self._link.stop()
        self._upkeep.stop()
        self._surveys.stop()
        with contextlib.suppress(RedisError, OSError):
            await self._upkeep.withdraw()
        await self._link.close()

    # Publishing and history.

    def _now_arg(self) -> str:
        return "" if self._clock is None else repr(self._clock())

    def _ready(self) -> None:
        if self._events is None:
            raise UsageError("broker is not started" if not self._closed else "broker is closed")
        if not self._link.connected:
            raise BrokerUnavailableError("the node cannot reach Redis just now")

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
            self._link.mode,
        )
        epoch, offset, now = await await_answer(
            self._pipe.call(PUBLISH, (keys.meta, keys.stream), args), self._settings.timeout_seconds
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
        epoch_raw, top_raw, now_raw, entries, newest_first = await await_answer(
            self._pipe.call(READ, (keys.meta, keys.stream), args), self._settings.timeout_seconds
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
        await self._link.subscribe(topic)

    async def unsubscribe(self, channel: str) -> None:
        if channel not in self._channels:
            return
        self._channels.discard(channel)
        self._presence.unwatch(channel)
        topic = ChannelKeys.of(self._settings.prefix, channel).topic
        self._topics.pop(topic, None)
        await self._link.unsubscribe(topic)

    # Presence and surveys (see redis_presence, redis_survey).

    async def join(self, channel: str, member: Member) -> None:
        await self._presence.join(channel, member)

    async def leave(self, channel: str, user: str) -> None:
        await self._presence.leave(channel, user)

    async def members(self, channel: str) -> list[Member]:
        self._ready()
        return await self._presence.members(channel)

    async def survey(self, question: bytes) -> list[bytes]:
        self._ready()
        return await self._surveys.ask(question)

    # What the link hands over.

    def _deliver(self, topic: bytes, data: bytes) -> None:
        """A message on ``topic``: a survey's question or answer, or a channel's message."""
        if topic == self._question_topic:
            self._surveys.on_question(data, self._events)
        elif topic == self._answer_topic:
            self._surveys.on_answer(data)
        else:
            channel = self._topics.get(topic)
            events = self._events
            if channel is None or events is None:
                return
            kind = data[:1]
            if kind == b"p":
                events.on_publication(_decode_publication(channel, data))
            elif kind in (b"j", b"l"):
                self._presence.on_event(channel, data, events)

    def _after_relink(self) -> None:
        # Presence: what this node holds may have expired meanwhile; write it again.
        self._presence.rejoin_all()
        if self._events is not None:
            self._events.on_resubscribed()


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
