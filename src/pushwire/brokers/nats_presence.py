"""Presence for the NATS broker: members in one KV bucket, live nodes in another.

Kept apart from ``nats.py`` (publications and history); the broker owns the
connection and hands this module its subscriptions' presence events.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy, KeyValueConfig, StorageType
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError
from nats.js.kv import KeyValue

from pushwire.brokers.nats_jetstream import (
    STREAM_NAME_IN_USE,
    KeyedLocks,
    NatsNames,
    is_deleted,
    reach_nats,
    read_snapshot,
    token,
)
from pushwire.core.broker import BrokerEvents
from pushwire.core.presence import Member
from pushwire.errors import BrokerUnavailableError, UsageError

__all__ = ["NatsPresence"]

logger = logging.getLogger("pushwire.brokers.nats")

# Puts and deletes in flight at once when refreshing, restoring or leaving everything.
_BATCH = 256

Info = dict[str, object] | None
T = TypeVar("T")


@dataclass(slots=True)
class _Held:
    """A user on a watched channel: their newest info, and the nodes that hold them."""

    info: Info
    nodes: set[str]


@dataclass(frozen=True, slots=True)
class _Event:
    """A join or leave, as a node announced it on the channel's event subject."""

    joined: bool
    user: str
    info: Info
    node: str


@dataclass(slots=True)
class _Watched:
    """A channel this node is subscribed to: who holds whom there, as far as it knows."""

    holders: dict[str, _Held] = field(default_factory=dict)
    # While the bucket is being read, events wait here (None: they are applied at once).
    waiting: list[_Event] | None = None
    seeded: bool = False


class NatsPresence:
    """This node's members, the cluster's members, and which nodes are alive.

    Bucket ``P_presence`` has one key ``C.U.N`` (channel, user and node tokens) per
    user a node holds on a channel, with their info and connection count. Each node
    puts only its own keys and puts them again every third of the bucket's TTL, so
    the keys of a node that crashed expire. Bucket ``P_nodes`` has one heartbeat per
    live node, refreshed after its keys (so it is the last of them to expire).

    Join and leave events travel over core NATS on ``P.c.C.e`` to the nodes
    subscribed to the channel. Each such node keeps, per user, the set of nodes
    holding them (read from the bucket when it subscribes) and decides by itself
    when a user's first node joined or last node left: it tells its own node of
    each once, however many nodes announced it. Every node reads the registry each
    refresh; a node it knew of whose heartbeat is gone is buried: the users only it
    held leave, on every subscribed node that notices (each of them, once).
    """

    def __init__(
        self, names: NatsNames, node_id: str, *, ttl_seconds: float, timeout_seconds: float
    ) -> None:
        self.node_id = node_id
        self._names = names
        self._ttl = ttl_seconds
        self._timeout = timeout_seconds
        self._connection: Client | None = None
        self._js: JetStreamContext | None = None
        self._events: BrokerEvents | None = None
        self._bucket: KeyValue | None = None
        self._registry: KeyValue | None = None
        self._own: dict[str, dict[str, Member]] = {}  # what this node holds: refreshed
        # Leaves made while NATS was away: deleted and told once it is back.
        self._untold: dict[tuple[str, str], Info] = {}
        self._watched: dict[str, _Watched] = {}
        self._live = {node_id}  # as of the last registry read, and hellos since
        self._heard: dict[str, float] = {}  # node -> when (monotonic) it was first heard of
        self._buried: dict[str, float] = {}  # node -> when to forget it was buried
        self._locks: KeyedLocks[tuple[str, str]] = KeyedLocks()
        self._refresher: asyncio.Task[None] | None = None
        self._card = orjson.dumps({"host": socket.gethostname(), "pid": os.getpid()})

    @property
    def live_nodes(self) -> frozenset[str]:
        """The nodes believed alive now, this one included."""
        return frozenset(self._live)

    # Life cycle.

    async def ensure_buckets(self, js: JetStreamContext) -> None:
        """Create both buckets if missing; a bucket made with another TTL gets this node's."""
        for bucket in (self._names.presence_bucket, self._names.nodes_bucket):
            config = KeyValueConfig(
                bucket=bucket, ttl=self._ttl, history=1, storage=StorageType.FILE
            )
            try:
                await js.create_key_value(config)
            except BadRequestError as exc:
                if exc.err_code != STREAM_NAME_IN_USE:
                    raise
                logger.warning("bucket %s had another TTL: now %g s", bucket, self._ttl)
                info = await js.stream_info(f"KV_{bucket}")
                info.config.max_age = self._ttl
                info.config.duplicate_window = min(self._ttl, 120.0)
                await js.update_stream(info.config)

    async def start(self, connection: Client, js: JetStreamContext, events: BrokerEvents) -> None:
        """Say this node is alive, learn which others are, and start refreshing."""
        self._connection, self._js, self._events = connection, js, events
        self._bucket = await js.key_value(self._names.presence_bucket)
        self._registry = await js.key_value(self._names.nodes_bucket)
        await connection.subscribe(self._names.hello, cb=self._on_hello)
        await self._registry.put(self.node_id, self._card)
        await connection.publish(self._names.hello, self.node_id.encode())
        await self._read_registry()
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())

    def stop(self) -> None:
        """Stop refreshing and telling the node anything (no network)."""
        self._events = None
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None

    async def close(self) -> None:
        """Leave everything this node holds and take its heartbeat away, so that the other
        nodes hear the leaves now rather than a TTL later."""
        self.stop()
        await _each(list(self._owned()), lambda key: self.leave(*key))
        if self._registry is not None:
            await self._registry.delete(self.node_id)

    async def resync(self) -> None:
        """After NATS came back: restore this node's keys, announce what NATS missed, and
        tell the node who joined and left meanwhile (their events reached no one)."""
        await reach_nats("restoring presence", self._timeout, self._restore())
        channels = list(self._watched)
        for start in range(0, len(channels), _BATCH):
            reading = _each(channels[start : start + _BATCH], self._reseed)
            await reach_nats("reading presence", self._timeout, reading)

    async def _reseed(self, channel: str) -> None:
        watched = self._watched.get(channel)
        if watched is not None and watched.waiting is None:
            await self._seed(channel, watched, announce=True)

    async def _restore(self) -> None:
        await self._heartbeat()
        await _each(list(self._untold), lambda key: self._tell_untold(*key))
        await _each(list(self._owned()), lambda key: self._put_and_announce(*key))
        await self._read_registry()

    # This node's members.

    async def join(self, channel: str, member: Member) -> None:
        """Hold ``member`` on ``channel`` for this node, and tell the subscribed nodes.

        Kept locally first: if NATS is away, the key is put once it is back.
        """
        self._own.setdefault(channel, {})[member.user] = member
        await self._put_and_announce(channel, member.user)

    async def leave(self, channel: str, user: str) -> None:
        """This node holds ``user`` on ``channel`` no more: delete its key and tell."""
        members = self._own.get(channel)
        member = None if members is None else members.pop(user, None)
        if members is None or member is None:
            return  # this node held none: nothing to delete, nobody to tell
        if not members:
            del self._own[channel]
        self._untold[(channel, user)] = member.info
        await self._tell_untold(channel, user)

    async def _put_and_announce(self, channel: str, user: str) -> None:
        async with self._locks.hold((channel, user)):
            member = self._own.get(channel, {}).get(user)
            if member is None:
                return  # left again meanwhile
            # Held again before a leave was told: nobody needs to hear of that leave now.
            self._untold.pop((channel, user), None)
            bucket, connection = self._reachable()
            await bucket.put(self._key(channel, user), _entry(member))
            await self._announce(connection, channel, _Event(True, user, member.info, self.node_id))

    async def _tell_untold(self, channel: str, user: str) -> None:
        async with self._locks.hold((channel, user)):
            if (channel, user) not in self._untold:
                return  # joined again meanwhile
            bucket, connection = self._reachable()
            await bucket.delete(self._key(channel, user))
            # Popped only here and in _put_and_announce, both under this lock.
            info = self._untold.pop((channel, user))
            await self._announce(connection, channel, _Event(False, user, info, self.node_id))

    async def _announce(self, connection: Client, channel: str, event: _Event) -> None:
        # Sent after the bucket holds the change: a node that hears it and reads the
        # bucket finds it there.
        fields = {"joined": event.joined, "user": event.user, "info": event.info}
        payload = orjson.dumps({**fields, "node": event.node})
        await connection.publish(self._names.presence_events(channel), payload)

    def _owned(self) -> Iterable[tuple[str, str]]:
        return [(channel, user) for channel, members in self._own.items() for user in members]

    def _key(self, channel: str, user: str) -> str:
        return f"{token(channel)}.{token(user)}.{self.node_id}"

    def _reachable(self) -> tuple[KeyValue, Client]:
        bucket, connection = self._bucket, self._connection
        if bucket is None or connection is None:
            raise UsageError("the NATS broker is not started")
        if not connection.is_connected:
            raise BrokerUnavailableError("NATS is not connected (reconnecting)")
        return bucket, connection

    # The cluster's members.

    async def members(self, channel: str) -> list[Member]:
        """Every node's keys for ``channel``: connections summed, newest info, sorted by user."""
        counted: dict[str, tuple[Info, int]] = {}
        for _, entry in await self._entries(channel):
            user, info, connections = entry
            counted[user] = (info, counted.get(user, (None, 0))[1] + connections)
        return [Member(user, info, count) for user, (info, count) in sorted(counted.items())]

    async def _entries(self, channel: str) -> list[tuple[str, tuple[str, Info, int]]]:
        """(node, entry) for each live key of ``channel``, oldest put first."""
        _, connection = self._reachable()
        if self._js is None:
            raise UsageError("the NATS broker is not started")
        name = self._names.presence_bucket
        messages = await read_snapshot(
            connection,
            self._js,
            f"KV_{name}",
            f"$KV.{name}.{token(channel)}.>",
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        )
        found = []
        for msg in messages:
            node = msg.subject.rpartition(".")[2]
            if is_deleted(msg) or node in self._buried:
                continue  # a buried node's keys may outlive its heartbeat a little
            entry = _parse_entry(msg.data)
            if entry is None:
                logger.warning("ignored a malformed presence key %s", msg.subject)
                continue
            found.append((node, entry))
        return found

    # Channels this node is subscribed to: who holds whom, and the events.

    async def watch(self, channel: str) -> None:
        """This node subscribed to ``channel``: read who holds whom there, then follow events.

        Not read while NATS is away: :meth:`resync` reads it once NATS is back.
        """
        watched = self._watched.setdefault(channel, _Watched())
        connection = self._connection
        if connection is not None and connection.is_connected:
            await self._seed(channel, watched, announce=False)

    def unwatch(self, channel: str) -> None:
        self._watched.pop(channel, None)

    def on_event(self, channel: str, data: bytes) -> None:
        """A join or leave arrived on ``channel``'s event subject.

        Raises:
            ValueError: if it is not one this module sent.
        """
        watched = self._watched.get(channel)
        if watched is None:
            return
        event = _parse_event(data)
        if watched.waiting is not None:
            watched.waiting.append(event)
        else:
            self._apply(channel, watched, event)

    async def _seed(self, channel: str, watched: _Watched, *, announce: bool) -> None:
        """Replace who holds whom on ``channel`` by the bucket's keys, then apply the events
        that arrived meanwhile. With ``announce``, tell the node the differences: events
        that NATS lost while this node was away."""
        watched.waiting = []
        holders: dict[str, _Held] | None = None
        try:
            holders = await self._holders_now(channel)
        finally:
            waiting, watched.waiting = watched.waiting or [], None
            if holders is not None:
                before, watched.holders = watched.holders, holders
                if announce and watched.seeded:
                    self._tell_differences(channel, before, holders)
                watched.seeded = True
            for event in waiting:
                self._apply(channel, watched, event)

    async def _holders_now(self, channel: str) -> dict[str, _Held]:
        holders: dict[str, _Held] = {}
        now = time.monotonic()
        for node, (user, info, _) in await self._entries(channel):
            self._heard.setdefault(node, now)
            held = holders.get(user)
            if held is None:
                holders[user] = _Held(info, {node})
            else:
                held.info = info
                held.nodes.add(node)
        return holders

    def _tell_differences(
        self, channel: str, before: dict[str, _Held], after: dict[str, _Held]
    ) -> None:
        events = self._events
        if events is None:
            return
        for user in sorted(before.keys() - after.keys()):
            events.on_leave(channel, user, before[user].info)
        for user in sorted(after.keys() - before.keys()):
            events.on_join(channel, user, after[user].info)

    def _apply(self, channel: str, watched: _Watched, event: _Event) -> None:
        events = self._events
        if events is None:
            return
        self._heard.setdefault(event.node, time.monotonic())
        self._buried.pop(event.node, None)  # it speaks: it is alive again
        held = watched.holders.get(event.user)
        if event.joined:
            if held is None:
                watched.holders[event.user] = _Held(event.info, {event.node})
                events.on_join(channel, event.user, event.info)
            else:
                held.info = event.info
                held.nodes.add(event.node)
        elif held is not None and event.node in held.nodes:
            held.nodes.discard(event.node)
            if not held.nodes:
                del watched.holders[event.user]
                events.on_leave(channel, event.user, event.info)

    # Live nodes.

    async def _on_hello(self, msg: Msg) -> None:
        node = msg.data.decode(errors="replace")
        self._live.add(node)
        self._heard.setdefault(node, time.monotonic())

    async def _heartbeat(self) -> None:
        if self._registry is not None:
            await self._registry.put(self.node_id, self._card)

    async def _read_registry(self) -> None:
        """Learn which nodes are alive, and bury those known before and gone now.

        A node is known once it was in a registry read, or was heard of (an event, a
        key, a hello) before this read began: it put its heartbeat before any of those.
        """
        connection = self._connection
        if connection is None or self._js is None:
            return
        started = time.monotonic()
        live_before = set(self._live)
        known = live_before | {node for node, heard in self._heard.items() if heard < started}
        name = self._names.nodes_bucket
        messages = await read_snapshot(
            connection,
            self._js,
            f"KV_{name}",
            f"$KV.{name}.>",
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        )
        live = {msg.subject.rpartition(".")[2] for msg in messages if not is_deleted(msg)}
        live.add(self.node_id)
        # Nodes that said hello during the read stay, even if the read missed them.
        self._live = live | (self._live - live_before)
        for node in live:
            self._buried.pop(node, None)
        for node in known - self._live:
            self._bury(node)
        for node, until in list(self._buried.items()):
            if until < started:
                del self._buried[node]

    def _bury(self, node: str) -> None:
        """``node`` stopped refreshing (it closed, crashed, or lost NATS for a TTL)."""
        logger.info("node %s is gone from the registry: its members leave", node)
        # Its keys may outlive the heartbeat by up to a refresh: hidden until they expire.
        self._buried[node] = time.monotonic() + 2 * self._ttl
        self._heard.pop(node, None)
        events = self._events
        for channel, watched in list(self._watched.items()):
            for user, held in list(watched.holders.items()):
                if node not in held.nodes:
                    continue
                held.nodes.discard(node)
                if not held.nodes:
                    del watched.holders[user]
                    if events is not None:
                        events.on_leave(channel, user, held.info)

    async def _refresh_forever(self) -> None:
        """Every third of the TTL: put this node's keys again, then its heartbeat; read the
        registry. Never stops on an error: the next round may succeed."""
        while True:
            await asyncio.sleep(self._ttl / 3)
            connection = self._connection
            if connection is None or not connection.is_connected:
                continue  # resync restores everything once NATS is back
            try:
                await reach_nats("refreshing presence", self._timeout, self._refresh())
            except BrokerUnavailableError as exc:
                logger.warning("%s", exc)
            except Exception:
                logger.exception("refreshing presence failed")

    async def _refresh(self) -> None:
        await _each(list(self._owned()), lambda key: self._put_again(*key))
        await self._heartbeat()  # after the keys: the last of this node's to expire
        await self._read_registry()

    async def _put_again(self, channel: str, user: str) -> None:
        # Under the key's lock and from what is held now: a leave in flight is never undone.
        async with self._locks.hold((channel, user)):
            member = self._own.get(channel, {}).get(user)
            if member is not None:
                bucket, _ = self._reachable()
                await bucket.put(self._key(channel, user), _entry(member))


async def _each(items: list[T], work: Callable[[T], Awaitable[None]]) -> None:
    """``work`` on every item, at most _BATCH at a time."""
    for start in range(0, len(items), _BATCH):
        await asyncio.gather(*(work(item) for item in items[start : start + _BATCH]))


def _entry(member: Member) -> bytes:
    return orjson.dumps(
        {"user": member.user, "info": member.info, "connections": member.connections}
    )


def _parse_entry(data: bytes) -> tuple[str, Info, int] | None:
    try:
        value = orjson.loads(data)
        user, info, connections = value["user"], value["info"], value["connections"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if not isinstance(user, str) or not isinstance(connections, int):
        return None
    if info is not None and not isinstance(info, dict):
        return None
    return user, info, connections


def _parse_event(data: bytes) -> _Event:
    try:
        value = orjson.loads(data)
        joined, user, info, node = value["joined"], value["user"], value["info"], value["node"]
    except (KeyError, TypeError) as exc:  # orjson's own error is a ValueError already
        raise ValueError("not a presence event") from exc
    if not isinstance(joined, bool) or not isinstance(user, str) or not isinstance(node, str):
        raise ValueError("not a presence event")
    if info is not None and not isinstance(info, dict):
        raise ValueError("not a presence event")
    return _Event(joined, user, info, node)
