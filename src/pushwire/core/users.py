"""Which local connections each user has: for per-user limits, disconnects, unsubscribes.

Anonymous connections are not kept here. Transports register a connection once its
identity is known and remove it when it ends.
"""

from __future__ import annotations

from typing import Protocol

from pushwire.errors import Disconnect

__all__ = ["UserConnection", "UserRegistry"]


class UserConnection(Protocol):
    """A client connection that the server may end or take a subscription from."""

    def close(self, reason: Disconnect) -> None: ...

    def unsubscribe(self, channel: str) -> bool:
        """Stop delivering ``channel`` to this connection; True if it was subscribed."""


class UserRegistry:
    """User id -> that user's connections on this node."""

    __slots__ = ("_connections",)

    def __init__(self) -> None:
        self._connections: dict[str, set[UserConnection]] = {}

    def add(self, user: str, connection: UserConnection) -> None:
        self._connections.setdefault(user, set()).add(connection)

    def remove(self, user: str, connection: UserConnection) -> None:
        connections = self._connections.get(user)
        if connections is not None:
            connections.discard(connection)
            if not connections:
                del self._connections[user]

    def count(self, user: str) -> int:
        return len(self._connections.get(user, ()))

    def connections(self, user: str) -> list[UserConnection]:
        return list(self._connections.get(user, ()))
