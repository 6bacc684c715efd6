"""The seam between the client and its transports (WebSocket, SSE).

A connection carries subscribe and publish requests to one server and reports
what arrives through :class:`ConnectionEvents`. It never reconnects, remembers
cursors or drops duplicates: the client does, the same way over every transport.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pushwire.client.messages import Member, Message, PresenceEvent, PublishResult
from pushwire.errors import PushwireError

__all__ = ["Closed", "Connection", "ConnectionEvents", "TokenSource"]

#: Fetches a fresh connection token (the application's ``get_token``).
TokenSource = Callable[[], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Closed:
    """How a connection ended: what the client needs to decide whether to come back.

    Attributes:
        reason: for logs and ``on_disconnect``.
        code: the server's WebSocket close code, or the ``code`` of an SSE
            ``pushwire.disconnect`` event; None when the connection just broke.
        close_reason: the reason the server gave with ``code``, as it gave it.
        reconnect: false when the server said not to come back by itself.
        refused: the server refused the token (an HTTP 401 on a stream); None otherwise.
    """

    reason: str
    code: int | None = None
    close_reason: str = ""
    reconnect: bool = True
    refused: PushwireError | None = None


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

    def on_unsubscribed(self, channel: str) -> None:
        """The server took ``channel`` away (``POST /api/unsubscribe``); don't ask again."""

    def on_presence(self, event: PresenceEvent) -> None:
        """A user joined or left ``event.channel``, in order with its messages."""


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

    async def presence(self, channel: str) -> list[Member]:
        """The members of ``channel`` now; the caller bounds the time.

        Raises:
            ClientError: the server refused (``bad_request`` if presence is off,
                ``permission_denied``...).
            ConnectionLostError: the connection dropped before the answer.
        """

    async def wait_closed(self) -> Closed:
        """Wait until the connection is gone; returns how it ended."""

    async def close(self) -> None:
        """Close on purpose; returns when resources are released."""
