"""Reconnection delays: exponential back-off with full jitter.

Full jitter (a uniformly random delay between zero and the exponential cap)
spreads out the clients of a restarted server, so they do not all come back in
the same instant and knock it over again.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from pushwire.errors import UsageError

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before each reconnection attempt, and when to give up.

    Attributes:
        min_delay_seconds: the cap for the first attempt; it doubles with every
            failed attempt in a row...
        max_delay_seconds: ...up to this cap.
        max_attempts: failed attempts in a row before the client gives up;
            None retries for ever.
    """

    min_delay_seconds: float = 0.5
    max_delay_seconds: float = 30.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.min_delay_seconds <= self.max_delay_seconds:
            raise UsageError("back-off needs 0 <= min_delay_seconds <= max_delay_seconds")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise UsageError("max_attempts must be at least 1 (or None: never give up)")

    def delay_seconds(self, failures: int, uniform: Callable[[], float] = random.random) -> float:
        """The delay before the next attempt, after ``failures`` failed attempts in a row.

        ``uniform`` returns a number in [0, 1); tests pass a fixed one.
        """
        # Cap the exponent: 2.0**1100 overflows, and the cap is reached long before.
        cap = min(self.max_delay_seconds, self.min_delay_seconds * 2.0 ** min(failures, 64))
        return cap * uniform()

    def gives_up_after(self, failures: int) -> bool:
        """Whether ``failures`` failed attempts in a row are enough to stop trying."""
        return self.max_attempts is not None and failures >= self.max_attempts
