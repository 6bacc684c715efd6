"""``GET /metrics``: who may scrape, the event-loop lag probe, and the answer.

The values are the node's own counters (``core.counters``), read when scraped;
the Prometheus text is made by ``prometheus_client`` in ``metrics_collector``,
imported at the first scrape so that it costs nothing to a server never scraped.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from pushwire.core.counters import LOOP_LAG_BUCKETS_SECONDS, Histogram
from pushwire.core.node import Node
from pushwire.errors import UnauthorizedError
from pushwire.server.auth import ApiKey
from pushwire.server.tokens import bearer_token
from pushwire.server.workers import INDEX_ENV
from pushwire.transports.base import Clock, LoopClock, Timer

if TYPE_CHECKING:
    from pushwire.server.metrics_collector import BridgeCounts

__all__ = ["WORKER_ENV", "LoopLagProbe", "MetricsAccess", "MetricsEndpoint"]

#: The worker number that ``serve --workers`` gives each process; "0" without workers.
WORKER_ENV = INDEX_ENV
_LAG_INTERVAL_SECONDS = 0.5


class LoopLagProbe:
    """A timer that measures how late it runs: how long callbacks wait for the loop.

    Every ``interval_seconds`` it notes when it was due and, when it runs, how much
    later that was. A loop kept busy by one long callback (a big fan-out, a slow
    SQLite commit) shows here before clients notice their messages are late.
    """

    __slots__ = ("_clock", "_due", "_handle", "histogram", "interval_seconds", "last_seconds")

    def __init__(
        self, interval_seconds: float = _LAG_INTERVAL_SECONDS, *, clock: Clock | None = None
    ) -> None:
        self.interval_seconds = interval_seconds
        self.histogram = Histogram(LOOP_LAG_BUCKETS_SECONDS)
        #: The most recent lag measured (0 until the first).
        self.last_seconds = 0.0
        self._clock = clock or LoopClock()
        self._due = 0.0
        self._handle: Timer | None = None

    def start(self) -> None:
        if self._handle is None:
            self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        self._due = self._clock.time() + self.interval_seconds
        self._handle = self._clock.call_later(self.interval_seconds, self._run)

    def _run(self) -> None:
        lag = max(self._clock.time() - self._due, 0.0)
        self.last_seconds = lag
        self.histogram.observe(lag)
        self._schedule()


class MetricsAccess:
    """Who may scrape: loopback freely, others with the API key, or everyone with the token.

    Without a ``metrics_token``, a scraper on this machine needs nothing and one
    elsewhere presents the API key (``X-API-Key``, or ``Authorization: Bearer``,
    which Prometheus sends by itself). With a ``metrics_token``, every scrape needs
    it or the API key, from loopback too: behind a reverse proxy on the same host
    every request comes from loopback.
    """

    __slots__ = ("_api_key", "_token")

    def __init__(self, api_key: ApiKey, metrics_token: str = "") -> None:
        self._api_key = api_key
        self._token = metrics_token

    def check(self, peer_ip: str | None, headers: Mapping[str, str]) -> None:
        """Raises:
        UnauthorizedError: if this scraper must show a key and did not show a right one.
        """
        if not self._token and _is_loopback(peer_ip):
            return
        presented = [headers.get("x-api-key"), bearer_token(headers.get("authorization"))]
        secrets = [self._api_key.value, *([self._token] if self._token else [])]
        for candidate in presented:
            if candidate and any(_same(candidate, secret) for secret in secrets):
                return
        if any(presented):
            raise UnauthorizedError("wrong key for /metrics")
        if self._token:
            raise UnauthorizedError("/metrics needs the metrics token (Authorization: Bearer)")
        raise UnauthorizedError("/metrics from another host needs the API key (X-API-Key)")


def _same(presented: str, secret: str) -> bool:
    return hmac.compare_digest(presented.encode(), secret.encode())


def _is_loopback(ip: str | None) -> bool:
    if ip is None:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback  # ::ffff:127.0.0.1 on a dual-stack socket
    return address.is_loopback


class MetricsEndpoint:
    """Answers ``GET /metrics`` once the scraper passes :class:`MetricsAccess`."""

    __slots__ = (
        "_exposition",
        "_mqtt",
        "_node",
        "_open_connections",
        "_version",
        "access",
        "loop_lag",
        "started_at",
        "worker",
    )

    def __init__(
        self,
        node: Node,
        access: MetricsAccess,
        *,
        open_connections: Callable[[], int],
        version: str,
        mqtt: BridgeCounts | None = None,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        """
        Args:
            open_connections: how many TCP connections the server has open now.
            mqtt: the MQTT bridge, when there is one.
            environ: where the worker number is read (``WORKER_ENV``).
        """
        self.access = access
        self.loop_lag = LoopLagProbe()
        #: The ``worker`` label of every series: which process of ``--workers`` answered.
        self.worker = environ.get(WORKER_ENV) or "0"
        self.started_at = time.time()
        self._node = node
        self._open_connections = open_connections
        self._version = version
        self._mqtt = mqtt
        self._exposition: Callable[[], tuple[bytes, bytes]] | None = None

    def start(self) -> None:
        self.loop_lag.start()

    def stop(self) -> None:
        self.loop_lag.stop()

    def scrape(self, peer_ip: str | None, headers: Mapping[str, str]) -> tuple[bytes, bytes]:
        """The Prometheus text and its content type.

        Raises:
            UnauthorizedError: see :meth:`MetricsAccess.check`.
        """
        self.access.check(peer_ip, headers)
        if self._exposition is None:
            # Here, not at the top: prometheus_client takes some 90 ms to import.
            from pushwire.server.metrics_collector import MetricsSources, exposition

            self._exposition = exposition(
                MetricsSources(
                    self._node,
                    self.loop_lag.histogram,
                    self._open_connections,
                    self._version,
                    self.worker,
                    self.started_at,
                    self._mqtt,
                )
            )
        return self._exposition()
