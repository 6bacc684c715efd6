"""Node: one pushwire process's core, wiring the hub to a broker and channel rules.

Transports and the HTTP API talk to the node; the node talks to the broker. It
never sees a request, a response or a socket.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from pushwire.brokers.base import Broker, HistoryOptions
from pushwire.core.channels import ChannelRule, ChannelRules
from pushwire.core.history import HistoryPage, Publication, StreamPosition
from pushwire.core.hub import ChannelState, Hub
from pushwire.core.recovery import Recovery, recover
from pushwire.errors import BadRequestError, PermissionDeniedError
from pushwire.protocol.names import validate_channel, validate_event

__all__ = ["Node"]

# A recovery that races live delivery re-reads history; past this, give up (gap).
_RECOVERY_ATTEMPTS = 5


class Node:
    """Publishes through the broker and delivers what the broker hands back to local subscribers.

    Use it directly to publish from your own asyncio program (``await node.publish(...)``),
    or let :class:`pushwire.server.app.Server` build one for you.
    """

    def __init__(self, broker: Broker, rules: ChannelRules) -> None:
        self.broker = broker
        self.rules = rules
        self.hub = Hub(self._call_soon, self._channel_idle)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe_tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.broker.start(self.hub.deliver)

    async def close(self) -> None:
        await self.broker.close()

    def _call_soon(self, callback: Any) -> None:
        loop = self._loop or asyncio.get_running_loop()
        loop.call_soon(callback)

    def _channel_idle(self, channel: str) -> None:
        task = asyncio.get_running_loop().create_task(self.broker.unsubscribe(channel))
        self._unsubscribe_tasks.add(task)
        task.add_done_callback(self._unsubscribe_tasks.discard)

    # Publishing.

    def rule_for(self, channel: str) -> ChannelRule:
        return self.rules.rule_for(channel)

    def history_options(self, channel: str) -> HistoryOptions:
        rule = self.rules.rule_for(channel)
        return HistoryOptions(rule.history_size, rule.history_ttl_seconds)

    async def publish(self, channel: str, data: Any, *, event: str | None = None) -> Publication:
        """Publish any JSON-serialisable ``data`` to ``channel``.

        Returns the publication; ``publication.position.cursor`` is its id.

        Raises:
            InvalidChannelError: if ``channel`` is not a valid name.
            BadRequestError: if ``data`` cannot be encoded as JSON or ``event`` is invalid.
        """
        try:
            encoded = orjson.dumps(data)
        except TypeError as exc:
            raise BadRequestError(f"data is not JSON-serialisable: {exc}") from None
        return await self.publish_json(
            validate_channel(channel), encoded, event=validate_event(event)
        )

    async def publish_json(
        self, channel: str, data: bytes, *, event: str | None = None, from_client: bool = False
    ) -> Publication:
        """Publish ``data``, already encoded as JSON, to an already validated ``channel``.

        Raises:
            PermissionDeniedError: if ``from_client`` and the channel's rule forbids it.
        """
        rule = self.rules.rule_for(channel)
        if from_client and not rule.allow_client_publish:
            raise PermissionDeniedError(f"clients may not publish to {channel!r}")
        options = HistoryOptions(rule.history_size, rule.history_ttl_seconds)
        return await self.broker.publish(channel, data, event=event, options=options)

    # Reading history.

    async def history(
        self, channel: str, *, since: StreamPosition | None = None, limit: int = 100
    ) -> HistoryPage:
        """Publications after ``since`` (or the newest), oldest first, and the stream top."""
        return await self.broker.history(
            channel, since=since, limit=limit, options=self.history_options(channel)
        )

    # Subscribing.

    async def open_channel(self, channel: str) -> ChannelState:
        """The hub's state for ``channel``, subscribing this node at the broker if needed.

        The caller must register a subscriber on it (or call ``hub.release``).
        """
        state = self.hub.channel(channel)
        if state is not None:
            return state
        await self.broker.subscribe(channel)
        page = await self.history(channel, limit=0)
        return self.hub.open_channel(channel, page.top)

    async def recover(self, state: ChannelState, since: StreamPosition) -> Recovery:
        """What a subscriber to ``state`` that last saw ``since`` missed, up to live delivery.

        Run the registration of the subscriber without awaiting after this
        returns, so that live delivery takes over exactly where the replay ends.
        """
        limit = max(self.rules.rule_for(state.name).history_size, 1)
        for _ in range(_RECOVERY_ATTEMPTS):
            live_from = state.delivered
            if since.epoch == live_from.epoch and since.offset == live_from.offset:
                return Recovery((), recovered=True)
            page = await self.history(state.name, since=since, limit=limit)
            if state.delivered == live_from:
                return recover(since, page, live_from)
        return Recovery((), recovered=False)
