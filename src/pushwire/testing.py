"""Public test support: a clock whose time moves only when the test says so.

For testing code that takes a ``transports.base.Clock`` (tickers, heartbeats,
long-poll timeouts) without sleeping. Nothing in pushwire itself imports this.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pushwire.transports.base import Clock

__all__ = ["FakeClock", "FakeTimer"]


class FakeTimer:
    """A callback :class:`FakeClock` runs at ``when`` unless cancelled first."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A :class:`~pushwire.transports.base.Clock` that stands still until :meth:`advance`.

    ``advance`` runs the callbacks that fall due, in time order (in the order they
    were scheduled when due at the same time), with :meth:`time` reading each
    one's due time while it runs. A callback scheduled by a callback runs in the
    same ``advance`` if it is due by its end, as it would on a real loop.
    """

    __slots__ = ("_now", "_scheduled", "_sequence")

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._scheduled: list[tuple[float, int, FakeTimer]] = []
        self._sequence = 0  # keeps same-time callbacks in scheduling order

    def time(self) -> float:
        return self._now

    def call_later(self, delay_seconds: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self._now + max(delay_seconds, 0.0), callback)
        heapq.heappush(self._scheduled, (timer.when, self._sequence, timer))
        self._sequence += 1
        return timer

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds``, running every callback due by then.

        Raises:
            ValueError: if ``seconds`` is negative (monotonic time never goes back).
        """
        if seconds < 0:
            raise ValueError(f"time cannot go back ({seconds} s)")
        until = self._now + seconds
        scheduled = self._scheduled
        while scheduled and scheduled[0][0] <= until:
            when, _, timer = heapq.heappop(scheduled)
            if timer.cancelled:
                continue
            self._now = when
            timer.callback()
        self._now = until

    def pending(self) -> int:
        """How many callbacks are scheduled and not cancelled."""
        return sum(not timer.cancelled for _, _, timer in self._scheduled)


if TYPE_CHECKING:
    # The type checker holds FakeClock to the protocol it stands in for.
    _clock: Clock = FakeClock()
