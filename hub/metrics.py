"""Prometheus metrics of one hub process (a registry per node, so several nodes can share a
process in tests).

docs/operators.md ("Logs and metrics") lists them; deploy/prometheus/ and deploy/grafana/
query them, and a test checks that every name those query is one this module exports.
"""

from __future__ import annotations

import functools
import os
from bisect import bisect_left
from collections.abc import Callable, Iterator
from importlib import metadata

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from hub.broker import BrokerCounters

__all__ = ["CONTENT_TYPE_LATEST", "HubMetrics"]


class Traffic:
    """Counters of the hot paths (frames, room entries), bumped as plain integers (a
    prometheus Counter takes a lock on every increment) and exported when ``/metrics`` is
    read."""

    __slots__ = ("frames_in", "frames_out", "joins", "messages_out")

    def __init__(self) -> None:
        self.frames_in = 0
        self.frames_out = 0
        self.messages_out = 0
        self.joins = 0


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
        yield CounterMetricFamily(
            "hub_joins", "Sessions that entered a room (a join, a breakout move)", t.joins
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


# Command latency, from the command's dispatch to its reply queued: sub-millisecond for most,
# with the alert's 250 ms a bound of its own.
COMMAND_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# The op label of a command whose op this hub does not know (or that names none): what a client
# sends must not grow the label set.
UNKNOWN_OP = "unknown"


class OpLatency:
    """One op's latency histogram as plain numbers (a count per bucket, a sum), for the same
    reason as :class:`Traffic`: a prometheus Histogram's ``observe`` takes two locks and walks
    its buckets, five times this on every command (0.7 µs against 0.14)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        """Count one command that took ``seconds``."""
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds


class CommandLatency:
    """``hub_command_seconds{op}``: an :class:`OpLatency` per op label. It holds whatever
    labels it is given: the dispatcher gives it the ops of its registry and ``unknown``."""

    def __init__(self, bounds: tuple[float, ...] = COMMAND_BUCKETS) -> None:
        self.bounds = bounds
        self.ops: dict[str, OpLatency] = {}

    def of(self, op: str) -> OpLatency:
        """The histogram of the op label ``op`` (made on first use)."""
        latency = self.ops.get(op)
        if latency is None:
            latency = self.ops[op] = OpLatency(self.bounds)
        return latency


class _CommandLatencyCollector(Collector):
    def __init__(self, latency: CommandLatency) -> None:
        self.latency = latency

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "hub_command_seconds",
            'Commands from dispatch to reply queued, by op (ops this hub does not know: "unknown")',
            labels=["op"],
        )
        bounds = [repr(float(bound)) for bound in self.latency.bounds] + ["+Inf"]
        for op, latency in sorted(self.latency.ops.items()):
            cumulative, buckets = 0, []
            for bound, count in zip(bounds, latency.counts, strict=True):
                cumulative += count
                buckets.append((bound, float(cumulative)))
            family.add_metric([op], buckets, latency.total)
        yield family


@functools.cache
def package_version() -> str:
    """The installed livehub's version, or ``unknown`` when run from a checkout that was never
    installed."""
    try:
        return metadata.version("livehub")
    except metadata.PackageNotFoundError:
        return "unknown"


class HubMetrics:
    """The hub's counters, gauges and histograms; with ``broker``, the node's broker counters
    too; the process's own (``process_*``: start time, memory, CPU, descriptors, on Linux)."""

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
        self.command_latency = CommandLatency()
        r.register(_CommandLatencyCollector(self.command_latency))
        self.ready = Gauge(
            "hub_ready", "1 while the node can serve (/readyz 200), else 0", registry=r
        )
        self.broker_ready = Gauge(
            "hub_broker_ready", "1 while the broker is connected and listening, else 0", registry=r
        )
        self.info = Gauge(
            "hub_node_info",
            "The node's id (as in its log lines) and version",
            ["node", "version"],
            registry=r,
        )
        ProcessCollector(registry=r)
        self.deliver_latency = Histogram(
            "hub_broker_deliver_seconds",
            "Broker publish-to-deliver latency of stored events",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )

    def watch_node(
        self, node_id: str, ready: Callable[[], bool], broker_ready: Callable[[], bool]
    ) -> None:
        """Name the node in ``hub_node_info``, and read ``hub_ready`` and ``hub_broker_ready``
        from ``ready`` and ``broker_ready`` whenever ``/metrics`` is read."""
        self.info.labels(node_id, package_version()).set(1)
        self.ready.set_function(lambda: float(ready()))
        self.broker_ready.set_function(lambda: float(broker_ready()))

    def render(self) -> bytes:
        """The text exposition format of every metric."""
        return generate_latest(self.registry)
