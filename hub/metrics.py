"""Prometheus metrics of one hub process (a registry per node, so several nodes can share a
process in tests)."""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from hub.broker import BrokerCounters

__all__ = ["CONTENT_TYPE_LATEST", "HubMetrics"]


class Traffic:
    """Per-frame counters, bumped on the hot path as plain integers (a prometheus Counter takes a
    lock on every increment) and exported when ``/metrics`` is read."""

    __slots__ = ("frames_in", "frames_out", "messages_out")

    def __init__(self) -> None:
        self.frames_in = 0
        self.frames_out = 0
        self.messages_out = 0


class _TrafficCollector(Collector):
    def __init__(self, traffic: Traffic) -> None:
        self.traffic = traffic

    def collect(self) -> Iterator[Metric]:
        t = self.traffic
        yield CounterMetricFamily("hub_frames_in", "WebSocket frames received", t.frames_in)
        yield CounterMetricFamily("hub_frames_out", "WebSocket frames sent", t.frames_out)
        yield CounterMetricFamily(
            "hub_messages_out", "Messages sent (several may share a frame)", t.messages_out
        )


class _RestartsCollector(Collector):
    """The supervisor's count of worker restarts, from the file it keeps (``HUB_RESTARTS_FILE``,
    set for the workers of ``hub serve --workers N``)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self) -> Iterator[Metric]:
        try:
            with open(self.path) as file:
                count = int(file.read() or 0)
        except (OSError, ValueError):
            return
        yield CounterMetricFamily(
            "hub_worker_restarts", "Workers the supervisor started again after they died", count
        )


class _BrokerCollector(Collector):
    def __init__(self, counters: BrokerCounters) -> None:
        self.counters = counters

    def collect(self) -> Iterator[Metric]:
        c = self.counters
        yield CounterMetricFamily(
            "hub_broker_reconnects", "Broker subscriber connections re-established", c.reconnects
        )
        yield CounterMetricFamily(
            "hub_broker_deaf_detections",
            "Broker subscriber connections found deaf by the probe (and replaced)",
            c.deaf_detections,
        )


class HubMetrics:
    """The hub's counters, gauges and histograms; with ``broker``, the node's broker counters
    too."""

    def __init__(self, broker: BrokerCounters | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections = Gauge("hub_connections", "Open WebSocket connections", registry=r)
        self.rooms = Gauge("hub_rooms", "Rooms with at least one local member", registry=r)
        self.traffic = Traffic()
        r.register(_TrafficCollector(self.traffic))
        if broker is not None:
            r.register(_BrokerCollector(broker))
        restarts = os.environ.get("HUB_RESTARTS_FILE")
        if restarts:
            r.register(_RestartsCollector(restarts))
        self.queue_overflows = Counter(
            "hub_queue_overflows", "Connections closed as slow consumers (4008)", registry=r
        )
        self.aborts = Counter(
            "hub_connection_aborts",
            "Connections dropped without a close handshake: the peer stopped reading",
            registry=r,
        )
        self.rate_limited = Counter(
            "hub_rate_limited", "Commands refused with rate_limited", registry=r
        )
        self.errors = Counter("hub_errors", "Error replies by code", ["code"], registry=r)
        self.closes = Counter(
            "hub_closes", "Connections closed by the hub, by code", ["code"], registry=r
        )
        self.deliver_latency = Histogram(
            "hub_broker_deliver_seconds",
            "Broker publish-to-deliver latency of stored events",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )

    def render(self) -> bytes:
        """The text exposition format of every metric."""
        return generate_latest(self.registry)
