"""``hub doctor`` against real parts: a ``hub serve`` node on the run's private Redis (the
command itself, ``--json`` and the table), Redis with its append-only file, Debian's coturn
(credentials made as the hub makes them, accepted; another secret's, refused), Janus, and
ports where nothing listens."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator, Mapping

import pytest

from hub.config import HubConfig
from hub.doctor import checks
from hub.doctor.diagnose import Examination, diagnose
from hub.doctor.target import Target
from hub.doctor.verdicts import Verdict
from tests.conftest import TIMEOUT
from tests.support.coturn import TurnServer
from tests.support.hub_process import TEST_SECRET, HubProcess, free_port
from tests.support.janus import JanusServer
from tests.support.redis_server import RedisServer
from tests.support.system import require_turnserver

pytestmark = [pytest.mark.integration]

SITE = "https://event.example.org"
# The soft open-file limit the doctor runs under: the common default, too low for 900.
FD_SOFT_LIMIT = 1024


@pytest.fixture(scope="module")
def node(redis_server: RedisServer) -> Iterator[HubProcess]:
    """One node on the run's private Redis (running and flushed), with the event's site."""
    redis_server.start()
    redis_server.flush()
    process = HubProcess(redis_url=redis_server.url, args=["--origin", SITE])
    try:
        yield process.start()
    finally:
        process.stop()


@pytest.fixture(scope="module")
def coturn() -> Iterator[TurnServer]:
    """A private coturn on loopback with ``use-auth-secret``, shared by the module."""
    with TurnServer(binary=require_turnserver()) as server:
        yield server


def node_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any hub setting, then ``settings``: a node's."""
    kept = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("HUB_") and key not in ("REDIS_URL", "PORT", "WEB_CONCURRENCY")
    }
    return {**kept, **settings}


def low_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_SOFT_LIMIT, hard))


def run_doctor(node: HubProcess, redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``hub doctor`` on ``node`` with the node's settings in the environment, under a soft
    open-file limit of :data:`FD_SOFT_LIMIT`."""
    settings = {"REDIS_URL": redis_url, "HUB_SECRET": TEST_SECRET, "HUB_ORIGINS": SITE}
    return subprocess.run(
        [sys.executable, "-m", "hub", "doctor", node.http, "--expect", "900", *args],
        env=node_environment(settings),
        preexec_fn=low_fd_limit,
        capture_output=True,
        text=True,
        timeout=3 * TIMEOUT,
        check=False,
    )


@pytest.mark.redis
def test_doctor_judges_a_node_on_redis(node: HubProcess, redis_server: RedisServer) -> None:
    done = run_doctor(node, redis_server.url, "--json")
    assert done.returncode == 1, done.stderr  # the fixture's Redis keeps nothing on disk
    result = json.loads(done.stdout)
    found = {item["check"]: (item["verdict"], item["detail"]) for item in result["checks"]}
    assert list(found) == [
        "readyz", "websocket", "origin", "secret", "redis", "persistence", "clock", "turn",
        "sfu", "fds",
    ]  # fmt: skip
    verdicts = {check: verdict for check, (verdict, _) in found.items()}
    assert verdicts == {
        "readyz": "ok",
        "websocket": "ok",
        "origin": "ok",
        "secret": "ok",
        "redis": "ok",
        "persistence": "fail",
        "clock": "ok",
        "turn": "warn",
        "sfu": "skip",
        "fds": "warn",
    }, found
    assert result["verdict"] == "fail"
    assert found["readyz"][1].startswith("200 ready (node ")
    assert "hello with a token accepted by node" in found["websocket"][1]
    assert "(hub.v1.json)" in found["websocket"][1]
    assert found["origin"][1] == f"https://doctor.invalid refused (403); allowed here: {SITE}"
    assert found["redis"][1].startswith(f"redis://127.0.0.1:{redis_server.port}/0: ")
    assert " 7." in found["redis"][1] or "Valkey" in found["redis"][1]
    assert found["persistence"][1].startswith("nothing on disk (appendonly no, no save points)")
    assert "not configured" in found["turn"][1]
    assert f"soft limit {FD_SOFT_LIMIT} < 1253 needed for 900" in found["fds"][1]
    assert TEST_SECRET not in done.stdout


@pytest.mark.redis
def test_doctor_prints_a_table_with_a_verdict_line(
    node: HubProcess, redis_server: RedisServer
) -> None:
    done = run_doctor(node, redis_server.url)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert any("persistence" in line and "fail" in line for line in lines), done.stdout
    assert any("websocket" in line and " ok " in line for line in lines), done.stdout
    assert lines[-1].startswith("verdict: FAIL (")
    assert TEST_SECRET not in done.stdout


@pytest.mark.redis
async def test_a_token_of_another_secret_is_refused(node: HubProcess) -> None:
    target = Target.parse(node.url)
    other = await checks.websocket(target, "another-secret-0123456789-0123456789-abcdef", TIMEOUT)
    assert other.verdict is Verdict.FAIL
    assert "the hub refused a token signed with this HUB_SECRET (unauthorized: " in other.detail
    without = await checks.websocket(target, None, TIMEOUT)
    assert without.verdict is Verdict.OK, without.detail
    assert "(unauthorized: " in without.detail and "no usable secret" in without.detail


@pytest.mark.redis
async def test_redis_with_its_append_only_file_is_ok() -> None:
    with RedisServer(appendfsync="everysec") as server:
        redis, persistence, clock = await checks.redis(server.url, TIMEOUT)
    assert redis.verdict is Verdict.OK, redis.detail
    assert (persistence.verdict, persistence.detail) == (
        Verdict.OK,
        "append-only file, appendfsync everysec",
    )
    assert clock.verdict is Verdict.OK, clock.detail


async def test_turn_grants_an_allocation_with_the_hubs_credentials(coturn: TurnServer) -> None:
    for url in (coturn.url, f"{coturn.url}?transport=tcp"):
        finding = await checks.turn(url, coturn.secret, TIMEOUT)
        assert finding.verdict is Verdict.OK, finding.detail
        assert "allocation with the hub's credentials granted (relay 127.0.0.1:" in (finding.detail)


async def test_turn_refuses_credentials_of_another_secret(coturn: TurnServer) -> None:
    finding = await checks.turn(coturn.url, "not-the-static-auth-secret", TIMEOUT)
    assert finding.verdict is Verdict.FAIL
    assert "refused the hub's credentials (401" in finding.detail


async def test_a_turn_server_answers_stun_binding(coturn: TurnServer) -> None:
    url = coturn.url.replace("turn:", "stun:")
    finding = await checks.stun_server(url, TIMEOUT)
    assert finding.verdict is Verdict.OK, finding.detail
    assert "sees this machine at 127.0.0.1:" in finding.detail


async def test_janus_answers_info(janus: JanusServer) -> None:
    finding = await checks.sfu(janus.ws_url, None, TIMEOUT)
    assert finding.verdict is Verdict.OK, finding.detail
    assert finding.detail.startswith(f"{janus.ws_url}: Janus ") and "VideoRoom" in finding.detail


async def test_everything_behind_a_closed_port_fails() -> None:
    closed = free_port()
    config = HubConfig(
        redis_url=f"redis://127.0.0.1:{closed}/0",
        turn_urls=(f"turn:127.0.0.1:{closed}", f"turn:127.0.0.1:{closed}?transport=tcp"),
        turn_secret="a-turn-secret",
        sfu=(f"janus+ws://127.0.0.1:{closed}",),
    )
    target = Target.parse(f"http://127.0.0.1:{closed}")
    diagnosis = await diagnose(Examination(target, config, timeout=TIMEOUT))
    verdicts = [(f.check, f.verdict) for f in diagnosis.findings]
    assert verdicts == [
        ("readyz", Verdict.FAIL),
        ("websocket", Verdict.FAIL),
        ("origin", Verdict.SKIP),
        ("secret", Verdict.FAIL),
        ("redis", Verdict.FAIL),
        ("persistence", Verdict.SKIP),
        ("clock", Verdict.SKIP),
        ("turn", Verdict.FAIL),
        ("turn", Verdict.FAIL),
        ("sfu", Verdict.FAIL),
        ("fds", Verdict.SKIP),
    ], diagnosis.findings
    assert diagnosis.exit_status == 1
    turn_udp = diagnosis.findings[7]
    assert turn_udp.detail.endswith("Connection refused"), turn_udp.detail
