"""Publish rate limits: a token bucket per publisher, and a notion of abuse.

Used per ``/ws`` connection (by the session) and per user for HTTP publishing
(``POST /publish``), where every request is a new connection.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

__all__ = ["PublishRate", "PublishRates"]


class PublishRate:
    """A token bucket of one second's worth of publishes, and a count of refusals.

    Refusals drain at the same rate as publishes refill, so a client that keeps
    sending at well over twice the rate for several seconds is called abusive.
    """

    __slots__ = ("_clock", "_last", "_rate", "_strikes", "_tokens")

    def __init__(self, per_second: float, clock: Callable[[], float]) -> None:
        self._rate = per_second
        self._clock = clock
        self._tokens = max(per_second, 1.0)
        self._strikes = 0.0
        self._last = clock()

    def allow(self) -> bool:
        now = self._clock()
        elapsed, self._last = now - self._last, now
        self._tokens = min(max(self._rate, 1.0), self._tokens + elapsed * self._rate)
        self._strikes = max(0.0, self._strikes - elapsed * self._rate)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self._strikes += 1.0
        return False

    def is_abused(self) -> bool:
        return self._strikes > 5 * self._rate + 10


class PublishRates:
    """One :class:`PublishRate` per key (a user id), for the most recent ``max_keys`` keys.

    A key not seen for a while loses its bucket and starts full: bounded memory,
    at the price of forgetting someone who paused.
    """

    __slots__ = ("_buckets", "_clock", "_max_keys", "_per_second")

    def __init__(
        self, per_second: float, clock: Callable[[], float], *, max_keys: int = 10_000
    ) -> None:
        self._per_second = per_second
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[Hashable, PublishRate] = OrderedDict()

    def allow(self, key: Hashable) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = PublishRate(self._per_second, self._clock)
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.allow()
