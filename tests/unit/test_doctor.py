"""``hub doctor``'s rules, without a deployment: the verdicts for the secret, descriptors,
clocks, Redis's version and persistence, ``/readyz`` and the Origin policy; the URLs it takes;
its arguments."""

from __future__ import annotations

import pytest

from hub.auth import MIN_SECRET_BYTES, generate_secret
from hub.cli import main
from hub.doctor import verdicts
from hub.doctor.stun import IceUrl
from hub.doctor.target import Target
from hub.doctor.verdicts import Verdict

# --- the secret ----------------------------------------------------------------------------------


def test_a_missing_secret_fails() -> None:
    assert verdicts.secret_strength(None).verdict is Verdict.FAIL
    assert verdicts.secret_strength("").verdict is Verdict.FAIL


def test_a_secret_the_hub_would_refuse_fails_and_is_never_shown() -> None:
    secret = "Short-but-Random-31-bytes-7f3a9"
    assert len(secret) == MIN_SECRET_BYTES - 1
    finding = verdicts.secret_strength(secret)
    assert finding.verdict is Verdict.FAIL
    assert "31 bytes" in finding.detail and secret not in finding.detail


def test_a_generated_secret_is_ok() -> None:
    secret = generate_secret()
    finding = verdicts.secret_strength(secret)
    assert finding.verdict is Verdict.OK, finding.detail
    assert secret not in finding.detail


def test_a_hex_secret_is_ok() -> None:
    secret = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    assert verdicts.secret_strength(secret).verdict is Verdict.OK


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        ("a" * 40, "only 1 different characters"),
        ("abc123" * 7, "repeats a 6-character pattern"),
        ("correcthorsebatterystaplecorrectbattery", "lower-case letters only"),
        ("12345678901234567890123456789012", "digits only"),
        ("Aa1-" * 10, "repeats a 4-character pattern"),
    ],
)
def test_a_secret_that_does_not_look_random_is_warned_about(secret: str, why: str) -> None:
    finding = verdicts.secret_strength(secret)
    assert finding.verdict is Verdict.WARN
    assert why in finding.detail
    assert secret not in finding.detail


# --- file descriptors ----------------------------------------------------------------------------


def test_descriptors_needed_are_one_per_connection_a_quarter_more_and_a_base() -> None:
    assert verdicts.fds_needed(900) == 900 + 225 + verdicts.FD_BASE == 1253
    assert verdicts.fds_needed(1) == 2 + verdicts.FD_BASE
    assert verdicts.attendees_within(verdicts.fds_needed(800)) == 800


def test_the_common_default_limit_is_too_low_for_900() -> None:
    finding = verdicts.fd_limit(1024, 524288, 900)
    assert finding.verdict is Verdict.WARN
    assert "1024 < 1253 needed for 900" in finding.detail
    assert "900 x 1.25 + 128" in finding.detail
    assert "hard limit allows raising it" in finding.detail


def test_a_hard_limit_too_low_is_said() -> None:
    finding = verdicts.fd_limit(1024, 1024, 900)
    assert finding.verdict is Verdict.WARN
    assert "the hard limit 1024 too" in finding.detail


def test_enough_descriptors_or_unlimited_are_ok() -> None:
    assert verdicts.fd_limit(1253, 1253, 900).verdict is Verdict.OK
    assert verdicts.fd_limit(None, None, 100_000).verdict is Verdict.OK
    assert verdicts.fd_limit(1252, None, 900).verdict is Verdict.WARN


def test_without_an_audience_the_limit_is_not_judged_but_told() -> None:
    finding = verdicts.fd_limit(1024, 4096, None)
    assert finding.verdict is Verdict.SKIP
    assert "about 716 attendees" in finding.detail and "--expect" in finding.detail


# --- clocks --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("skew", "verdict"),
    [
        (0.0, Verdict.OK),
        (-1.0, Verdict.OK),
        (1.2, Verdict.WARN),
        (-4.9, Verdict.WARN),
        (5.01, Verdict.FAIL),
        (-60.0, Verdict.FAIL),
    ],
)
def test_clock_skew_thresholds(skew: float, verdict: Verdict) -> None:
    assert verdicts.clock_skew(skew, 0.001).verdict is verdict


def test_clock_skew_says_which_way() -> None:
    assert "2.500 s ahead of Redis" in verdicts.clock_skew(2.5, 0.001).detail
    assert "0.250 s behind Redis" in verdicts.clock_skew(-0.25, 0.001).detail


# --- Redis ---------------------------------------------------------------------------------------


def test_redis_versions() -> None:
    assert verdicts.redis_server({"redis_version": "7.0.15"}).verdict is Verdict.OK
    old = verdicts.redis_server({"redis_version": "6.2.14"})
    assert old.verdict is Verdict.FAIL and "7.0 or newer" in old.detail
    valkey = verdicts.redis_server({"redis_version": "7.2.4", "valkey_version": "8.1.1"})
    assert valkey.verdict is Verdict.OK
    assert valkey.detail.startswith("Valkey 8.1.1 (redis_version 7.2.4)")
    assert verdicts.redis_server({}).verdict is Verdict.WARN
    assert verdicts.version_tuple("7.4.0-rc1") == (7, 4, 0)


@pytest.mark.parametrize(
    ("appendonly", "appendfsync", "save", "verdict"),
    [
        ("yes", "always", "", Verdict.OK),
        ("yes", "everysec", "3600 1 300 100", Verdict.OK),
        ("yes", "no", "", Verdict.WARN),
        ("no", "everysec", "3600 1 300 100 60 10000", Verdict.WARN),
        ("no", "everysec", "", Verdict.FAIL),
        ("no", "always", "  ", Verdict.FAIL),
    ],
)
def test_persistence_from_config_values(
    appendonly: str, appendfsync: str, save: str, verdict: Verdict
) -> None:
    assert verdicts.redis_persistence(appendonly, appendfsync, save).verdict is verdict


def test_a_redis_refusing_config_is_not_judged() -> None:
    finding = verdicts.persistence_not_judged("unknown command 'CONFIG'")
    assert finding.verdict is Verdict.WARN and finding.detail.startswith("not judged")


# --- the hub's answers ---------------------------------------------------------------------------


def test_readiness() -> None:
    assert verdicts.readiness(200, {"ready": True, "node": "n1", "sfu": "ok"}).verdict is (
        Verdict.OK
    )
    degraded = verdicts.readiness(200, {"ready": True, "sfu": "degraded: janus 1/1: down"})
    assert degraded.verdict is Verdict.WARN and "janus 1/1: down" in degraded.detail
    not_ready = verdicts.readiness(503, {"ready": False, "node": "n1", "sfu": "ok"})
    assert not_ready.verdict is Verdict.FAIL and "503 not ready (node n1): sfu: ok" in (
        not_ready.detail
    )
    assert verdicts.readiness(404, None).verdict is Verdict.FAIL


@pytest.mark.parametrize(
    ("status", "origins", "has_secret", "verdict"),
    [
        (403, ("https://event.example.org",), True, Verdict.OK),
        (403, (), False, Verdict.OK),  # a trial hub: localhost only, as hub serve says
        (403, (), True, Verdict.WARN),  # an event's hub without its site
        (403, ("*",), True, Verdict.WARN),
        (101, ("https://event.example.org",), True, Verdict.WARN),
        (400, ("https://event.example.org",), True, Verdict.WARN),
        (None, ("https://event.example.org",), True, Verdict.SKIP),
    ],
)
def test_origin_policy(
    status: int | None, origins: tuple[str, ...], has_secret: bool, verdict: Verdict
) -> None:
    finding = verdicts.origin_policy("https://doctor.invalid", status, origins, has_secret)
    assert finding.verdict is verdict, finding.detail


def test_the_worst_verdict_wins_and_skips_do_not_count() -> None:
    assert verdicts.worst([Verdict.OK, Verdict.SKIP, Verdict.WARN]) is Verdict.WARN
    assert verdicts.worst([Verdict.FAIL, Verdict.WARN, Verdict.OK]) is Verdict.FAIL
    assert verdicts.worst([Verdict.SKIP, Verdict.OK]) is Verdict.OK
    assert verdicts.worst([Verdict.SKIP]) is Verdict.SKIP


# --- URLs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "readyz", "ws"),
    [
        ("https://event.example.org", "https://event.example.org/readyz", "wss://event.example.org/ws"),
        ("http://10.0.0.1:8000/", "http://10.0.0.1:8000/readyz", "ws://10.0.0.1:8000/ws"),
        ("wss://event.example.org/ws", "https://event.example.org/readyz", "wss://event.example.org/ws"),
        ("https://example.org/live/", "https://example.org/live/readyz", "wss://example.org/live/ws"),
        ("ws://[::1]:8000/ws", "http://[::1]:8000/readyz", "ws://[::1]:8000/ws"),
    ],
)  # fmt: skip
def test_target_urls(url: str, readyz: str, ws: str) -> None:
    target = Target.parse(url)
    assert (target.readyz, target.ws) == (readyz, ws)


@pytest.mark.parametrize(
    "url", ["event.example.org", "ftp://x", "https://", "https://x:99999", "https://x/?a=1", "h ttp://x"]
)  # fmt: skip
def test_target_refuses_what_is_not_a_deployment_url(url: str) -> None:
    with pytest.raises(ValueError):
        Target.parse(url)


def test_ice_urls() -> None:
    assert IceUrl.parse("turn:turn.example.org").where == "udp turn.example.org:3478"
    assert IceUrl.parse("turn:10.0.0.1:3479?transport=tcp").where == "tcp 10.0.0.1:3479"
    turns = IceUrl.parse("turns:turn.example.org?transport=tcp")
    assert (turns.tls, turns.port, turns.is_turn) == (True, 5349, True)
    assert IceUrl.parse("stun:[2001:db8::1]:3478").where == "udp [2001:db8::1]:3478"
    for wrong in (
        "http://x",
        "turn:",
        "turn:x:0",
        "turn:x?transport=sctp",
        "turns:x?transport=udp",
    ):
        with pytest.raises(ValueError):
            IceUrl.parse(wrong)


# --- the command ---------------------------------------------------------------------------------


def test_the_command_refuses_a_url_that_is_not_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "event.example.org"]) == 2
    assert "hub doctor: URL takes https://HOST" in capsys.readouterr().err


def test_the_command_refuses_a_bad_audience(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "https://event.example.org", "--expect", "0"]) == 2
    assert "--expect" in capsys.readouterr().err
