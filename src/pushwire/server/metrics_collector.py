"""The Prometheus families of one node, made from its counters when scraped.

A custom ``prometheus_client`` collector: nothing is registered per event and no
library metric object sits on the fan-out path; every value is read from
``core.counters``, the hub and the broker at scrape time. Imported by
``server.metrics`` at the first scrape only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

from pushwire.brokers.memory import MemoryBroker
from pushwire.core.counters import Histogram
from pushwire.core.node import Node

__all__ = ["MetricsSources", "NodeCollector", "exposition"]


@dataclass(frozen=True, slots=True)
class MetricsSources:
    """What the collector reads at each scrape, and the label it adds.

    Attributes:
        loop_lag: the event-loop lag probe's observations (``server.metrics``).
        open_connections: TCP connections open now (every kind, HTTP included).
        worker: the ``worker`` label of every sample.
        started_at: when the server started (wall-clock seconds).
        mqtt: the MQTT bridge, or None without one.
    """

    node: Node
    loop_lag: Histogram
    open_connections: Callable[[], int]
    version: str
    worker: str
    started_at: float
    mqtt: BridgeCounts | None = None


class BridgeCounts(Protocol):
    """What the MQTT bridge counts (``server.mqtt_bridge.MqttBridge``, not imported here:
    its module imports the MQTT library, which a server without a bridge never loads)."""

    @property
    def connected(self) -> bool: ...

    received: int
    sent: int
    dropped: int


def exposition(sources: MetricsSources) -> _Exposition:
    """A callable that renders every family of the node as Prometheus text, when called."""
    # A registry of our own, never the library's global one: a process may run
    # several servers (tests do), and each answers for itself.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(sources))
    return _Exposition(registry)


class _Exposition:
    __slots__ = ("_registry",)

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def __call__(self) -> tuple[bytes, bytes]:
        return generate_latest(self._registry), CONTENT_TYPE_PLAIN_0_0_4.encode()


class NodeCollector(Collector):
    """pushwire's families, and the process's (CPU, memory, files, GC), with ``worker``.

    The ``worker`` label goes on every sample, the process's included: with
    ``--workers`` each process answers for itself, and its series must not be
    taken for another worker's.
    """

    def __init__(self, sources: MetricsSources) -> None:
        self._sources = sources
        self._process = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self._process)
        GCCollector(registry=self._process)
        PlatformCollector(registry=self._process)

    def collect(self) -> Iterable[Metric]:
        worker = self._sources.worker
        for family in [*self._families(), *self._process.collect()]:
            family.samples = [
                sample._replace(labels={**sample.labels, "worker": worker})
                for sample in family.samples
            ]
            yield family

    def _families(self) -> Iterator[Metric]:
        yield from self._node_families()
        yield from self._transport_families()
        yield from self._traffic_families()
        yield from self._mqtt_families()
        yield _histogram(
            "pushwire_fanout_seconds",
            "From a publication's time to the end of its batch's fan-out writes "
            "(one sample per channel and loop iteration).",
            self._sources.node.counters.fanout_seconds,
        )
        yield _histogram(
            "pushwire_event_loop_lag_seconds",
            "How late a periodic timer ran: how long callbacks waited for the event loop.",
            self._sources.loop_lag,
        )

    def _node_families(self) -> Iterator[Metric]:
        sources = self._sources
        node = sources.node
        broker = node.broker
        info = InfoMetricFamily("pushwire", "The pushwire version and broker of this node.")
        info.add_metric([], {"version": sources.version, "broker": broker.name})
        yield info
        yield _gauge(
            "pushwire_start_time_seconds",
            "When this node started (Unix time).",
            sources.started_at,
        )
        yield _gauge(
            "pushwire_broker_connected",
            "1 while the node reaches its broker, 0 while it does not (/health: degraded).",
            1.0 if broker.connected else 0.0,
        )
        yield _gauge(
            "pushwire_channels", "Channels with subscribers on this node.", node.hub.channel_count()
        )
        yield _gauge(
            "pushwire_subscriptions",
            "Subscriptions on this node (a stream over 3 channels counts 3).",
            node.hub.subscription_count(),
        )
        yield _gauge(
            "pushwire_tcp_connections",
            "TCP connections open now, of every kind (HTTP keep-alive included).",
            sources.open_connections(),
        )
        if isinstance(broker, MemoryBroker):
            streams, publications = broker.history_size()
            yield _gauge("pushwire_history_streams", "Channel streams history holds.", streams)
            yield _gauge(
                "pushwire_history_publications", "Publications history holds.", publications
            )

    def _transport_families(self) -> Iterator[Metric]:
        transports = self._sources.node.counters.transports.values()
        now = GaugeMetricFamily(
            "pushwire_connections",
            "Connections open now by transport (a long-poll: requests waiting).",
            labels=["transport"],
        )
        opened = CounterMetricFamily(
            "pushwire_connections_opened",
            "Connections opened by transport (a long-poll: requests).",
            labels=["transport"],
        )
        closed = CounterMetricFamily(
            "pushwire_connections_closed",
            "Connections ended by transport and reason (docs/metrics.md lists the reasons).",
            labels=["transport", "reason"],
        )
        for counters in transports:
            now.add_metric([counters.name], counters.open_now)
            opened.add_metric([counters.name], counters.opened)
            for reason, count in sorted(counters.closed.items()):
                closed.add_metric([counters.name, reason], count)
        yield from (now, opened, closed)

    def _traffic_families(self) -> Iterator[Metric]:
        counters = self._sources.node.counters
        publications = CounterMetricFamily(
            "pushwire_publications",
            "Publications accepted by this node, by source (api, client, mqtt).",
            labels=["source"],
        )
        for source, count in counters.publications.items():
            publications.add_metric([source], count)
        deliveries = CounterMetricFamily(
            "pushwire_deliveries",
            "Items written to subscribers by the fan-out (one to 1,000 counts 1,000).",
            labels=["transport"],
        )
        written = CounterMetricFamily(
            "pushwire_written_bytes",
            "Bytes the fan-out wrote to subscribers.",
            labels=["transport"],
        )
        slow = CounterMetricFamily(
            "pushwire_slow_consumers",
            "Subscribers cut off because their outgoing buffer was full.",
            labels=["transport"],
        )
        for transport in counters.transports.values():
            deliveries.add_metric([transport.name], transport.deliveries)
            written.add_metric([transport.name], transport.bytes_written)
            slow.add_metric([transport.name], transport.slow_consumers)
        refused = CounterMetricFamily(
            "pushwire_refused_requests",
            "Requests and commands refused, by protocol (http, websocket) and error code.",
            labels=["protocol", "code"],
        )
        for (protocol, code), count in sorted(counters.refused.items()):
            refused.add_metric([protocol, code], count)
        yield from (publications, deliveries, written, slow, refused)

    def _mqtt_families(self) -> Iterator[Metric]:
        bridge = self._sources.mqtt
        if bridge is None:
            return
        yield _gauge(
            "pushwire_mqtt_connected",
            "1 while the MQTT bridge is connected to its broker, 0 while it is not.",
            1.0 if bridge.connected else 0.0,
        )
        for name, count, documentation in (
            ("pushwire_mqtt_messages_in", bridge.received, "MQTT messages taken in, published."),
            ("pushwire_mqtt_messages_out", bridge.sent, "Publications sent to the MQTT broker."),
            ("pushwire_mqtt_dropped", bridge.dropped, "MQTT messages dropped (too large, bad)."),
        ):
            yield CounterMetricFamily(name, documentation, value=count)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _histogram(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    buckets: list[tuple[str, float]] = []
    total = 0
    for bound, count in zip([*histogram.bounds, float("inf")], histogram.counts, strict=True):
        total += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), total))
    family = HistogramMetricFamily(name, documentation)
    family.add_metric([], buckets, histogram.sum)
    return family
