"""What every transport shares: the Transport protocol, connection limits, timers.

Transports are thin: they translate between bytes on one connection and calls
on the node. Who receives what is decided in ``core``, never here. A new
transport is a new module with a :class:`Transport` (the hub's sink) and a
``WireFormat`` (how the hub encodes a batch for it, see ``core.hub``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pushwire.errors import Disconnect

__all__ = ["Clock", "ConnectionLimits", "LoopClock", "Ticker", "Timer", "Transport"]


class Transport(Protocol):
    """One client connection as the hub sees it (``core.hub.Sink``), and what it is.

    Attributes:
        name: ``"websocket"``, ``"sse"``, ``"longpoll"``: for statistics and logs.
        unidirectional: the client cannot answer on this connection; its
            requests (publish, subscribe) arrive as separate HTTP requests.
    """

    name: str
    unidirectional: bool

    def write(self, data: bytes) -> bool:
        """Write ``data`` (already encoded for this transport); False if over the buffer limit.

        Never raises for a connection that went away: it returns, and the
        connection's own loss handling removes it from the hub.
        """

    def close(self, reason: Disconnect) -> None:
        """End the connection for ``reason``: a close frame, the end of a stream, an answer."""


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Time and timers, injected so that keep-alive logic is tested without sleeping."""

    def time(self) -> float:
        """Monotonic seconds."""

    def call_later(self, delay_seconds: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` once, ``delay_seconds`` from now."""


class LoopClock:
    """The running event loop's clock and timers."""

    __slots__ = ()

    def time(self) -> float:
        return asyncio.get_running_loop().time()

    def call_later(self, delay_seconds: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(delay_seconds, callback)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Bounds on one client connection.

    Attributes:
        max_message_bytes: largest message a client may send (WebSocket message, body).
        max_buffer_bytes: most unsent bytes the server queues for a client before
            it cuts the client off as a slow consumer.
        max_channels: most channels one connection may subscribe to.
        close_timeout_seconds: how long to wait for the peer's close frame.
    """

    max_message_bytes: int = 64 * 1024
    max_buffer_bytes: int = 1024 * 1024
    max_channels: int = 256
    close_timeout_seconds: float = 5.0


class Ticker:
    """Calls ``tick`` every ``interval_seconds`` on one timer (never, if it is 0).

    Keep-alives run on one timer per server, never one per connection: a timer
    handle per idle subscriber would cost memory and wake-ups for nothing.
    """

    __slots__ = ("_clock", "_handle", "_tick", "interval_seconds")

    def __init__(
        self, interval_seconds: float, tick: Callable[[], None], *, clock: Clock | None = None
    ) -> None:
        self.interval_seconds = interval_seconds
        self._tick = tick
        self._clock = clock or LoopClock()
        self._handle: Timer | None = None

    def start(self) -> None:
        """Start ticking (once: starting a running ticker changes nothing)."""
        if self.interval_seconds > 0 and self._handle is None:
            self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        self._handle = self._clock.call_later(self.interval_seconds, self._run)

    def _run(self) -> None:
        self._schedule()
        self._tick()
