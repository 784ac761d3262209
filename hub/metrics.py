"""Prometheus metrics of one hub process (a registry per node, so several nodes can share a
process in tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "HubMetrics"]


class HubMetrics:
    """The hub's counters, gauges and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections = Gauge("hub_connections", "Open WebSocket connections", registry=r)
        self.rooms = Gauge("hub_rooms", "Rooms with at least one local member", registry=r)
        self.frames_in = Counter("hub_frames_in", "WebSocket frames received", registry=r)
        self.frames_out = Counter("hub_frames_out", "WebSocket frames sent", registry=r)
        self.messages_out = Counter(
            "hub_messages_out", "Messages sent (several may share a frame)", registry=r
        )
        self.queue_overflows = Counter(
            "hub_queue_overflows", "Connections closed as slow consumers (4008)", registry=r
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
