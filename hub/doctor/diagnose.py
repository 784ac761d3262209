"""One examination of a deployment: every check of :mod:`hub.doctor.checks` run at once, each
within its timeout, their findings in a fixed order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from hub.config import HubConfig
from hub.doctor import checks, verdicts
from hub.doctor.target import Target
from hub.doctor.verdicts import Finding, Verdict
from signalling.janus_rules import janus_urls

#: An Origin no deployment allows: an upgrade with it must be refused.
FOREIGN_ORIGIN: Final = "https://doctor.invalid"
DEFAULT_TIMEOUT: Final = 5.0


@dataclass(frozen=True, slots=True)
class Examination:
    """What to examine: the deployment at ``target``, with the settings its nodes run with
    (``config``, as ``hub serve`` reads them), for an audience of ``expect`` (None: not
    judged); each check gives up after ``timeout`` seconds."""

    target: Target
    config: HubConfig
    expect: int | None = None
    timeout: float = DEFAULT_TIMEOUT
    foreign_origin: str = FOREIGN_ORIGIN


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """Every finding of one examination, in the order the checks are listed."""

    target: Target
    findings: list[Finding] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        """The worst verdict of all findings."""
        return verdicts.worst([finding.verdict for finding in self.findings])

    @property
    def exit_status(self) -> int:
        """1 when any check failed, else 0."""
        return 1 if self.verdict is Verdict.FAIL else 0

    def as_dict(self) -> dict[str, Any]:
        """The diagnosis as plain data (for ``--json``)."""
        return {
            "url": self.target.base,
            "verdict": self.verdict.value,
            "checks": [
                {"check": f.check, "verdict": f.verdict.value, "detail": f.detail}
                for f in self.findings
            ],
        }


Planned = tuple[str, Awaitable[list[Finding]]]


async def diagnose(examination: Examination) -> Diagnosis:
    """Run every check concurrently and return what they found. Never raises for what it
    finds: a check that fails unexpectedly becomes a ``fail`` finding with its error."""
    config, timeout, target = examination.config, examination.timeout, examination.target
    has_secret = config.secret is not None
    foreign = examination.foreign_origin
    planned: list[Planned] = [
        ("readyz", _one(checks.readyz(target, timeout))),
        ("websocket", _one(checks.websocket(target, config.secret, timeout))),
        ("origin", _one(checks.origin(target, foreign, config.origins, has_secret, timeout))),
        ("secret", _now(verdicts.secret_strength, config.secret)),
        ("redis", checks.redis(config.redis_url, timeout)),
        *_ice_checks(config, timeout),
        *_sfu_checks(config, timeout),
        ("fds", _now(checks.descriptors, examination.expect)),
    ]
    results = await asyncio.gather(*(_guarded(name, run) for name, run in planned))
    return Diagnosis(target, [finding for found in results for finding in found])


def _ice_checks(config: HubConfig, timeout: float) -> list[Planned]:
    planned: list[Planned] = []
    missing = checks.ice_not_configured(config.turn_urls, config.turn_secret)
    if missing is not None:
        planned.append(("turn", _now(lambda: missing)))
    elif config.turn_secret is not None:
        secret = config.turn_secret
        planned += [("turn", _one(checks.turn(url, secret, timeout))) for url in config.turn_urls]
    planned += [("stun", _one(checks.stun_server(url, timeout))) for url in config.stun_urls]
    return planned


def _sfu_checks(config: HubConfig, timeout: float) -> list[Planned]:
    try:
        urls = janus_urls(config.sfu)
    except ValueError as error:
        failed = Finding("sfu", Verdict.FAIL, f"HUB_SFU: {error} (hub serve refuses to start)")
        return [("sfu", _now(lambda: failed))]
    if not urls:
        skipped = Finding(
            "sfu",
            Verdict.SKIP,
            "no --sfu (HUB_SFU): panels' stages go through each node's embedded relay",
        )
        return [("sfu", _now(lambda: skipped))]
    secret = config.sfu_api_secret
    return [("sfu", _one(checks.sfu(url, secret, timeout))) for url in urls]


async def _one(check: Awaitable[Finding]) -> list[Finding]:
    return [await check]


async def _now(judge: Callable[..., Finding], *args: Any) -> list[Finding]:
    """A check without I/O, run where the others are (so that its errors are guarded too)."""
    return [judge(*args)]


async def _guarded(name: str, run: Awaitable[list[Finding]]) -> list[Finding]:
    """``run``'s findings; a check that raises (a bug, or an error nobody foresaw) is one
    ``fail`` finding saying so, and the others still run."""
    try:
        return await run
    except Exception as error:
        return [Finding(name, Verdict.FAIL, f"the check itself failed: {error!r}")]
