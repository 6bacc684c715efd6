"""NatsBroker: fan-out over core NATS, history in one JetStream stream, presence in KV.

``--broker nats://HOST:4222`` (extra: ``pushwire[nats]``). This module and its
siblings ``nats_history``, ``nats_presence`` and ``nats_jetstream`` are the only
ones that import nats-py, and the registry imports them only for a NATS URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.client import JetStreamContext

from pushwire.brokers.nats_history import NatsHistory
from pushwire.brokers.nats_jetstream import NatsNames, reach_nats
from pushwire.brokers.nats_presence import NatsPresence
from pushwire.brokers.registry import BrokerSettings
from pushwire.core.broker import Broker, BrokerEvents, HistoryOptions
from pushwire.core.history import HistoryPage, Publication, StreamPosition
from pushwire.core.presence import Member
from pushwire.errors import BrokerUnavailableError, UsageError

__all__ = ["NatsBroker", "open_nats_broker"]

logger = logging.getLogger("pushwire.brokers.nats")

# Surveys: who asks (a node answers its own question directly), and a failed answer.
_NODE = "Pushwire-Node"
_FAILED = "Pushwire-Failed"
_SURVEY_WAIT_SECONDS = 0.5
# nats-py tries again every this many seconds (plus jitter) while the server is away.
_RECONNECT_WAIT_SECONDS = 1
# A dead link (no TCP reset) is noticed after two unanswered pings.
_PING_INTERVAL_SECONDS = 5


def open_nats_broker(url: str, settings: BrokerSettings) -> Broker:
    """The broker for ``nats://`` and ``tls://`` URLs (comma-separated for a cluster)."""
    return NatsBroker(url, settings)


class NatsBroker:
    """Nodes sharing a NATS server (or cluster) with JetStream, under one prefix ``P``.

    Subjects, with ``C`` a channel name in base64url (one subject token):

    - ``P.h.C``, in stream ``P_history``: the channel's history (see
      :class:`~pushwire.brokers.nats_history.NatsHistory`: offsets, epochs, time).
    - ``P.c.C.p``: what the stream stored, republished by the stream itself; and
      ``P.c.C.e``: presence events. A node with subscribers on ``C`` listens on ``P.c.C.*``.
    - ``P.survey``: questions to every node; ``P.hello``: a node starting.

    Buckets ``P_presence`` and ``P_nodes``: see
    :class:`~pushwire.brokers.nats_presence.NatsPresence`.

    While NATS is away, ``publish``, ``history``, ``members`` and ``survey`` raise
    :class:`~pushwire.errors.BrokerUnavailableError` at once, and every call that
    reaches NATS fails so after ``timeout_seconds``. nats-py reconnects and
    subscribes again by itself; then the node hears ``on_resubscribed`` (and fills
    from history what it missed), and presence is restored.
    """

    name = "nats"

    def __init__(
        self,
        url: str,
        settings: BrokerSettings | None = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``clock``, if given, replaces the wall clock for publication times and history
        expiry (tests); presence always expires by the NATS server's clock."""
        settings = settings or BrokerSettings()
        self._servers = [server.strip() for server in url.split(",")]
        self._names = names = NatsNames(settings.prefix)
        self._timeout = settings.timeout_seconds
        self._history = NatsHistory(names, settings, clock or time.time)
        self._presence = NatsPresence(
            names,
            secrets.token_hex(8),
            ttl_seconds=settings.presence_ttl_seconds,
            timeout_seconds=settings.timeout_seconds,
        )
        self._connection: Client | None = None
        self._js: JetStreamContext | None = None
        self._events: BrokerEvents | None = None
        self._closed = False
        self._subscriptions: dict[str, Subscription] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def connected(self) -> bool:
        connection = self._connection
        return self._events is not None and connection is not None and connection.is_connected

    # Life cycle.

    async def start(self, events: BrokerEvents) -> None:
        """Connect, create the stream and buckets if missing, and begin delivering.

        Raises:
            UsageError: if this broker was started or closed before.
            BrokerUnavailableError: if NATS does not answer within the timeout.
        """
        if self._connection is not None or self._closed:
            raise UsageError("a NatsBroker is started once")
        self._connection = connection = Client()
        try:
            await reach_nats("connecting", self._timeout, self._connect(connection))
            self._js = js = connection.jetstream(timeout=self._timeout)
            await reach_nats(
                "creating the stream and buckets", self._timeout, self._prepare(js, events)
            )
        except BaseException:
            self._presence.stop()
            self._connection = self._js = None
            await _disconnect(connection)
            raise
        self._events = events

    async def _connect(self, connection: Client) -> None:
        await connection.connect(
            servers=self._servers,
            name=f"pushwire {self._presence.node_id}",
            connect_timeout=max(1, round(self._timeout)),
            max_reconnect_attempts=-1,  # never give up: a node outlives NATS restarts
            reconnect_time_wait=_RECONNECT_WAIT_SECONDS,
            ping_interval=_PING_INTERVAL_SECONDS,
            max_outstanding_pings=2,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )

    async def _prepare(self, js: JetStreamContext, events: BrokerEvents) -> None:
        connection = self._connection
        assert connection is not None  # set by start
        await self._ensure_storage(js)
        await connection.subscribe(self._names.survey, cb=self._answer)
        await self._presence.start(connection, js, events)
        await connection.flush()

    async def _ensure_storage(self, js: JetStreamContext) -> None:
        await self._history.ensure_stream(js)
        await self._presence.ensure_buckets(js)

    async def close(self) -> None:
        """Leave this node's members, take its heartbeat away and disconnect (idempotent)."""
        self._closed = True
        self._events = None
        connection, self._connection = self._connection, None
        for task in list(self._tasks):
            task.cancel()
        if connection is None:
            return
        if connection.is_connected:
            try:
                await reach_nats("leaving", self._timeout, self._leave_all(connection))
            except BrokerUnavailableError as exc:
                logger.warning("%s: other nodes see this node's members leave within a TTL", exc)
        self._presence.stop()
        self._subscriptions.clear()
        await _disconnect(connection)

    async def _leave_all(self, connection: Client) -> None:
        await self._presence.close()
        await connection.flush()

    # Publications.

    async def publish(
        self,
        channel: str,
        data: bytes,
        *,
        event: str | None,
        options: HistoryOptions,
        publisher: bytes | None = None,
    ) -> Publication:
        """Append to the channel's history; the stream fans out what it stored.

        Raises:
            UsageError: before :meth:`start` or after :meth:`close`.
            BrokerUnavailableError: NATS is not connected, or did not store it in time.
        """
        js = self._ready()
        appending = self._history.append(js, channel, data, event, publisher)
        return await reach_nats("a publish", self._timeout, appending)

    async def history(
        self,
        channel: str,
        *,
        since: StreamPosition | None,
        limit: int,
        options: HistoryOptions,
    ) -> HistoryPage:
        """See :meth:`NatsHistory.read`.

        Raises:
            UsageError: before :meth:`start` or after :meth:`close`.
            BrokerUnavailableError: NATS is not connected, or did not answer in time.
        """
        js = self._ready()
        connection = self._connection
        assert connection is not None  # checked by _ready
        reading = self._history.read(
            connection, js, channel, since=since, limit=limit, options=options
        )
        return await reach_nats("a history read", self._timeout, reading)

    # Delivery.

    async def subscribe(self, channel: str) -> None:
        """Listen on ``P.c.C.*`` (publications and presence events); returns once the server
        has the subscription, so nothing published after is missed.

        While NATS is away, the subscription is made when it is back (then
        ``on_resubscribed`` tells the node to look at history).

        Raises:
            UsageError: before :meth:`start` or after :meth:`close`.
            BrokerUnavailableError: NATS did not confirm the subscription in time.
        """
        self._ready(connected=False)
        connection = self._connection
        if connection is None or channel in self._subscriptions:
            return

        async def deliver(msg: Msg) -> None:
            self._deliver(channel, msg)

        try:
            subscription = await connection.subscribe(self._names.channel(channel), cb=deliver)
        except nats.errors.Error as exc:  # the connection is closed for good
            raise BrokerUnavailableError(f"NATS failed a subscribe: {exc!r}") from exc
        self._subscriptions[channel] = subscription
        try:
            await reach_nats("a subscribe", self._timeout, self._confirm(connection, channel))
        except BaseException:
            await self.unsubscribe(channel)
            raise

    async def _confirm(self, connection: Client, channel: str) -> None:
        if connection.is_connected:
            await connection.flush()  # the server has the subscription once it answers
        await self._presence.watch(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._presence.unwatch(channel)
        subscription = self._subscriptions.pop(channel, None)
        if subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()

    def _deliver(self, channel: str, msg: Msg) -> None:
        events = self._events
        if events is None or channel not in self._subscriptions:
            return
        try:
            if msg.subject.endswith(".p"):
                events.on_publication(self._history.delivered(channel, msg))
            else:
                self._presence.on_event(channel, msg.data)
        except (KeyError, ValueError):
            logger.warning("dropped a malformed message on %s", msg.subject, exc_info=True)

    # Presence and surveys.

    async def join(self, channel: str, member: Member) -> None:
        self._ready(connected=False)
        await reach_nats("a join", self._timeout, self._presence.join(channel, member))

    async def leave(self, channel: str, user: str) -> None:
        self._ready(connected=False)
        await reach_nats("a leave", self._timeout, self._presence.leave(channel, user))

    async def members(self, channel: str) -> list[Member]:
        self._ready()
        return await reach_nats("reading members", self._timeout, self._presence.members(channel))

    async def survey(self, question: bytes) -> list[bytes]:
        """This node's answer, then every other live node's that comes within 0.5 s.

        Raises:
            UsageError: before :meth:`start` or after :meth:`close`.
            BrokerUnavailableError: NATS is not connected.
        """
        self._ready()
        events, connection = self._events, self._connection
        assert events is not None  # checked by _ready
        assert connection is not None
        answers = [events.on_survey(question)]
        others = len(self._presence.live_nodes - {self._presence.node_id})
        if others:
            answers += await reach_nats(
                "a survey", self._timeout, self._ask(connection, question, others)
            )
        return answers

    async def _ask(self, connection: Client, question: bytes, expected: int) -> list[bytes]:
        answers: list[bytes] = []
        heard = 0
        everyone = asyncio.Event()

        async def collect(msg: Msg) -> None:
            nonlocal heard
            heard += 1
            if not (msg.headers and _FAILED in msg.headers):
                answers.append(msg.data)
            if heard >= expected:
                everyone.set()

        # Subscribed before asking, on the same connection: no answer can come first.
        inbox = await connection.subscribe(connection.new_inbox(), cb=collect)
        try:
            headers = {_NODE: self._presence.node_id}
            await connection.publish(self._names.survey, question, inbox.subject, headers)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(_SURVEY_WAIT_SECONDS, self._timeout)):
                    await everyone.wait()
        finally:
            with contextlib.suppress(nats.errors.Error):
                await inbox.unsubscribe()
        return list(answers)

    async def _answer(self, msg: Msg) -> None:
        events, connection = self._events, self._connection
        asker = (msg.headers or {}).get(_NODE)
        if events is None or connection is None or not msg.reply:
            return
        if asker == self._presence.node_id:
            return  # this node answered its own question directly
        failed: dict[str, str] | None = None
        try:
            answer = events.on_survey(msg.data)
        except Exception:
            logger.warning("answering a survey from node %s failed", asker, exc_info=True)
            answer, failed = b"", {_FAILED: "1"}
        if connection.is_connected:  # else the asker has given up already
            await connection.publish(msg.reply, answer, headers=failed)

    # Connection.

    def _ready(self, *, connected: bool = True) -> JetStreamContext:
        if self._closed:
            raise UsageError("the NATS broker is closed")
        js = self._js
        if js is None or self._events is None:
            raise UsageError("the NATS broker is not started")
        if connected and not self.connected:
            raise BrokerUnavailableError("NATS is not connected (reconnecting)")
        return js

    async def _on_error(self, error: Exception) -> None:
        logger.info("NATS: %r", error)  # reconnect attempts report here; the state is logged

    async def _on_disconnected(self) -> None:
        if self._events is not None:  # started, and not closing
            logger.warning("lost the connection to NATS: reconnecting")

    async def _on_reconnected(self) -> None:
        logger.warning("reconnected to NATS")
        self._history.forget()  # the server may be another one, with other history
        task = asyncio.get_running_loop().create_task(self._after_reconnect())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _after_reconnect(self) -> None:
        """nats-py has subscribed again: check the stream and buckets (a new server has
        none), let the node fill from history what it missed, then restore presence."""
        js = self._js
        try:
            if js is not None:
                checking = self._ensure_storage(js)
                await reach_nats("checking the stream and buckets", self._timeout, checking)
        except BrokerUnavailableError as exc:
            logger.warning("%s", exc)
        events = self._events
        if events is None:
            return
        events.on_resubscribed()
        try:
            await self._presence.resync()
        except BrokerUnavailableError as exc:
            logger.warning("%s: presence is restored at the next refresh", exc)


async def _disconnect(connection: Client) -> None:
    """Close ``connection``, also while NATS is away.

    nats-py writes what it buffered while disconnected into the dead socket when it
    closes, raises, and skips the rest of closing (its subscriptions' tasks, the
    socket); so that buffer, which could never reach NATS now, is dropped first.
    """
    if not connection.is_connected:
        connection._pending.clear()
        connection._pending_data_size = 0
    with contextlib.suppress(nats.errors.Error, OSError):
        await connection.close()
