"""What a live node keeps from expiring in Redis, and takes away when it stops cleanly.

Every third of ``presence_ttl_seconds``, in one round trip: the presence entries
this node holds, a sweep of stale members on its channels, the epoch of every
channel it has subscribers on (however quiet), and its entry in the node
registry. A crashed node stops all of this, and what it kept expires.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Set

from redis.exceptions import RedisError

from pushwire.brokers.redis_link import RedisLink
from pushwire.brokers.redis_nodes import NodeRegistry
from pushwire.brokers.redis_presence import RedisPresence
from pushwire.brokers.redis_scripts import ChannelKeys
from pushwire.brokers.registry import BrokerSettings

__all__ = ["RedisUpkeep"]

logger = logging.getLogger("pushwire.redis")


class RedisUpkeep:
    """The refresh loop over ``subscribed`` (the broker's live set of channels)."""

    def __init__(
        self,
        link: RedisLink,
        settings: BrokerSettings,
        *,
        presence: RedisPresence,
        nodes: NodeRegistry,
        subscribed: Set[str],
    ) -> None:
        self._link = link
        self._settings = settings
        self._presence = presence
        self._nodes = nodes
        self._subscribed = subscribed
        self._stopped = False
        self._ticker: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Refresh in the background, while linked, until stopped."""
        self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())

    def stop(self) -> None:
        """No more refreshes (the broker is closing)."""
        self._stopped = True
        if self._ticker is not None:
            self._ticker.cancel()

    async def withdraw(self) -> None:
        """On a clean stop this node's members leave at once, not after the TTL."""
        calls = self._presence.leave_all()
        if not self._link.connected:
            return  # (calls queued now would only fail, unread, when the pipe closes)
        calls.append(self._nodes.unregister(self._link.pipe))
        await asyncio.wait_for(
            asyncio.gather(*calls, return_exceptions=True), self._settings.timeout_seconds
        )

    async def _tick_forever(self) -> None:
        interval = self._settings.presence_ttl_seconds / 3
        while not self._stopped:
            await asyncio.sleep(interval)
            if not self._link.connected:
                continue
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                logger.info("refreshing presence at redis failed (%s); retrying", exc)

    async def _tick(self) -> None:
        calls = self._presence.refresh_calls(self._subscribed)
        meta_ttl = max(int(self._settings.history_meta_ttl_seconds), 1)
        for channel in list(self._subscribed):
            # A channel with subscribers keeps its epoch, however long it is quiet.
            meta = ChannelKeys.of(self._settings.prefix, channel).meta
            calls.append(self._link.pipe.call_command("EXPIRE", meta, meta_ttl, "XX"))
        calls.append(self._nodes.refresh(self._link.pipe))
        await asyncio.wait_for(
            asyncio.gather(*calls, return_exceptions=True), self._settings.timeout_seconds * 2
        )
