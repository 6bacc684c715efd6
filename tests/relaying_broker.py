"""A broker for node tests: the real embedded one, with its deliveries in the test's hands.

Everything goes to a real :class:`MemoryBroker`, except that each publication it hands
back passes :meth:`RelayingBroker.relay` first, which subclasses override to hold,
drop or repeat it, as a networked broker may.
"""

from __future__ import annotations

from pushwire.brokers.memory import MemoryBroker
from pushwire.brokers.memory_history import MemoryHistoryStore
from pushwire.core.broker import BrokerEvents, HistoryOptions
from pushwire.core.history import HistoryPage, Publication, StreamPosition
from pushwire.core.presence import Member

__all__ = ["RelayingBroker"]


class RelayingBroker:
    name = "relaying"

    def __init__(self) -> None:
        self.inner = MemoryBroker(MemoryHistoryStore())
        self.events: BrokerEvents | None = None
        self.subscribed: set[str] = set()

    def relay(self, publication: Publication) -> None:
        """Hand ``publication`` on to the node (what subclasses change)."""
        self.deliver(publication)

    def deliver(self, *publications: Publication) -> None:
        assert self.events is not None, "the broker is not started"
        for publication in publications:
            self.events.on_publication(publication)

    # BrokerEvents, as the inner broker sees this one.

    def on_publication(self, publication: Publication) -> None:
        self.relay(publication)

    def on_resubscribed(self) -> None:
        pass

    def on_join(self, channel: str, user: str, info: dict[str, object] | None) -> None:
        assert self.events is not None
        self.events.on_join(channel, user, info)

    def on_leave(self, channel: str, user: str, info: dict[str, object] | None) -> None:
        assert self.events is not None
        self.events.on_leave(channel, user, info)

    def on_survey(self, question: bytes) -> bytes:
        assert self.events is not None
        return self.events.on_survey(question)

    # Broker.

    @property
    def connected(self) -> bool:
        return self.inner.connected

    async def start(self, events: BrokerEvents) -> None:
        self.events = events
        await self.inner.start(self)

    async def close(self) -> None:
        await self.inner.close()

    async def publish(
        self,
        channel: str,
        data: bytes,
        *,
        event: str | None,
        options: HistoryOptions,
        publisher: bytes | None = None,
    ) -> Publication:
        return await self.inner.publish(
            channel, data, event=event, options=options, publisher=publisher
        )

    async def history(
        self, channel: str, *, since: StreamPosition | None, limit: int, options: HistoryOptions
    ) -> HistoryPage:
        return await self.inner.history(channel, since=since, limit=limit, options=options)

    async def join(self, channel: str, member: Member) -> None:
        await self.inner.join(channel, member)

    async def leave(self, channel: str, user: str) -> None:
        await self.inner.leave(channel, user)

    async def members(self, channel: str) -> list[Member]:
        return await self.inner.members(channel)

    async def survey(self, question: bytes) -> list[bytes]:
        return await self.inner.survey(question)

    async def subscribe(self, channel: str) -> None:
        self.subscribed.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.subscribed.discard(channel)
