"""The Redis broker's presence: the members this node holds, and everyone's, in Redis.

Per channel, a hash of (user, node) entries with an expiry each (a sorted set),
written by the ``JOIN``, ``LEAVE`` and ``MEMBERS`` scripts (see ``redis_scripts``),
which decide and tell each join and leave once, however many nodes race. This
node remembers what it holds, to write it again after a relink and every third of
``presence_ttl_seconds``; a crashed node stops refreshing, and its users expire.
"""

from __future__ import annotations

import asyncio
from collections.abc import Set
from typing import Any

import orjson

from pushwire.brokers.redis_link import RedisLink
from pushwire.brokers.redis_pipe import await_answer
from pushwire.brokers.redis_scripts import JOIN, LEAVE, MEMBERS, ChannelKeys
from pushwire.brokers.registry import BrokerSettings
from pushwire.core.broker import BrokerEvents
from pushwire.core.presence import Member

__all__ = ["RedisPresence"]


class RedisPresence:
    """Joins and leaves of this node's members, the members of a channel, and the sweep.

    Expired entries are swept (and their users told to leave) whenever a channel's
    members are read: on :meth:`members`, and on every refresh for the channels
    this node has subscribers on and has seen presence on.
    """

    def __init__(self, link: RedisLink, settings: BrokerSettings, *, node: str) -> None:
        self._link = link
        self._settings = settings
        self._node = node
        self._held: dict[tuple[str, str], bytes] = {}  # (channel, user) -> entry payload
        self._watched: set[str] = set()  # channels whose stale members we sweep

    async def join(self, channel: str, member: Member) -> None:
        """Hold ``member`` on ``channel``; tell Redis now if linked, else on the next link."""
        payload = orjson.dumps(
            {"user": member.user, "info": member.info, "connections": member.connections}
        )
        self._held[(channel, member.user)] = payload
        self._watched.add(channel)
        if self._link.connected:
            await await_answer(
                self._join_call(channel, member.user, payload), self._settings.timeout_seconds
            )

    async def leave(self, channel: str, user: str) -> None:
        """Hold ``user`` on ``channel`` no more; Redis tells every node if it was the last."""
        if self._held.pop((channel, user), None) is None:
            return
        if self._link.connected:
            await await_answer(self._leave_call(channel, user), self._settings.timeout_seconds)

    async def members(self, channel: str) -> list[Member]:
        """Every node's members of ``channel``, sorted by user, connections summed."""
        keys = ChannelKeys.of(self._settings.prefix, channel)
        payloads = await await_answer(
            self._link.pipe.call(MEMBERS, keys.presence, (keys.topic, self._link.mode)),
            self._settings.timeout_seconds,
        )
        merged: dict[str, Member] = {}
        for payload in payloads:
            entry = orjson.loads(payload)
            user = entry["user"]
            known = merged.get(user)
            connections = entry["connections"] + (0 if known is None else known.connections)
            merged[user] = Member(user, entry["info"], connections)
        return [merged[user] for user in sorted(merged)]

    def on_event(self, channel: str, data: bytes, events: BrokerEvents) -> None:
        """A join (``j``) or leave (``l``) the scripts published on ``channel``'s topic."""
        entry = orjson.loads(data[1:])
        self._watched.add(channel)
        if data[:1] == b"j":
            events.on_join(channel, entry["user"], entry["info"])
        else:
            events.on_leave(channel, entry["user"], entry["info"])

    def unwatch(self, channel: str) -> None:
        """This node has no subscribers on ``channel`` any more: leave its sweep to others."""
        self._watched.discard(channel)

    def rejoin_all(self) -> None:
        """After a relink: what this node holds may have expired meanwhile; write it again."""
        for (channel, user), payload in list(self._held.items()):
            self._join_call(channel, user, payload).add_done_callback(_ignore_result)

    def refresh_calls(self, subscribed: Set[str]) -> list[asyncio.Future[Any]]:
        """Queue the refresh of everything held, and the sweep of ``subscribed`` channels."""
        held = list(self._held.items())
        calls = [self._join_call(channel, user, payload) for (channel, user), payload in held]
        for channel in list(self._watched & subscribed):
            keys = ChannelKeys.of(self._settings.prefix, channel)
            calls.append(
                self._link.pipe.call(MEMBERS, keys.presence, (keys.topic, self._link.mode))
            )
        return calls

    def leave_all(self) -> list[asyncio.Future[Any]]:
        """Hold nothing any more; the queued leaves (none while unlinked: they would fail)."""
        held, self._held = self._held, {}
        if not self._link.connected:
            return []
        return [self._leave_call(channel, user) for channel, user in held]

    def _join_call(self, channel: str, user: str, payload: bytes) -> asyncio.Future[Any]:
        keys = ChannelKeys.of(self._settings.prefix, channel)
        args = (
            f"{user}\0{self._node}",
            payload,
            user,
            self._settings.presence_ttl_seconds,
            keys.topic,
            self._link.mode,
        )
        return self._link.pipe.call(JOIN, keys.presence, args)

    def _leave_call(self, channel: str, user: str) -> asyncio.Future[Any]:
        keys = ChannelKeys.of(self._settings.prefix, channel)
        args = (f"{user}\0{self._node}", user, keys.topic, self._link.mode)
        return self._link.pipe.call(LEAVE, keys.presence, args)


def _ignore_result(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
