"""What ``/metrics`` says of a node's broker: its subscriber's reconnects and deaf connections
(read from the broker's counters when scraped)."""

from __future__ import annotations

from helpers import config

from hub.app import build_hub


def samples(text: bytes) -> dict[str, float]:
    """The samples of an exposition text, by name (with labels)."""
    out: dict[str, float] = {}
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_the_broker_counters_are_on_metrics_as_they_stand() -> None:
    hub = build_hub(config())
    counters = hub.node.broker.counters
    assert samples(hub.node.metrics.render())["hub_broker_reconnects_total"] == 0
    assert samples(hub.node.metrics.render())["hub_broker_deaf_detections_total"] == 0
    counters.reconnects += 2
    counters.deaf_detections += 1
    now = samples(hub.node.metrics.render())
    assert (now["hub_broker_reconnects_total"], now["hub_broker_deaf_detections_total"]) == (2, 1)
