"""Presence: who is subscribed to a channel, and the join and leave events.

Members are users (a token's ``sub``), not connections: one user with three tabs
is one member with ``connections == 3``, who joins when the first subscribes and
leaves when the last goes. Anonymous connections are never members. Counted
here by each node for its own connections; the broker keeps them for the
cluster (``core.broker.Broker.join``) and tells every node who joined and left.
"""

from __future__ import annotations

from dataclasses import dataclass

from pushwire.core.history import StreamPosition

__all__ = ["Join", "Leave", "LocalPresence", "Member"]


@dataclass(frozen=True, slots=True)
class Member:
    """A user subscribed to a channel, with what their token's ``info`` shows of them."""

    user: str
    info: dict[str, object] | None
    connections: int


@dataclass(frozen=True, slots=True)
class Join:
    """``user``'s first connection subscribed to ``channel``.

    ``position`` is the channel's stream position when it happened: a join takes
    no place in the stream, it is ordered among the channel's messages.
    """

    channel: str
    user: str
    info: dict[str, object] | None
    position: StreamPosition


@dataclass(frozen=True, slots=True)
class Leave:
    """``user``'s last connection to ``channel`` went away."""

    channel: str
    user: str
    info: dict[str, object] | None
    position: StreamPosition


class _Entry:
    __slots__ = ("connections", "info")

    def __init__(self, info: dict[str, object] | None) -> None:
        self.info = info
        self.connections = 0


class LocalPresence:
    """Members per channel, counted from this node's connections."""

    __slots__ = ("_channels",)

    def __init__(self) -> None:
        self._channels: dict[str, dict[str, _Entry]] = {}

    def add(self, channel: str, user: str, info: dict[str, object] | None) -> bool:
        """Count one more connection of ``user``; True if it is the user's first."""
        members = self._channels.setdefault(channel, {})
        entry = members.get(user)
        first = entry is None
        if entry is None:
            entry = members[user] = _Entry(info)
        else:
            entry.info = info  # the newest token says best what the user looks like
        entry.connections += 1
        return first

    def remove(self, channel: str, user: str) -> tuple[bool, dict[str, object] | None]:
        """Count one connection fewer: whether that was the user's last, and their info."""
        members = self._channels.get(channel)
        entry = None if members is None else members.get(user)
        if entry is None or members is None:
            return False, None
        entry.connections -= 1
        if entry.connections > 0:
            return False, entry.info
        del members[user]
        if not members:
            del self._channels[channel]
        return True, entry.info

    def member(self, channel: str, user: str) -> Member | None:
        """``user`` as a member of ``channel`` on this node, or None if not one."""
        entry = self._channels.get(channel, {}).get(user)
        return None if entry is None else Member(user, entry.info, entry.connections)

    def members(self, channel: str) -> list[Member]:
        members = self._channels.get(channel, {})
        return [
            Member(user, entry.info, entry.connections) for user, entry in sorted(members.items())
        ]
