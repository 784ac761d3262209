"""The Janus SFU's metrics on the node's ``/metrics``: whether each server is connected, the
node's connections with it by leg, and how many connections to Janus dropped."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from signalling.janus_sfu import JanusSfu


class JanusCollector(Collector):
    """``hub_sfu_up{server}``, ``hub_sfu_legs{leg}`` and ``hub_sfu_connection_losses_total``,
    read from a :class:`JanusSfu` when ``/metrics`` is read."""

    def __init__(self, sfu: JanusSfu) -> None:
        self.sfu = sfu

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "hub_sfu_up", "Whether this node is connected to the Janus server", labels=["server"]
        )
        for name, connected in self.sfu.servers():
            up.add_metric([name], 1 if connected else 0)
        yield up
        legs = GaugeMetricFamily(
            "hub_sfu_legs", "This node's sessions' connections with Janus", labels=["leg"]
        )
        for leg, count in self.sfu.leg_counts().items():
            legs.add_metric([leg.value], count)
        yield legs
        yield CounterMetricFamily(
            "hub_sfu_connection_losses",
            "Connections to a Janus server that dropped (every connection with it ended)",
            self.sfu.losses,
        )
