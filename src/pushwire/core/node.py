"""Node: one pushwire process's core, wiring the hub to a broker and channel rules.

Transports and the HTTP API talk to the node; the node talks to the broker. It
never sees a request, a response or a socket. It is also where the broker is
not trusted: every publication is checked against what the channel's local
subscribers already have, so that each is delivered once, in order, or a gap
is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import orjson

from pushwire.core.broker import Broker, HistoryOptions, PublishDone, PublishesSoon
from pushwire.core.channels import ChannelRules
from pushwire.core.counters import NodeCounters, NodeStatistics
from pushwire.core.eager import start_eagerly
from pushwire.core.history import Gap, HistoryPage, Publication, StreamPosition
from pushwire.core.hub import ChannelState, Hub
from pushwire.core.identity import Identity
from pushwire.core.outlets import Outlets
from pushwire.core.presence import Join, Leave, LocalPresence, Member
from pushwire.core.recovery import Recovery, recover
from pushwire.core.replay_window import ReplayWindows
from pushwire.core.users import UserRegistry
from pushwire.errors import DISCONNECTED, BadRequestError
from pushwire.protocol.codec import publisher_json
from pushwire.protocol.names import validate_channel, validate_event

__all__ = ["Node"]

logger = logging.getLogger("pushwire.node")

# A recovery that races live delivery re-reads history; past this, give up (gap).
_RECOVERY_ATTEMPTS = 5
# Filling a hole reads history page by page; past this many pages, jump (gap).
_FILL_ROUNDS = 10


class Node:
    """Publishes through the broker and delivers what the broker hands back to local subscribers.

    Use it directly to publish from your own asyncio program (``await node.publish(...)``),
    or let :class:`pushwire.server.app.Server` build one for you.
    """

    def __init__(
        self, broker: Broker, rules: ChannelRules, *, counters: NodeCounters | None = None
    ) -> None:
        self.broker = broker
        self.rules = rules
        #: Running totals (deliveries, publications, connections), read by /metrics.
        self.counters = counters or NodeCounters()
        #: This node among the others (``/api/info``): random at each start.
        self.id = secrets.token_hex(4)
        #: What the server says of this node to the others (version, worker, host).
        self.about: dict[str, str] = {}
        self.started_at = 0.0  # wall-clock seconds, set by start()
        self.hub = Hub(self._call_soon, self._channel_idle, counters=self.counters)
        self.users = UserRegistry()
        self.presence = LocalPresence()
        #: Systems outside pushwire that this node's publications also go to (MQTT).
        self.outlets = Outlets()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._locks = _ChannelLocks()
        self._broker_channels: set[str] = set()  # channels the broker delivers here
        # Channels whose stream has a hole being filled from history, with the
        # publications that arrived meanwhile (delivered once the hole is filled).
        self._filling: dict[str, list[Publication]] = {}
        # Runs of history lately read to recover subscribers, shared by those that follow.
        self._replay_windows = ReplayWindows(time.monotonic)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        #: The broker's ``publish_soon``, if it has one (see ``publish_soon`` here).
        self._publish_soon: PublishesSoon | None = (
            broker if callable(getattr(broker, "publish_soon", None)) else None  # type: ignore[assignment]
        )
        #: HistoryOptions by (size, TTL): one object per rule, not one per publication.
        self._options: dict[tuple[int, float], HistoryOptions] = {}

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.started_at = self.counters.clock()
        await self.broker.start(self)

    async def close(self) -> None:
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        await self.broker.close()

    def _call_soon(self, callback: Callable[[], None]) -> None:
        loop = self._loop or asyncio.get_running_loop()
        loop.call_soon(callback)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Publishing.

    def history_options(self, channel: str) -> HistoryOptions:
        rule = self.rules.rule_for(channel)
        key = (rule.history_size, rule.history_ttl_seconds)
        options = self._options.get(key)
        if options is None:
            if len(self._options) >= 1000:  # rules are few; bounded all the same
                self._options.clear()
            options = self._options[key] = HistoryOptions(*key)
        return options

    async def publish(self, channel: str, data: Any, *, event: str | None = None) -> Publication:
        """Publish any JSON-serialisable ``data`` to ``channel``.

        Returns the publication; ``publication.position.cursor`` is its id.

        Raises:
            InvalidChannelError: if ``channel`` is not a valid name.
            BadRequestError: if ``data`` cannot be encoded as JSON or ``event`` is invalid.
        """
        try:
            encoded = orjson.dumps(data)
        except TypeError as exc:
            raise BadRequestError(f"data is not JSON-serialisable: {exc}") from None
        return await self.publish_json(
            validate_channel(channel), encoded, event=validate_event(event)
        )

    async def publish_json(
        self,
        channel: str,
        data: bytes,
        *,
        event: str | None = None,
        publisher: Identity | None = None,
        to_outlet: bool = True,
        source: str = "api",
    ) -> Publication:
        """Publish ``data``, already encoded as JSON, to an already validated ``channel``.

        Checks no permission: a client's right to publish is checked where its
        request arrives (``ChannelPermissions.check_publish``). A client's
        ``publisher`` identity (with a user) goes with the message as its ``from``.
        ``source`` says who published, for the counters: ``"api"``, ``"client"``
        or ``"mqtt"`` (``core.counters.PUBLICATION_SOURCES``).

        If an outlet (an MQTT bridge) takes the channel, the publication goes there
        too, and this returns once the outlet confirmed it. A bridge publishing what
        came in from its own system passes ``to_outlet=False``, so it never goes
        back out (no echo).

        Raises:
            BridgeUnavailableError: the channel's outlet is down (nothing was
                published) or did not confirm (published here only).
        """
        outlet = self.outlets.outlet_for(channel) if to_outlet else None
        if outlet is not None:
            outlet.check(channel)
        options = self.history_options(channel)
        who = None
        if publisher is not None and publisher.user is not None:
            who = publisher_json(publisher.user, publisher.info)
        publication = await self.broker.publish(
            channel, data, event=event, options=options, publisher=who
        )
        self.counters.published(source)
        if outlet is not None:
            await outlet.send(publication)
        return publication

    def publish_soon(
        self, channel: str, data: bytes, *, event: str | None, on_done: PublishDone
    ) -> None:
        """``publish_json`` from the API, for a caller that is not a coroutine.

        ``on_done(publication, None)`` once it is published (with SQLite history:
        committed), or ``on_done(None, error)``. On the embedded broker no task and no
        coroutine is made for it; a channel with an outlet, or a networked broker,
        runs ``publish_json`` on a task of its own. Publications keep the order of
        the calls, as with ``publish_json``.
        """
        broker = self._publish_soon
        if broker is None or self.outlets.outlet_for(channel) is not None:
            self._spawn(self._publish_then(channel, data, event, on_done))
            return
        counters = self.counters

        def done(publication: Publication | None, exc: BaseException | None) -> None:
            if exc is None:
                counters.published("api")
            on_done(publication, exc)

        broker.publish_soon(
            channel,
            data,
            event=event,
            options=self.history_options(channel),
            publisher=None,
            on_done=done,
        )

    async def _publish_then(
        self, channel: str, data: bytes, event: str | None, on_done: PublishDone
    ) -> None:
        try:
            publication = await self.publish_json(channel, data, event=event)
        except Exception as exc:
            on_done(None, exc)
            return
        on_done(publication, None)

    # Reading history.

    async def history(
        self, channel: str, *, since: StreamPosition | None = None, limit: int = 100
    ) -> HistoryPage:
        """Publications after ``since`` (or the newest), oldest first, and the stream top."""
        return await self.broker.history(
            channel, since=since, limit=limit, options=self.history_options(channel)
        )

    # Subscribing.

    async def open_channel(self, channel: str) -> ChannelState:
        """The hub's state for ``channel``, held, subscribing this node at the broker if needed.

        The caller joins a sink to it and then gives the hold back with
        ``hub.release(state)`` (also when it gives up without joining).
        """
        hub = self.hub
        state = hub.channel(channel)
        if state is not None:
            return hub.open_channel(channel, state.delivered)
        # One subscribe or unsubscribe at the broker at a time per channel, so that
        # an unsubscribe still in flight cannot land after this subscribe.
        async with self._locks.hold(channel):
            state = hub.channel(channel)
            if state is not None:
                return hub.open_channel(channel, state.delivered)
            if channel not in self._broker_channels:
                await self.broker.subscribe(channel)
                self._broker_channels.add(channel)
            try:
                page = await self.history(channel, limit=0)
            except Exception:
                # The broker is out of reach: no subscriber here, so no subscription there.
                self._broker_channels.discard(channel)
                await self.broker.unsubscribe(channel)
                raise
            return hub.open_channel(channel, page.top)

    def _channel_idle(self, channel: str) -> None:
        self._filling.pop(channel, None)
        self._spawn(self._unsubscribe(channel))

    async def _unsubscribe(self, channel: str) -> None:
        async with self._locks.hold(channel):
            # A subscriber may have come back while this waited for the lock.
            if self.hub.channel(channel) is None and channel in self._broker_channels:
                self._broker_channels.discard(channel)
                await self.broker.unsubscribe(channel)

    async def recover(self, state: ChannelState, since: StreamPosition) -> Recovery:
        """What a subscriber to ``state`` that last saw ``since`` missed, up to live delivery.

        Run the registration of the subscriber without awaiting after this
        returns, so that live delivery takes over exactly where the replay ends.
        Subscribers coming back together share history reads (``replay_window``).
        """
        name = state.name
        options = self.history_options(name)
        limit = max(options.size, 1)
        windows = self._replay_windows
        for _ in range(_RECOVERY_ATTEMPTS):
            live_from = state.delivered
            if since.epoch == live_from.epoch and since.offset == live_from.offset:
                return Recovery((), recovered=True)
            oldest_time = self.counters.clock() - options.ttl_seconds
            held = windows.take(name, since, live_from, oldest_time)
            if held is not None:
                return Recovery(held, recovered=True)
            # Read only what the window lacks when it holds the start of the run.
            behind = since.epoch == live_from.epoch and since.offset < live_from.offset
            read_from = (behind and windows.resume_point(name, since)) or since
            page = await self.history(name, since=read_from, limit=limit)
            if state.delivered != live_from:
                continue  # live delivery moved on meanwhile: look again
            found = recover(read_from, page, live_from)
            if read_from == since:
                if found.recovered:
                    windows.add(name, since, found.publications, options.size, oldest_time)
                return found
            # The window's run, extended up to live delivery.
            if found.recovered:
                windows.add(name, read_from, found.publications, options.size, oldest_time)
                held = windows.take(name, since, live_from, oldest_time)
                if held is not None:
                    return Recovery(held, recovered=True)
            windows.drop(name)  # it cannot serve this cursor: read from the cursor itself
        return Recovery((), recovered=False)

    # Presence: counted here per connection, kept per user at the broker (for the cluster).

    def member_joined(self, state: ChannelState, identity: Identity) -> None:
        """A connection of ``identity`` now receives ``state``'s channel (call after joining).

        Counts it among the channel's members where the rule keeps presence. The
        broker hears of the user's connections on this node; when it is their first
        anywhere, every node tells its subscribers (``join_leave``) through ``on_join``.
        """
        user = identity.user
        rule = self.rules.rule_for(state.name)
        if user is None or not (rule.presence or rule.join_leave):
            return
        self.presence.add(state.name, user, identity.info)
        self._tell_broker(state.name, user)

    def member_left(self, channel: str, identity: Identity) -> None:
        """A connection of ``identity`` no longer receives ``channel`` (call after leaving)."""
        user = identity.user
        rule = self.rules.rule_for(channel)
        if user is None or not (rule.presence or rule.join_leave):
            return
        self.presence.remove(channel, user)
        self._tell_broker(channel, user)

    def _tell_broker(self, channel: str, user: str) -> None:
        """Hand the broker this node's count of ``user``'s connections to ``channel``.

        Started eagerly: the embedded broker answers without waiting, so its join
        event is queued before the subscriber's next message, as on one node always.
        """
        member = self.presence.member(channel, user)
        if member is None:
            work = self.broker.leave(channel, user)
        else:
            work = self.broker.join(channel, member)
        task = start_eagerly(_logged(work, "telling the broker about presence"))
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def members(self, channel: str) -> list[Member]:
        """Who is subscribed to ``channel``, on every node (sorted by user id).

        Raises:
            BadRequestError: if the channel's rule keeps no presence.
            BrokerUnavailableError: if the broker cannot be asked just now.
        """
        if not self.rules.rule_for(channel).presence:
            raise BadRequestError(f"presence is off for {channel!r}")
        return await self.broker.members(channel)

    def on_join(self, channel: str, user: str, info: dict[str, object] | None) -> None:
        state = self.hub.channel(channel)
        if state is not None and self.rules.rule_for(channel).join_leave:
            self.hub.enqueue(state, Join(channel, user, info, state.accepted))

    def on_leave(self, channel: str, user: str, info: dict[str, object] | None) -> None:
        state = self.hub.channel(channel)
        if state is not None and self.rules.rule_for(channel).join_leave:
            self.hub.enqueue(state, Leave(channel, user, info, state.accepted))

    # Questions for the whole cluster: every node answers for its own connections.

    async def channel_statistics(self) -> list[tuple[str, int]]:
        """Every channel with subscribers on any node, and how many (summed), by name."""
        totals: dict[str, int] = {}
        for answer in await self.broker.survey(b'{"ask":"channels"}'):
            for channel, count in orjson.loads(answer):
                totals[channel] = totals.get(channel, 0) + count
        return sorted(totals.items())

    async def cluster_statistics(self) -> list[NodeStatistics]:
        """Every node's :meth:`statistics`, by node id.

        Raises:
            BrokerUnavailableError: if the other nodes cannot be asked just now.
        """
        answers = await self.broker.survey(b'{"ask":"info"}')
        return sorted((NodeStatistics.from_json(a) for a in answers), key=_node_id)

    def statistics(self) -> NodeStatistics:
        """This node's identity and totals now (its share of ``cluster_statistics``)."""
        counters = self.counters
        transports = counters.transports.values()
        return NodeStatistics(
            node=self.id,
            about=dict(self.about),
            started_at=self.started_at,
            uptime_seconds=max(counters.clock() - self.started_at, 0.0),
            broker=self.broker.name,
            broker_connected=self.broker.connected,
            channels=self.hub.channel_count(),
            subscriptions=self.hub.subscription_count(),
            connections={t.name: t.open_now for t in transports},
            publications=dict(counters.publications),
            deliveries={t.name: t.deliveries for t in transports},
        )

    async def disconnect_user(self, user: str) -> int:
        """Close every connection of ``user`` on every node (close 4000); how many."""
        question = orjson.dumps({"ask": "disconnect", "user": user})
        return sum(orjson.loads(answer) for answer in await self.broker.survey(question))

    async def unsubscribe_user(self, user: str, channel: str) -> int:
        """Take ``channel`` from every connection of ``user`` on every node; how many."""
        question = orjson.dumps({"ask": "unsubscribe", "user": user, "channel": channel})
        return sum(orjson.loads(answer) for answer in await self.broker.survey(question))

    def on_survey(self, question: bytes) -> bytes:
        asked = orjson.loads(question)
        kind = asked.get("ask")
        if kind == "channels":
            return orjson.dumps(
                [(stats.channel, stats.subscribers) for stats in self.hub.statistics()]
            )
        if kind == "info":
            return self.statistics().to_json()
        if kind == "disconnect":
            connections = self.users.connections(str(asked["user"]))
            for connection in connections:
                connection.close(DISCONNECTED)
            return orjson.dumps(len(connections))
        if kind == "unsubscribe":
            channel = str(asked["channel"])
            return orjson.dumps(
                sum(c.unsubscribe(channel) for c in self.users.connections(str(asked["user"])))
            )
        raise BadRequestError(f"unknown survey question {kind!r}")

    # Broker events: live delivery, checked.

    def on_publication(self, publication: Publication) -> None:
        state = self.hub.channel(publication.channel)
        if state is None:
            return  # no local subscriber (any more)
        waiting = self._filling.get(state.name)
        if waiting is not None:
            waiting.append(publication)
            return
        accepted = state.accepted
        position = publication.position
        if position.epoch == accepted.epoch:
            if position.offset == accepted.offset + 1:
                self.hub.enqueue(state, publication)
                return
            if position.offset <= accepted.offset:
                return  # a repeat, or older than where this node's subscribers began
        # A hole, or a new epoch: what lies between comes from history first.
        self._filling[state.name] = [publication]
        self._spawn(self._fill(state))

    def on_resubscribed(self) -> None:
        for state in self.hub.channels():
            if state.name not in self._filling:
                self._filling[state.name] = []
                self._spawn(self._fill(state))

    async def _fill(self, state: ChannelState) -> None:
        """Deliver what is missing before the waiting publications, in order, or a gap."""
        name = state.name
        limit = max(self.rules.rule_for(name).history_size, 1)
        try:
            for _ in range(_FILL_ROUNDS):
                page = await self.history(name, since=state.accepted, limit=limit)
                waiting = self._filling.get(name)
                if waiting is None or self.hub.channel(name) is not state:
                    return  # the channel went idle meanwhile
                if self._fill_from(state, page, waiting, limit):
                    return
            logger.warning("history of %r kept moving while a hole was filled: gap", name)
            self._skip_to_waiting(state, page.top)
        except asyncio.CancelledError:
            raise
        except Exception:
            # History is out of reach: what it would have filled is lost to us.
            logger.warning("cannot read the history of %r to fill a hole: gap", name, exc_info=True)
            self._skip_to_waiting(state, state.accepted)
        finally:
            if self.hub.channel(name) is state and not self._closing:
                waiting = self._filling.pop(name, [])
                # What came after the last round follows on, or opens a new hole.
                for publication in sorted(waiting, key=_offset):
                    self.on_publication(publication)

    def _fill_from(
        self, state: ChannelState, page: HistoryPage, waiting: list[Publication], limit: int
    ) -> bool:
        """Deliver from ``page`` and ``waiting`` what follows on; True once the hole is closed."""
        top = page.top
        if top.epoch != state.accepted.epoch:
            if state.accepted.offset == 0 and not state.pending:
                # Nothing was ever delivered here in the old epoch, and the channel
                # has had subscribers on this node since (so its stream was not
                # forgotten meanwhile): a stream made under a new epoch follows on.
                state.delivered = StreamPosition(top.epoch, 0)
                return False
            # The stream was recreated: what this node had not delivered is lost.
            self._enqueue_gap(state, top)
            return self._caught_up(state, waiting, top)
        candidates = {p.position.offset: p for p in waiting if p.position.epoch == top.epoch}
        for publication in page.publications:
            candidates[publication.position.offset] = publication
        # A full page may stop short of what history holds: past its end, read on.
        page_end = (
            page.publications[-1].position.offset if len(page.publications) >= limit else None
        )
        for offset in sorted(candidates):
            accepted = state.accepted
            if offset <= accepted.offset:
                continue
            if offset > accepted.offset + 1:
                if page_end is not None and offset > page_end:
                    break
                # History no longer holds what lies between: skip it, and say so.
                self._enqueue_gap(state, StreamPosition(top.epoch, offset - 1))
            self.hub.enqueue(state, candidates[offset])
        return self._caught_up(state, waiting, top)

    def _caught_up(
        self, state: ChannelState, waiting: list[Publication], top: StreamPosition
    ) -> bool:
        """Drop what is now delivered from ``waiting``; True if nothing is left to fill."""
        accepted = state.accepted
        waiting[:] = [
            p
            for p in waiting
            if p.position.epoch != accepted.epoch or p.position.offset > accepted.offset
        ]
        if accepted.epoch == top.epoch and accepted.offset < top.offset:
            return False
        return not any(p.position.epoch == accepted.epoch for p in waiting)

    def _skip_to_waiting(self, state: ChannelState, top: StreamPosition) -> None:
        """Give up filling: jump to just before the oldest waiting publication (or ``top``)."""
        waiting = self._filling.get(state.name, [])
        epoch = waiting[0].position.epoch if waiting else top.epoch
        after = [p.position.offset for p in waiting if p.position.epoch == epoch]
        offset = min(after) - 1 if after else top.offset
        self._enqueue_gap(state, StreamPosition(epoch, offset))

    def _enqueue_gap(self, state: ChannelState, position: StreamPosition) -> None:
        accepted = state.accepted
        if position.epoch == accepted.epoch and position.offset <= accepted.offset:
            return
        self.hub.enqueue(state, Gap(state.name, position))


async def _logged(work: Coroutine[Any, Any, None], what: str) -> None:
    try:
        await work
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.warning("%s failed", what, exc_info=True)


def _node_id(statistics: NodeStatistics) -> str:
    return statistics.node


def _offset(publication: Publication) -> int:
    return publication.position.offset


class _ChannelLocks:
    """One lock per channel name, existing only while someone holds or awaits it."""

    __slots__ = ("_locks",)

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, channel: str) -> AsyncIterator[None]:
        entry = self._locks.get(channel)
        if entry is None:
            entry = self._locks[channel] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[channel]
