"""The seam between the client and its transports (WebSocket, SSE).

A connection carries subscribe and publish requests to one server and reports
what arrives through :class:`ConnectionEvents`. It never reconnects, remembers
cursors or drops duplicates: the client does, the same way over every transport.
"""

from __future__ import annotations

from typing import Any, Protocol

from pushwire.client.messages import Message, PublishResult
from pushwire.errors import PushwireError

__all__ = ["Connection", "ConnectionEvents"]


class ConnectionEvents(Protocol):
    """What a connection reports, in the order it arrived on the wire."""

    def on_subscribed(self, channel: str, cursor: str | None, recovered: bool | None) -> None:
        """``channel`` is live on this connection.

        ``cursor`` is where delivery continues from; ``recovered`` is None for a
        subscription without a cursor, true if every missed message follows, and
        false if some were lost (delivery then continues from ``cursor``).
        """

    def on_subscribe_failed(self, channel: str, error: PushwireError) -> None:
        """The server refused to subscribe ``channel`` (invalid name, cursor, limit)."""

    def on_message(self, message: Message, cursor: str) -> None:
        """A message, and the cursor to resume from once it is delivered."""

    def on_gap(self, channel: str, cursor: str) -> None:
        """Messages on a live subscription were lost; delivery continues after ``cursor``."""


class Connection(Protocol):
    """One open connection to a server, over one transport."""

    @property
    def transport(self) -> str:
        """``"websocket"`` or ``"sse"``."""

    async def subscribe(self, channel: str, cursor: str | None) -> None:
        """Ask for ``channel`` (from ``cursor`` if given); the outcome arrives as an event.

        Never raises for a lost connection: :meth:`wait_closed` reports that.
        """

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving ``channel``; messages already in flight may still arrive."""

    async def publish(self, channel: str, data: Any, event: str | None) -> PublishResult:
        """Publish and wait for the server's answer; the caller bounds the time.

        Raises:
            ClientError: the server refused (``permission_denied``, ...).
            ConnectionLostError: the connection dropped before the answer.
        """

    async def wait_closed(self) -> str:
        """Wait until the connection is gone; returns why, for logs and callbacks."""

    async def close(self) -> None:
        """Close on purpose; returns when resources are released."""
