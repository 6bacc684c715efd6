"""Subscriptions: one channel's cursor, duplicate filter and queue of deliveries.

:class:`Subscriptions` hears what connections report (it is their
``ConnectionEvents``) and turns it into :class:`Message` and :class:`Gap` items
(and :class:`Join` and :class:`Leave` events for those who asked); each
:class:`Subscription` hands its items out in order, through its async iterator
or to its callbacks. Connections come and go; subscriptions stay, until the
application or the server ends them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

from pushwire.client.messages import Gap, Join, Leave, Member, Message, PresenceEvent
from pushwire.errors import PushwireError, UsageError

__all__ = [
    "GapCallback",
    "Item",
    "JoinCallback",
    "LeaveCallback",
    "MessageCallback",
    "Subscription",
    "Subscriptions",
    "UnsubscribedCallback",
]

logger = logging.getLogger("pushwire.client")

Item = Message | Gap
MessageCallback = Callable[[Message], Awaitable[None] | None]
GapCallback = Callable[[Gap], Awaitable[None] | None]
JoinCallback = Callable[[Join], Awaitable[None] | None]
LeaveCallback = Callable[[Leave], Awaitable[None] | None]
UnsubscribedCallback = Callable[[str], Awaitable[None] | None]  # the channel's name
PresenceAsker = Callable[["Subscription"], Awaitable[list[Member]]]


@dataclass(frozen=True, slots=True)
class _End:
    """Queued after the last item: the subscription ended, with ``error`` if it failed,
    and ``by_server`` if the server took it away."""

    error: PushwireError | None
    by_server: bool = False


@dataclass(frozen=True, slots=True)
class SubscriptionCallbacks:
    """What a subscription calls besides ``on_message`` and ``on_gap``: see ``Client.subscribe``."""

    on_join: JoinCallback | None = None
    on_leave: LeaveCallback | None = None
    on_unsubscribed: UnsubscribedCallback | None = None


class Subscription:
    """A standing subscription to one channel, kept across reconnects.

    Iterate it (``async for item in subscription``) to receive :class:`Message`
    and :class:`Gap` items, or give callbacks to ``Client.subscribe``. Await it
    to wait until the server has confirmed it. Made by ``Client.subscribe``.

    Joins and leaves go to ``on_join`` and ``on_leave`` (never to the iterator),
    in order with the messages: called as the iterator, or the callback task,
    reaches them.
    """

    def __init__(
        self,
        channel: str,
        *,
        cursor: str | None,
        on_message: MessageCallback | None,
        on_gap: GapCallback | None,
        remove: Callable[[Subscription], Awaitable[None]],
        duplicate_window: int,
        callbacks: SubscriptionCallbacks | None = None,
        presence: PresenceAsker | None = None,
    ) -> None:
        self.channel = channel
        #: Where to resume after a reconnect: the last message received (queued or not).
        self.resume_cursor = cursor
        #: The connection a subscribe request was last sent on (the client's bookkeeping).
        self.requested_on: object | None = None
        self._cursor = cursor
        self._on_message = on_message
        self._on_gap = on_gap
        self._callbacks = callbacks or SubscriptionCallbacks()
        self._remove = remove
        self._ask_presence = presence
        self._ended_by_server = False
        self._queue: asyncio.Queue[Item | PresenceEvent | _End] = asyncio.Queue()
        self._recent_ids: deque[str] = deque()
        self._recent_set: set[str] = set()
        self._duplicate_window = duplicate_window
        self._live: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Mark a failure as seen even if nobody awaits the subscription.
        self._live.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._ended = False
        self._dispatcher: asyncio.Task[None] | None = None
        if on_message is not None:
            self._dispatcher = asyncio.create_task(
                self._dispatch(on_message), name=f"pushwire-callbacks-{channel}"
            )

    def __repr__(self) -> str:
        return f"<Subscription {self.channel!r} cursor={self._cursor!r}>"

    @property
    def cursor(self) -> str | None:
        """The cursor of the last item handed to the application.

        Store it once the item is processed, and pass it as ``cursor=`` to
        ``Client.subscribe`` in the next run of the program to resume right after.
        """
        return self._cursor

    @property
    def is_ended(self) -> bool:
        """Whether the subscription ended (unsubscribed, refused, or its client closed)."""
        return self._ended

    @property
    def ended_by_server(self) -> bool:
        """Whether the server took the subscription away (``POST /api/unsubscribe``).

        It is not renewed on reconnect; subscribe again if the application wants
        to try (the server may refuse it).
        """
        return self._ended_by_server

    async def presence(self) -> list[Member]:
        """The channel's members now (a ``presence = true`` channel), sorted by user.

        Over WebSocket it asks on the connection; over SSE with ``GET /presence``.
        Waits for a connection if there is none, within the client's
        ``request_timeout_seconds``.

        Raises:
            BadRequestError: presence is off for this channel (``bad_request``).
            PermissionDeniedError: the connection may not see it (``permission_denied``).
            ClientError: another refusal, with the server's ``code``.
            ConnectionLostError, RequestTimeoutError: no answer.
            UsageError: the subscription has ended.
        """
        if self._ended or self._ask_presence is None:
            raise UsageError(f"the subscription to {self.channel!r} has ended")
        return await self._ask_presence(self)

    # Waiting, iterating, ending.

    def __await__(self) -> Generator[Any, None, Subscription]:
        return self.wait_subscribed().__await__()

    async def wait_subscribed(self) -> Subscription:
        """Wait until the server confirms the subscription (once); returns it.

        Waits as long as it takes to connect: bound it with ``asyncio.timeout``.

        Raises:
            ClientError: the server refused it (``invalid_channel``, ``invalid_cursor``...).
            UsageError: it was unsubscribed, or its client closed, before that.
        """
        await asyncio.shield(self._live)
        return self

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Item:
        """The next :class:`Message` or :class:`Gap`; stops when the subscription ends.

        Raises:
            ClientError: the server refused the subscription.
            UnreachableError: the client gave up reconnecting.
        """
        if self._dispatcher is not None:
            raise UsageError("this subscription delivers to callbacks; it cannot be iterated")
        while True:
            item = await self._queue.get()
            if isinstance(item, _End):
                self._queue.put_nowait(_End(item.error))  # so that the next call stops too
                await self._tell_ended(item)
                if item.error is not None:
                    raise item.error
                raise StopAsyncIteration
            if isinstance(item, Join | Leave):
                await self._tell_presence(item)
                continue
            self._cursor = _cursor_of(item)
            return item

    async def unsubscribe(self) -> None:
        """Stop receiving; items already queued are still handed out, then iteration stops."""
        await self._remove(self)

    # Called by the client and the registry.

    def confirm(self) -> None:
        if not self._live.done():
            self._live.set_result(None)

    def receive(self, message: Message, cursor: str) -> None:
        """Queue ``message`` unless it was already delivered; remember ``cursor``."""
        if self._ended:
            return
        if message.id in self._recent_set:
            logger.debug("dropping duplicate %s on %r", message.id, self.channel)
            return
        if self._duplicate_window:
            self._recent_ids.append(message.id)
            self._recent_set.add(message.id)
            if len(self._recent_ids) > self._duplicate_window:
                self._recent_set.discard(self._recent_ids.popleft())
        self.resume_cursor = cursor
        self._queue.put_nowait(message)

    def lose(self, cursor: str) -> None:
        """History was lost: queue a :class:`Gap`, and continue from ``cursor``."""
        if self._ended:
            return
        self._queue.put_nowait(Gap(self.channel, cursor, self.resume_cursor))
        self.resume_cursor = cursor

    def receive_presence(self, event: PresenceEvent) -> None:
        """Queue a join or leave, if the application asked for that kind."""
        wanted = self._callbacks.on_join if isinstance(event, Join) else self._callbacks.on_leave
        if not self._ended and wanted is not None:
            self._queue.put_nowait(event)

    def end(self, error: PushwireError | None = None, *, by_server: bool = False) -> None:
        """No more items: the iterator stops (raising ``error`` if given) after the queued ones.

        ``by_server``: the server took the subscription away; ``on_unsubscribed``
        is called after the queued items.
        """
        if self._ended:
            return
        self._ended = True
        self._ended_by_server = by_server
        self._queue.put_nowait(_End(error, by_server))
        if not self._live.done():
            self._live.set_exception(
                error or UsageError(f"subscription to {self.channel!r} ended before it was live")
            )

    async def wait_dispatched(self, timeout_seconds: float) -> None:
        """After :meth:`end`: let the callbacks finish the queue, then stop them."""
        if self._dispatcher is None or self._dispatcher is asyncio.current_task():
            return  # no callbacks, or a callback is closing the client: don't wait on ourselves
        try:
            async with asyncio.timeout(timeout_seconds):
                await asyncio.shield(self._dispatcher)
        except TimeoutError:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)

    async def _dispatch(self, on_message: MessageCallback) -> None:
        """Hand items to the callbacks one at a time, so they see them in order."""
        while True:
            item = await self._queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    logger.error("subscription to %r failed: %s", self.channel, item.error)
                await self._tell_ended(item)
                return
            if isinstance(item, Join | Leave):
                await self._tell_presence(item)
                continue
            try:
                if isinstance(item, Message):
                    result = on_message(item)
                elif self._on_gap is not None:
                    result = self._on_gap(item)
                else:
                    logger.warning(
                        "messages on %r were lost (history gone after %s); "
                        "pass on_gap to handle this",
                        item.channel,
                        item.last_id,
                    )
                    result = None
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("callback for %r failed on %r", self.channel, item)
            self._cursor = _cursor_of(item)

    async def _tell_presence(self, event: PresenceEvent) -> None:
        if isinstance(event, Join):
            await _run_callback(self._callbacks.on_join, event)
        else:
            await _run_callback(self._callbacks.on_leave, event)

    async def _tell_ended(self, end: _End) -> None:
        if end.by_server:
            await _run_callback(self._callbacks.on_unsubscribed, self.channel)


class Subscriptions:
    """The client's subscriptions by channel; receives every connection's events."""

    def __init__(self) -> None:
        self._by_channel: dict[str, Subscription] = {}

    def __iter__(self) -> Iterator[Subscription]:
        return iter(list(self._by_channel.values()))

    def get(self, channel: str) -> Subscription | None:
        return self._by_channel.get(channel)

    def add(self, subscription: Subscription) -> None:
        self._by_channel[subscription.channel] = subscription

    def discard(self, subscription: Subscription) -> None:
        if self._by_channel.get(subscription.channel) is subscription:
            del self._by_channel[subscription.channel]

    # ConnectionEvents.

    def on_subscribed(self, channel: str, cursor: str | None, recovered: bool | None) -> None:
        subscription = self._by_channel.get(channel)
        if subscription is None:
            logger.debug("subscribed to %r, which is no longer wanted", channel)
            return
        subscription.confirm()
        if recovered is False and cursor is not None:
            subscription.lose(cursor)
        elif recovered is None and cursor is not None:
            subscription.resume_cursor = cursor
        # recovered is True: the missed messages follow, each moving the cursor on.

    def on_subscribe_failed(self, channel: str, error: PushwireError) -> None:
        subscription = self._by_channel.pop(channel, None)
        if subscription is None:
            logger.warning("subscribing to %r failed: %s", channel, error)
            return
        subscription.end(error)

    def on_message(self, message: Message, cursor: str) -> None:
        subscription = self._by_channel.get(message.channel)
        if subscription is None:
            logger.debug("dropping a message on %r: not subscribed", message.channel)
            return
        subscription.receive(message, cursor)

    def on_gap(self, channel: str, cursor: str) -> None:
        subscription = self._by_channel.get(channel)
        if subscription is None:
            logger.debug("ignoring a gap on %r: not subscribed", channel)
            return
        subscription.lose(cursor)

    def on_unsubscribed(self, channel: str) -> None:
        # Removed here, so no later connection subscribes it again.
        subscription = self._by_channel.pop(channel, None)
        if subscription is None:
            logger.debug("the server unsubscribed %r, which was not subscribed", channel)
            return
        logger.info("the server ended the subscription to %r", channel)
        subscription.end(by_server=True)

    def on_presence(self, event: PresenceEvent) -> None:
        subscription = self._by_channel.get(event.channel)
        if subscription is None:
            logger.debug("ignoring a %s on %r: not subscribed", type(event).__name__, event.channel)
            return
        subscription.receive_presence(event)


def _cursor_of(item: Item) -> str:
    return item.id if isinstance(item, Message) else item.cursor


async def _run_callback(
    callback: Callable[[Any], Awaitable[None] | None] | None, value: Any
) -> None:
    """Call an application callback (plain or async); its failure is logged, never raised."""
    if callback is None:
        return
    try:
        result = callback(value)
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger.exception("callback %r failed on %r", callback, value)
