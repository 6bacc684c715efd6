"""What every transport shares: the limits a connection lives within.

Transports are thin: they translate between bytes on one connection and calls
on the node. Who receives what is decided in ``core``, never here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ConnectionLimits", "Ticker"]


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Bounds on one client connection.

    Attributes:
        max_message_bytes: largest message a client may send (WebSocket message, body).
        max_buffer_bytes: most unsent bytes the server queues for a client before
            it cuts the client off as a slow consumer.
        max_channels: most channels one connection may subscribe to.
        close_timeout_seconds: how long to wait for the peer's close frame.
        cors_origins: origins allowed to read SSE and polling responses ("*" any).
    """

    max_message_bytes: int = 64 * 1024
    max_buffer_bytes: int = 1024 * 1024
    max_channels: int = 256
    close_timeout_seconds: float = 5.0
    cors_origins: tuple[str, ...] = ("*",)


class Ticker:
    """Calls ``tick`` every ``interval_seconds`` on one timer (never, if it is 0).

    Keep-alives run on one timer per server, never one per connection: a timer
    handle per idle subscriber would cost memory and wake-ups for nothing.
    """

    __slots__ = ("_handle", "_tick", "interval_seconds")

    def __init__(self, interval_seconds: float, tick: Callable[[], None]) -> None:
        self.interval_seconds = interval_seconds
        self._tick = tick
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if self.interval_seconds > 0:
            self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        self._handle = asyncio.get_running_loop().call_later(self.interval_seconds, self._run)

    def _run(self) -> None:
        self._schedule()
        self._tick()
