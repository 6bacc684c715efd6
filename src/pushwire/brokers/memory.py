"""MemoryBroker: one process, no network; history in memory or in SQLite.

The embedded default behind ``pushwire serve``. Publishing appends to the history
store and hands the publication straight to the node, without yielding to the
event loop, so publications reach subscribers in exactly the order of the calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pushwire.brokers.base import HistoryOptions, HistoryStore, PublicationHandler
from pushwire.core.history import HistoryPage, Publication, StreamPosition
from pushwire.errors import UsageError

__all__ = ["MemoryBroker"]


class MemoryBroker:
    """A broker for a single node: local fan-out over a local history store."""

    __slots__ = ("_clock", "_handler", "_store")

    def __init__(self, store: HistoryStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._handler: PublicationHandler | None = None

    async def start(self, on_publication: PublicationHandler) -> None:
        self._handler = on_publication

    async def close(self) -> None:
        self._handler = None
        self._store.close()

    async def publish(
        self, channel: str, data: bytes, *, event: str | None, options: HistoryOptions
    ) -> Publication:
        handler = self._handler
        if handler is None:
            raise UsageError("broker is not started")
        publication = self._store.append(channel, data, event, options, self._clock())
        handler(publication)
        return publication

    async def history(
        self,
        channel: str,
        *,
        since: StreamPosition | None,
        limit: int,
        options: HistoryOptions,
    ) -> HistoryPage:
        return self._store.read(channel, since, limit, options, self._clock())

    async def subscribe(self, channel: str) -> None:
        # Every publication of this process already reaches the handler.
        pass

    async def unsubscribe(self, channel: str) -> None:
        pass
