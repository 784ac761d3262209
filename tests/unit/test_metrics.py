"""What ``/metrics`` says of a node: its broker's subscriber's reconnects and deaf connections
(read from the broker's counters when scraped), command latency by op (unknown ops under one
label), room entries, readiness and which node it is."""

from __future__ import annotations

from importlib.metadata import version

from helpers import Client, config, new_session, running, token

from hub.app import build_hub
from hub.metrics import HubMetrics, OpLatency


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


async def test_command_latency_is_counted_by_op_and_unknown_ops_share_one_label() -> None:
    async with running() as [hub]:
        client = Client(hub, new_session(hub))
        await client.ok("hello", token=token(hub, "ann"))
        await client.ok("ping")
        await client.ok("ping")
        for op in ("no.such.op", "another.one", ["a", "list"], None):
            await client.err(op)  # type: ignore[arg-type]
        now = samples(hub.node.metrics.render())
    assert now['hub_command_seconds_count{op="ping"}'] == 2
    assert now['hub_command_seconds_count{op="hello"}'] == 1
    assert now['hub_command_seconds_count{op="unknown"}'] == 4
    assert now['hub_command_seconds_bucket{le="+Inf",op="ping"}'] == 2
    assert 0 < now['hub_command_seconds_sum{op="ping"}'] < 1
    ops = {name.partition('op="')[2].partition('"')[0] for name in now if "command_seconds" in name}
    assert ops == {"hello", "ping", "unknown"}


def test_a_latency_on_a_bound_counts_in_that_bucket() -> None:
    latency = OpLatency((0.1, 0.25))
    for seconds in (0.0, 0.1, 0.2, 0.25, 0.26):
        latency.observe(seconds)
    assert latency.counts == [2, 2, 1]
    metrics = HubMetrics()
    metrics.command_latency.ops["x"] = latency
    metrics.command_latency.bounds = latency.bounds
    now = samples(metrics.render())
    assert [
        now[f'hub_command_seconds_bucket{{le="{le}",op="x"}}'] for le in ("0.1", "0.25", "+Inf")
    ] == [2, 4, 5]
    assert now['hub_command_seconds_count{op="x"}'] == 5


async def test_joins_readiness_and_the_node_are_on_metrics() -> None:
    async with running() as [hub]:
        client = Client(hub, new_session(hub))
        await client.ok("hello", token=token(hub, "ann"))
        await client.ok("join", room="main")
        await client.ok("join", room="main")  # a join again is an entry again
        ready = samples(hub.node.metrics.render())
        hub.node.drain()
        draining = samples(hub.node.metrics.render())
        node = hub.node.node_id
    assert ready["hub_joins_total"] == 2
    assert (ready["hub_ready"], ready["hub_broker_ready"]) == (1, 1)
    assert (draining["hub_ready"], draining["hub_broker_ready"]) == (0, 1)
    assert ready[f'hub_node_info{{node="{node}",version="{version("livehub")}"}}'] == 1
    assert ready["process_start_time_seconds"] > 0
