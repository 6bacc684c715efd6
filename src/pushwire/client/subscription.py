"""Subscriptions: one channel's cursor, duplicate filter and queue of deliveries.

:class:`Subscriptions` hears what connections report (it is their
``ConnectionEvents``) and turns it into :class:`Message` and :class:`Gap` items;
each :class:`Subscription` hands its items out in order, through its async
iterator or to its callbacks. Connections come and go; subscriptions stay.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

from pushwire.client.messages import Gap, Message
from pushwire.errors import PushwireError, UsageError

__all__ = ["GapCallback", "Item", "MessageCallback", "Subscription", "Subscriptions"]

logger = logging.getLogger("pushwire.client")

Item = Message | Gap
MessageCallback = Callable[[Message], Awaitable[None] | None]
GapCallback = Callable[[Gap], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class _End:
    """Queued after the last item: the subscription ended, with ``error`` if it failed."""

    error: PushwireError | None


class Subscription:
    """A standing subscription to one channel, kept across reconnects.

    Iterate it (``async for item in subscription``) to receive :class:`Message`
    and :class:`Gap` items, or give callbacks to ``Client.subscribe``. Await it
    to wait until the server has confirmed it. Made by ``Client.subscribe``.
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
    ) -> None:
        self.channel = channel
        #: Where to resume after a reconnect: the last message received (queued or not).
        self.resume_cursor = cursor
        #: The connection a subscribe request was last sent on (the client's bookkeeping).
        self.requested_on: object | None = None
        self._cursor = cursor
        self._on_message = on_message
        self._on_gap = on_gap
        self._remove = remove
        self._queue: asyncio.Queue[Item | _End] = asyncio.Queue()
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
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)  # so that the next call stops too
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
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

    def end(self, error: PushwireError | None = None) -> None:
        """No more items: the iterator stops (raising ``error`` if given) after the queued ones."""
        if self._ended:
            return
        self._ended = True
        self._queue.put_nowait(_End(error))
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
                return
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


def _cursor_of(item: Item) -> str:
    return item.id if isinstance(item, Message) else item.cursor
