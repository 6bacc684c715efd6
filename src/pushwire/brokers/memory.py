"""MemoryBroker: one process, no network; history in memory or in SQLite.

The embedded default behind ``pushwire serve``. Publishing appends to the history
store and hands the publication straight to the node, without yielding to the
event loop, so publications reach subscribers in exactly the order of the calls.
:class:`HistoryStore` is the seam between this broker and its two stores.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import NamedTuple, Protocol

from pushwire.core.broker import BrokerEvents, HistoryOptions, PublishDone
from pushwire.core.history import HistoryPage, Publication, StreamPosition
from pushwire.core.presence import Member
from pushwire.errors import UsageError

__all__ = ["Append", "HistoryStore", "MemoryBroker"]

logger = logging.getLogger("pushwire.history")

# Every second, at most this many streams are looked at for expiry.
SWEEP_INTERVAL_SECONDS = 1.0
SWEEP_BUDGET = 1000


class Append(NamedTuple):
    """One publication to store, as :meth:`HistoryStore.append` takes it.

    A named tuple, not a frozen dataclass: one is made per publication, and a tuple
    is made in a third of the time.
    """

    channel: str
    data: bytes
    event: str | None
    options: HistoryOptions
    publisher: bytes | None = None


class HistoryStore(Protocol):
    """Where the embedded broker keeps history: in memory, or in a SQLite file.

    Synchronous on purpose: both implementations answer in microseconds, and
    appending without yielding keeps publication order equal to call order.
    """

    def append(
        self,
        channel: str,
        data: bytes,
        event: str | None,
        options: HistoryOptions,
        now: float,
        *,
        publisher: bytes | None = None,
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

    def append_many(self, batch: list[Append], now: float) -> list[Publication]:
        """Store a batch at once, in order: for stores whose cost is per commit, not per row.

        Either all of the batch is stored or none (the exception says why).
        """

    #: True if :meth:`append_many` is much cheaper than appending one at a time (a
    #: file store, where each commit is a write to disk): the broker then groups the
    #: publications of one event-loop iteration into one commit.
    commits_in_groups: bool

    def checkpoint(self) -> None:
        """Housekeeping that may take long, run on a thread of its own (or nothing).

        Everything else is called on the event loop; this must use a connection
        (or whatever it needs) of its own.
        """

    def watch(self, channel: str) -> None:
        """``channel`` has subscribers on this node: keep its stream while it does."""

    def unwatch(self, channel: str, now: float) -> None:
        """``channel`` has no subscribers any more (its idle time starts at ``now``)."""

    def sweep(self, now: float, budget: int) -> int:
        """Expire old publications and forget idle streams, in a bounded amount of work.

        Returns how many streams were forgotten.
        """

    def stream_count(self) -> int:
        """How many channels' streams the store holds."""

    def publication_count(self) -> int:
        """How many publications the store holds, over every stream."""

    def close(self) -> None:
        """Release the store's resources."""


class MemoryBroker:
    """A broker for a single node: local fan-out over a local history store.

    With a store that ``commits_in_groups`` (SQLite), the publications of one
    event-loop iteration are stored in one commit, then fanned out and
    acknowledged: a publication is acknowledged only once it is committed. The
    commit itself is a write to the write-ahead log, done on the loop (a thread
    hand-off per group cost more CPU than it saved, measured: docs/performance.md);
    copying the log into the database file, which can take milliseconds, runs on a
    thread of its own (``checkpoint``).
    """

    __slots__ = (
        "_checkpointing",
        "_clock",
        "_events",
        "_members",
        "_queue",
        "_store",
        "_sweep_handle",
    )

    name = "memory"

    def __init__(self, store: HistoryStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._events: BrokerEvents | None = None
        self._sweep_handle: asyncio.TimerHandle | None = None
        # Channel -> user -> member: with one node, this node's members are all of them.
        self._members: dict[str, dict[str, Member]] = {}
        # Publications waiting for this loop iteration's group commit, each with the
        # future of an awaiting publish() or the callback of a publish_soon().
        self._queue: list[tuple[Append, asyncio.Future[Publication] | PublishDone]] = []
        self._checkpointing: asyncio.Future[None] | None = None

    @property
    def connected(self) -> bool:
        return True  # nothing between this broker and its node can fail

    def history_size(self) -> tuple[int, int]:
        """The streams and the publications history holds (read by the metrics)."""
        return self._store.stream_count(), self._store.publication_count()

    async def start(self, events: BrokerEvents) -> None:
        self._events = events
        self._schedule_sweep()

    async def close(self) -> None:
        self._commit()  # what was accepted is committed and acknowledged first
        self._events = None
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None
        if self._checkpointing is not None:
            await asyncio.wait([self._checkpointing])
        self._store.close()

    def _schedule_sweep(self) -> None:
        self._sweep_handle = asyncio.get_running_loop().call_later(
            SWEEP_INTERVAL_SECONDS, self._sweep
        )

    def _sweep(self) -> None:
        """A bounded slice of expiry every interval: never a pause that stops the loop."""
        try:
            self._store.sweep(self._clock(), SWEEP_BUDGET)
        except Exception:
            logger.exception("sweeping history failed")
        if self._store.commits_in_groups and (
            self._checkpointing is None or self._checkpointing.done()
        ):
            loop = asyncio.get_running_loop()
            self._checkpointing = loop.run_in_executor(None, self._checkpoint)
        self._schedule_sweep()

    def _checkpoint(self) -> None:
        try:
            self._store.checkpoint()
        except Exception:
            logger.exception("checkpointing history failed")

    async def publish(
        self,
        channel: str,
        data: bytes,
        *,
        event: str | None,
        options: HistoryOptions,
        publisher: bytes | None = None,
    ) -> Publication:
        events = self._events
        if events is None:
            raise UsageError("broker is not started")
        if not self._store.commits_in_groups:
            publication = self._store.append(
                channel, data, event, options, self._clock(), publisher=publisher
            )
            events.on_publication(publication)
            return publication
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Publication] = loop.create_future()
        self._queue.append((Append(channel, data, event, options, publisher), future))
        if len(self._queue) == 1:
            # After the rest of this loop iteration: what it publishes joins the group.
            loop.call_soon(self._commit)
        return await future

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
        """``publish`` without a coroutine: ``on_done`` is called once it is committed."""
        events = self._events
        if events is None:
            on_done(None, UsageError("broker is not started"))
            return
        if not self._store.commits_in_groups:
            try:
                publication = self._store.append(
                    channel, data, event, options, self._clock(), publisher=publisher
                )
            except Exception as exc:
                on_done(None, exc)
                return
            events.on_publication(publication)
            on_done(publication, None)
            return
        self._queue.append((Append(channel, data, event, options, publisher), on_done))
        if len(self._queue) == 1:
            asyncio.get_running_loop().call_soon(self._commit)

    def _commit(self) -> None:
        if not self._queue:
            return
        batch, self._queue = self._queue, []
        events = self._events
        try:
            if events is None:
                raise UsageError("broker is closed")
            publications = self._store.append_many([a for a, _ in batch], self._clock())
        except Exception as exc:
            for _, waiter in batch:
                _settle(waiter, None, exc)
            return
        for publication, (_, waiter) in zip(publications, batch, strict=True):
            events.on_publication(publication)
            _settle(waiter, publication, None)

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
        # Every publication of this process already reaches the node; the store only
        # needs to know that the channel's stream is in use.
        self._store.watch(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._store.unwatch(channel, self._clock())

    # Presence, and questions to every node: with one node, answered here at once.

    async def join(self, channel: str, member: Member) -> None:
        members = self._members.setdefault(channel, {})
        first = member.user not in members
        members[member.user] = member
        if first and self._events is not None:
            self._events.on_join(channel, member.user, member.info)

    async def leave(self, channel: str, user: str) -> None:
        members = self._members.get(channel)
        member = None if members is None else members.pop(user, None)
        if member is None:
            return
        if not members:
            del self._members[channel]
        if self._events is not None:
            self._events.on_leave(channel, user, member.info)

    async def members(self, channel: str) -> list[Member]:
        return sorted(self._members.get(channel, {}).values(), key=_user)

    async def survey(self, question: bytes) -> list[bytes]:
        events = self._events
        if events is None:
            raise UsageError("broker is not started")
        return [events.on_survey(question)]


def _user(member: Member) -> str:
    return member.user


def _settle(
    waiter: asyncio.Future[Publication] | PublishDone,
    publication: Publication | None,
    exc: Exception | None,
) -> None:
    """Tell an awaiting ``publish`` or a ``publish_soon`` callback how its publication ended."""
    if isinstance(waiter, asyncio.Future):
        if waiter.done():
            return  # its caller was cancelled
        if exc is not None:
            waiter.set_exception(exc)
        else:
            assert publication is not None  # one or the other
            waiter.set_result(publication)
        return
    try:
        waiter(publication, exc)
    except Exception:  # one caller's bug must not keep the rest of the group waiting
        logger.exception("a publication's callback failed")
