"""The alert rules (deploy/prometheus/) and the dashboard (deploy/grafana/) ask only for what the
hub exports: every metric name they query is on a real node's ``/metrics`` (its registry,
rendered after a few commands), with the labels they select by, and the error codes they name
are the contract's."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import get_args

import pytest
from helpers import Client, new_session, running, token

from hub.errors import ErrorCode

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ALERTS = DEPLOY / "prometheus" / "livehub-alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "livehub-dashboard.json"

# Series Prometheus makes itself, and the labels it adds to every series it scrapes.
PROMETHEUS_OWN = {"up"}
TARGET_LABELS = {"job", "instance"}

NAME = re.compile(r"\b((?:hub|process)_[a-z0-9_]+|up)\b")
SELECTOR = re.compile(r"\b((?:hub|process)_[a-z0-9_]+)\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"([^\"]*)\"")


def alert_text() -> str:
    return ALERTS.read_text()


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    queries += [variable["definition"] for variable in dashboard["templating"]["list"]]
    return queries


async def exported() -> dict[str, set[str]]:
    """Every sample name a node exports, with the label names seen on it: from its samples and,
    for a family without samples yet, from its ``# TYPE`` line."""
    async with running() as [hub]:
        client = Client(hub, new_session(hub))
        await client.ok("hello", token=token(hub, "ann"))
        await client.ok("join", room="main")
        await client.err("no.such.op")
        hub.node.metrics.closes.labels("4008").inc()
        text = hub.node.metrics.render().decode()
    names: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            suffixes = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
            for suffix in suffixes:
                names.setdefault(name + suffix, set())
        elif line and not line.startswith("#"):
            name, _, labels = line.rsplit(" ", 1)[0].partition("{")
            names.setdefault(name, set()).update(key for key, _ in MATCHER.findall(labels))
    return names


@pytest.fixture
async def metrics(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, set[str]]:
    # As the supervisor of `hub serve --workers N` runs its workers: their restart count.
    restarts = tmp_path / "restarts"
    restarts.write_text("0")
    monkeypatch.setenv("HUB_RESTARTS_FILE", str(restarts))
    return await exported()


def test_the_files_query_something() -> None:
    assert len(NAME.findall(alert_text())) > 10
    assert len(dashboard_queries()) > 20


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
async def test_every_metric_queried_is_exported(metrics: dict[str, set[str]], source: str) -> None:
    text = alert_text() if source == "alerts" else "\n".join(dashboard_queries())
    queried = set(NAME.findall(text)) - PROMETHEUS_OWN
    assert queried - set(metrics) == set()
    # The ones the issue asks for are there.
    assert {"hub_connections", "hub_command_seconds_bucket", "hub_broker_ready"} <= queried


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
async def test_every_label_selected_is_one_the_metric_has(
    metrics: dict[str, set[str]], source: str
) -> None:
    text = alert_text() if source == "alerts" else "\n".join(dashboard_queries())
    for name, matchers in SELECTOR.findall(text):
        for label, value in MATCHER.findall(matchers):
            if label in TARGET_LABELS:
                continue
            assert label in metrics[name], f"{name} has no label {label}"
            if label == "code" and name == "hub_errors_total":
                assert value in get_args(ErrorCode)


def test_the_dashboard_imports_with_a_prometheus_of_ones_choice() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] == 39
    assert [item["name"] for item in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    chosen = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"] == chosen, panel["title"]
            assert panel["targets"] and all(t["datasource"] == chosen for t in panel["targets"])
    assert dashboard["templating"]["list"][0]["datasource"] == chosen
