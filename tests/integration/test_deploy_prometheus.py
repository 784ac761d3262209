"""The shipped Prometheus files (``deploy/prometheus/``) and Grafana dashboard
(``deploy/grafana/``) checked by Prometheus's own ``promtool``: the alert rules load, their unit
tests (``livehub-alerts.test.yml``) pass, the example configuration is valid, and every query
of the dashboard parses (each made a recording rule, with Grafana's variables given values).
That they query only what the hub exports: tests/unit/test_deploy_metrics.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.system import require_promtool

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "livehub-dashboard.json"

# Grafana's variables in the dashboard's queries, and what they stand for here.
VARIABLES = {"$instance": ".*", "$__rate_interval": "1m", "$__range": "1h"}


def promtool(*args: str, cwd: Path = PROMETHEUS) -> str:
    """Run promtool; its output, or the test fails with it."""
    done = subprocess.run(
        [require_promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def test_the_alert_rules_load() -> None:
    assert "SUCCESS: 11 rules found" in promtool("check", "rules", "livehub-alerts.yml")


def test_the_alert_rules_pass_their_unit_tests() -> None:
    assert "SUCCESS" in promtool("test", "rules", "livehub-alerts.test.yml")


def test_every_alert_has_a_unit_test() -> None:
    rules = PROMETHEUS.joinpath("livehub-alerts.yml").read_text()
    tests = PROMETHEUS.joinpath("livehub-alerts.test.yml").read_text()
    names = {line.split(":", 1)[1].strip() for line in rules.splitlines() if "- alert:" in line}
    tested = {line.split(":", 1)[1].strip() for line in tests.splitlines() if "alertname:" in line}
    assert names and names == tested


def test_the_example_configuration_is_valid() -> None:
    promtool("check", "config", "prometheus.yml")


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for number, query in enumerate(queries):
        for variable, value in VARIABLES.items():
            query = query.replace(variable, value)
        lines += [f"      - record: dashboard:query{number}", f"        expr: {json.dumps(query)}"]
    rules = tmp_path / "dashboard.yml"
    rules.write_text("\n".join(lines) + "\n")
    assert f"SUCCESS: {len(queries)} rules found" in promtool("check", "rules", str(rules))
