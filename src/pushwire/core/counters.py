"""The node's running totals: plain integers, incremented where the work happens.

Nothing here formats, locks or allocates on the fan-out path: an increment is an
attribute add, and the hub counts once per feed and batch, never per subscriber.
The metrics endpoint (``server/metrics.py``) reads these when it is scraped.
"""

from __future__ import annotations

import bisect
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from pushwire.errors import (
    CLOSE_MESSAGE_TOO_BIG,
    DISCONNECTED,
    GOING_AWAY,
    INTERNAL_ERROR,
    PING_TIMEOUT,
    RATE_LIMITED,
    SLOW_CONSUMER,
    TOKEN_EXPIRED,
    UNSUBSCRIBED,
)

__all__ = [
    "FANOUT_BUCKETS_SECONDS",
    "LOOP_LAG_BUCKETS_SECONDS",
    "PUBLICATION_SOURCES",
    "TRANSPORTS",
    "Histogram",
    "NodeCounters",
    "NodeStatistics",
    "TransportCounters",
    "close_reason",
]

#: Where a publication came from: the backend API (and in-process ``Server.publish``),
#: a client (``/ws`` publish, ``POST /publish``), or the MQTT bridge.
PUBLICATION_SOURCES = ("api", "client", "mqtt")
#: The transports counted from the start, so that their series exist before first use.
TRANSPORTS = ("websocket", "sse", "longpoll")

# From 100 µs (an idle node) to 5 s (a node in trouble).
FANOUT_BUCKETS_SECONDS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0
)  # fmt: skip
LOOP_LAG_BUCKETS_SECONDS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0
)  # fmt: skip

# Close codes by the names the metrics label them with; docs/protocol.md has the table.
_CLOSE_REASONS = {
    GOING_AWAY.code: "going_away",
    INTERNAL_ERROR.code: "internal_error",
    PING_TIMEOUT.code: "ping_timeout",
    SLOW_CONSUMER.code: "slow_consumer",
    DISCONNECTED.code: "disconnected",
    UNSUBSCRIBED.code: "unsubscribed",
    TOKEN_EXPIRED.code: "token",  # expired, or a refresh refused: the same code
    RATE_LIMITED.code: "rate_limited",
    CLOSE_MESSAGE_TOO_BIG: "message_too_big",
    1002: "protocol_error",
    1007: "invalid_utf8",
}


def close_reason(code: int) -> str:
    """The label for a connection the server closed with ``code`` (the code itself if unnamed)."""
    return _CLOSE_REASONS.get(code, str(code))


class Histogram:
    """Observations counted into fixed buckets, for sampling off the per-subscriber path.

    ``counts[i]`` holds observations at most ``bounds[i]`` and above the bound before
    (not cumulative); the last count is everything above the largest bound.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)


class TransportCounters:
    """One transport's connections and deliveries since start.

    Attributes:
        opened: connections (a long-poll: requests) begun.
        closed: connections ended, by reason: a close reason (``close_reason``), or
            ``client`` (the client ended it), ``lost`` (the network did), ``answered``
            and ``timeout`` (a long-poll's end).
        deliveries: items (publications, gaps, joins, leaves) written to subscribers
            by the fan-out; one item to 1,000 subscribers counts 1,000.
        bytes_written: the bytes of those deliveries.
        slow_consumers: subscribers cut off because their outgoing buffer was full.
    """

    __slots__ = ("bytes_written", "closed", "deliveries", "name", "opened", "slow_consumers")

    def __init__(self, name: str) -> None:
        self.name = name
        self.opened = 0
        self.closed: dict[str, int] = {}
        self.deliveries = 0
        self.bytes_written = 0
        self.slow_consumers = 0

    @property
    def open_now(self) -> int:
        return self.opened - sum(self.closed.values())

    def close(self, reason: str) -> None:
        self.closed[reason] = self.closed.get(reason, 0) + 1


class NodeCounters:
    """Every total the node keeps, shared by the hub, the node and the endpoints.

    Attributes:
        publications: publications this node accepted, by source (``PUBLICATION_SOURCES``).
        refused: requests refused, by where (``http``, ``websocket``) and error code.
        fanout_seconds: per flushed batch, from the oldest publication's time to the
            end of the batch's writes (a sample per channel and loop iteration).
        clock: wall-clock seconds, as publication times are.
    """

    __slots__ = (
        "clock",
        "fanout_seconds",
        "publications",
        "refuse_on_websocket",
        "refused",
        "transports",
    )

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.transports = {name: TransportCounters(name) for name in TRANSPORTS}
        self.publications = dict.fromkeys(PUBLICATION_SOURCES, 0)
        self.refused: dict[tuple[str, str], int] = {}
        self.fanout_seconds = Histogram(FANOUT_BUCKETS_SECONDS)
        #: ``refuse("websocket", code)`` as one shared callable, for every ``/ws`` session.
        self.refuse_on_websocket: Callable[[str], None] = self._refuse_on_websocket

    def transport(self, name: str) -> TransportCounters:
        """The counters of transport ``name``, made on first use (a new transport: the MQTT one)."""
        counters = self.transports.get(name)
        if counters is None:
            counters = self.transports[name] = TransportCounters(name)
        return counters

    def published(self, source: str) -> None:
        self.publications[source] = self.publications.get(source, 0) + 1

    def refuse(self, where: str, code: str) -> None:
        key = (where, code)
        self.refused[key] = self.refused.get(key, 0) + 1

    def _refuse_on_websocket(self, code: str) -> None:
        self.refuse("websocket", code)


@dataclass(frozen=True, slots=True)
class NodeStatistics:
    """One node as ``GET /api/info`` shows it: who it is, and its totals now.

    Travels between nodes as JSON (a survey's answer), so every field is plain data.

    Attributes:
        node: the node's id, random at each start.
        about: what the server says of itself (version, worker, host, pid).
        connections: open now, by transport; ``publications`` by source and
            ``deliveries`` by transport, since the node started.
    """

    node: str
    about: dict[str, str]
    started_at: float
    uptime_seconds: float
    broker: str
    broker_connected: bool
    channels: int
    subscriptions: int
    connections: dict[str, int]
    publications: dict[str, int]
    deliveries: dict[str, int]

    def to_json(self) -> bytes:
        return orjson.dumps({name: getattr(self, name) for name in _STATISTICS_FIELDS})

    @classmethod
    def from_json(cls, data: bytes) -> NodeStatistics:
        """Parse another node's answer; fields this version does not know are left out.

        Raises:
            orjson.JSONDecodeError, TypeError: if the answer is not such an object.
        """
        fields = orjson.loads(data)
        return cls(**{name: fields[name] for name in _STATISTICS_FIELDS})


_STATISTICS_FIELDS = tuple(field.name for field in dataclasses.fields(NodeStatistics))
