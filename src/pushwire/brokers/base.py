"""The broker seam: how publications travel between nodes and where history lives.

A node never stores or forwards a publication itself; it asks its broker, and
the broker hands every publication (its own and other nodes') back through the
handler given to :meth:`Broker.start`. Adding Redis or NATS means adding one
module that satisfies :class:`Broker`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pushwire.core.history import HistoryPage, Publication, StreamPosition

__all__ = ["Broker", "HistoryOptions", "HistoryStore", "PublicationHandler"]

PublicationHandler = Callable[[Publication], None]


@dataclass(frozen=True, slots=True)
class HistoryOptions:
    """How much history one channel keeps: ``size`` publications, none older than the TTL."""

    size: int = 1000
    ttl_seconds: float = 86400.0


class Broker(Protocol):
    """Carries publications between nodes and keeps per-channel history."""

    async def start(self, on_publication: PublicationHandler) -> None:
        """Begin delivering publications (from every node) to ``on_publication``."""

    async def close(self) -> None:
        """Stop delivering and release connections and files."""

    async def publish(
        self, channel: str, data: bytes, *, event: str | None, options: HistoryOptions
    ) -> Publication:
        """Append to history and fan out to every node; both happen or neither does.

        Returns the publication with its position, once history holds it.
        """

    async def history(
        self,
        channel: str,
        *,
        since: StreamPosition | None,
        limit: int,
        options: HistoryOptions,
    ) -> HistoryPage:
        """Read up to ``limit`` publications after ``since`` (oldest first).

        With ``since`` None, the newest ``limit`` publications. Publications of
        another epoch than ``since`` are never returned.
        """

    async def subscribe(self, channel: str) -> None:
        """This node has local subscribers on ``channel``: deliver its publications here."""

    async def unsubscribe(self, channel: str) -> None:
        """This node no longer has local subscribers on ``channel``."""


class HistoryStore(Protocol):
    """Where an embedded broker keeps history: in memory, or in a SQLite file.

    Synchronous on purpose: both implementations answer in microseconds, and
    appending without yielding keeps publication order equal to call order.
    """

    def append(
        self, channel: str, data: bytes, event: str | None, options: HistoryOptions, now: float
    ) -> Publication:
        """Store one publication at the next offset of the channel's stream."""

    def read(
        self,
        channel: str,
        since: StreamPosition | None,
        limit: int,
        options: HistoryOptions,
        now: float,
    ) -> HistoryPage:
        """Publications after ``since`` (or the newest ones), oldest first, and the top."""

    def top(self, channel: str) -> StreamPosition:
        """The position of the channel's newest publication (offset 0 if none yet)."""

    def close(self) -> None:
        """Release the store's resources."""
