"""The broker seam: how publications travel between nodes and where history lives.

A node never stores or forwards a publication itself: it asks its broker, and the
broker hands every publication (the node's own and other nodes') back through
:class:`BrokerEvents`. The protocols live here, in the core that depends on them;
implementations live in ``pushwire.brokers`` and import this module, never the reverse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pushwire.core.history import HistoryPage, Publication, StreamPosition
from pushwire.core.presence import Member

__all__ = ["Broker", "BrokerEvents", "HistoryOptions", "PublishDone", "PublishesSoon"]

#: Told how a publication made by ``PublishesSoon.publish_soon`` ended: the publication
#: (stored and fanned out) and None, or None and the error.
PublishDone = Callable[["Publication | None", "BaseException | None"], None]


@dataclass(frozen=True, slots=True)
class HistoryOptions:
    """How much history one channel keeps: ``size`` publications, none older than the TTL."""

    size: int = 1000
    ttl_seconds: float = 86400.0


class PublishesSoon(Protocol):
    """A broker that can publish without being awaited (the embedded one).

    ``Broker.publish`` needs a coroutine per publication, and a request that waits for
    it a task; at tens of thousands of publications a second that machinery costs more
    than storing one. ``publish_soon`` takes a callback instead, with the same promise.
    """

    def publish_soon(
        self,
        channel: str,
        data: bytes,
        *,
        event: str | None,
        options: HistoryOptions,
        publisher: bytes | None,
        on_done: PublishDone,
    ) -> None:
        """As ``Broker.publish``; ``on_done`` is called once history holds it (maybe at once).

        Publications keep the order of the calls, whichever method made them.
        """


class BrokerEvents(Protocol):
    """What a broker tells its node. Called on the node's event loop, never concurrently."""

    def on_publication(self, publication: Publication) -> None:
        """A publication on a channel this node subscribed to (its own or another node's).

        The node does not trust the broker to deliver exactly once and in order:
        a networked broker may drop, repeat or reorder. The node drops what it has
        already delivered and fills holes from history (or reports a gap).
        """

    def on_resubscribed(self) -> None:
        """The broker lost its connection and has subscribed again to every channel.

        Anything published meanwhile reached no node: the node checks each of its
        channels against history and fills what it missed (or reports a gap).
        """

    def on_join(self, channel: str, user: str, info: dict[str, object] | None) -> None:
        """``user`` became a member of ``channel``: their first connection on any node."""

    def on_leave(self, channel: str, user: str, info: dict[str, object] | None) -> None:
        """``user`` is no member of ``channel`` any more: their last connection went, on
        whichever node, or the node that held it stopped refreshing it (crashed)."""

    def on_survey(self, question: bytes) -> bytes:
        """Answer a question another node (or this one) asked every node (see ``survey``)."""


class Broker(Protocol):
    """Carries publications between nodes and keeps per-channel history.

    Guarantees a broker gives:
      - ``publish`` appends to history and fans out; both happen or neither does.
      - Offsets of one channel count up by one within an epoch; a new epoch means
        the history before it is gone.
      - ``Publication.time`` comes from one clock for the whole cluster (the
        broker's), so that replay across channels has one order on every node.

    Guarantees it does not give: exactly-once or in-order delivery to
    :meth:`BrokerEvents.on_publication` (see there).
    """

    name: str  # "memory", "redis", "nats": shown in health and logs

    @property
    def connected(self) -> bool:
        """Whether the broker is reachable now. While it is not, ``publish`` raises
        :class:`~pushwire.errors.BrokerUnavailableError` at once, and ``GET /health``
        says the node is degraded."""

    async def start(self, events: BrokerEvents) -> None:
        """Begin delivering publications (from every node) to ``events``."""

    async def close(self) -> None:
        """Stop delivering and release connections and files."""

    async def publish(
        self,
        channel: str,
        data: bytes,
        *,
        event: str | None,
        options: HistoryOptions,
        publisher: bytes | None = None,
    ) -> Publication:
        """Append to history and fan out to every node; returns once history holds it.

        ``publisher`` (a client's verified identity, JSON) is kept with the publication.
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
        """This node has local subscribers on ``channel``: deliver its publications here.

        Not counted: the node calls it once when a channel gains its first local
        subscriber and :meth:`unsubscribe` once when it loses its last, and never
        lets the two overlap for one channel.
        """

    async def unsubscribe(self, channel: str) -> None:
        """This node no longer has local subscribers on ``channel``."""

    async def join(self, channel: str, member: Member) -> None:
        """This node now holds ``member.connections`` connections of ``member.user`` on ``channel``.

        Called again whenever that count (or the user's info) changes. The first time
        the user is a member anywhere in the cluster, every node hears ``on_join``.
        Calls for one channel and user take effect in the order they were made.
        """

    async def leave(self, channel: str, user: str) -> None:
        """This node holds no connection of ``user`` on ``channel`` any more.

        When no node holds one, every node hears ``on_leave``.
        """

    async def members(self, channel: str) -> list[Member]:
        """The members of ``channel`` across the cluster, sorted by user, connections summed."""

    async def survey(self, question: bytes) -> list[bytes]:
        """Ask every live node (this one included) ``question``; their answers.

        Nodes that do not answer within a short time are left out: a survey is for
        statistics and best-effort commands (a disconnect), never for delivery.
        """
