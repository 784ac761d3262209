"""The rules ``hub doctor`` judges by: pure functions from what a check measured to a
:class:`Finding` (a verdict and one line saying why). Nothing here does I/O or prints."""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from hub.auth import MIN_SECRET_BYTES


class Verdict(enum.StrEnum):
    """How a check came out, from best to worst: ``skip`` (nothing to judge, and why) is not a
    problem; ``fail`` makes ``hub doctor`` exit with 1."""

    OK = "ok"
    SKIP = "skip"
    WARN = "warn"
    FAIL = "fail"


_RANK: Final = {Verdict.OK: 0, Verdict.SKIP: 0, Verdict.WARN: 1, Verdict.FAIL: 2}


def worst(verdicts: Sequence[Verdict]) -> Verdict:
    """The worst of ``verdicts`` (``fail`` over ``warn`` over ``ok``); ``skip`` when there are
    only skips or none at all."""
    judged = [v for v in verdicts if v is not Verdict.SKIP]
    if not judged:
        return Verdict.SKIP
    return max(judged, key=_RANK.__getitem__)


@dataclass(frozen=True, slots=True)
class Finding:
    """What one check found: its ``check`` (a short name such as ``redis``), its ``verdict``
    and a one-line ``detail`` for the operator (never a secret)."""

    check: str
    verdict: Verdict
    detail: str


# --- the token secret ----------------------------------------------------------------------------

#: A secret from which fewer bits could have come (if each character were random) is judged weak.
SECRET_MIN_BITS: Final = 128
#: Fewer distinct characters than this in a secret of the minimum length and over is not random.
SECRET_MIN_DISTINCT: Final = 12
_CLASSES: Final = (
    ("lower-case letters", re.compile(r"[a-z]"), 26),
    ("upper-case letters", re.compile(r"[A-Z]"), 26),
    ("digits", re.compile(r"[0-9]"), 10),
    ("symbols", re.compile(r"[^a-zA-Z0-9]"), 32),
)
_MAKE_ONE: Final = "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def secret_strength(secret: str | None) -> Finding:
    """The token secret: ``fail`` when there is none or the hub would refuse it (under
    :data:`~hub.auth.MIN_SECRET_BYTES` bytes), ``warn`` when it does not look random (one
    character class, few distinct characters, a repeated pattern, or under
    :data:`SECRET_MIN_BITS` bits even if random), ``ok`` otherwise. The detail never shows the
    secret nor any part of it."""
    if not secret:
        return Finding(
            "secret",
            Verdict.FAIL,
            "none set (HUB_SECRET or --secret): a hub without one is a trial hub that makes its "
            "own at each start and admits guests",
        )
    size = len(secret.encode())
    if size < MIN_SECRET_BYTES:
        return Finding(
            "secret",
            Verdict.FAIL,
            f"{size} bytes: the hub refuses secrets under {MIN_SECRET_BYTES} bytes; {_MAKE_ONE}",
        )
    present = [(name, count) for name, pattern, count in _CLASSES if pattern.search(secret)]
    bits = math.floor(len(secret) * math.log2(sum(count for _, count in present)))
    weaknesses = []
    period = _period(secret)
    if period <= len(secret) // 2:
        weaknesses.append(f"it repeats a {period}-character pattern")
    distinct = len(set(secret))
    if distinct < SECRET_MIN_DISTINCT:
        weaknesses.append(f"it has only {distinct} different characters")
    if len(present) == 1:
        weaknesses.append(f"it is {present[0][0]} only")
    if bits < SECRET_MIN_BITS:
        weaknesses.append(f"at most about {bits} bits even if random")
    if weaknesses:
        return Finding(
            "secret",
            Verdict.WARN,
            f"{size} bytes, but {'; '.join(weaknesses)}: tokens may be forged by guessing it; "
            + _MAKE_ONE,
        )
    kinds = ", ".join(name for name, _ in present)
    return Finding("secret", Verdict.OK, f"{size} bytes of {kinds}; about {bits} bits if random")


def _period(text: str) -> int:
    """The length of the shortest unit that ``text`` repeats (its own length when none)."""
    for length in range(1, len(text) // 2 + 1):
        if all(text[i] == text[i % length] for i in range(length, len(text))):
            return length
    return len(text)


# --- file descriptors --------------------------------------------------------------------------

#: Descriptors a node holds whatever its audience: Redis's pool (up to 64) and its subscriber,
#: the listening sockets, Janus, log files and the interpreter's own.
FD_BASE: Final = 128


def fds_needed(expect: int) -> int:
    """Descriptors one node process needs to hold ``expect`` attendees: one per WebSocket, a
    quarter more (second tabs and devices, sockets still closing while a reconnect storm opens
    new ones), plus :data:`FD_BASE`. All of them on one node: after the other nodes restart,
    one may have to hold everyone."""
    return math.ceil(expect * 5 / 4) + FD_BASE


def attendees_within(limit: int) -> int:
    """How many attendees a descriptor limit holds, by :func:`fds_needed`'s rule."""
    return max(0, math.floor((limit - FD_BASE) * 4 / 5))


def fd_limit(soft: int | None, hard: int | None, expect: int | None) -> Finding:
    """This process's ``RLIMIT_NOFILE`` (None: unlimited), which ``hub serve`` started from
    the same environment inherits, against the expected audience: ``warn`` under
    :func:`fds_needed` (saying whether the hard limit allows raising it), ``ok`` at or above,
    ``skip`` without ``expect`` (with what the limit holds)."""
    shown = "unlimited" if soft is None else str(soft)
    if expect is None:
        holds = "any number of" if soft is None else f"about {attendees_within(soft)}"
        return Finding(
            "fds",
            Verdict.SKIP,
            f"soft limit {shown} holds {holds} attendees per node; give --expect N to judge",
        )
    needed = fds_needed(expect)
    formula = f"{expect} x 1.25 + {FD_BASE}: one per connection, a quarter more, {FD_BASE} fixed"
    if soft is None or soft >= needed:
        return Finding(
            "fds", Verdict.OK, f"soft limit {shown} ≥ {needed} needed for {expect} ({formula})"
        )
    if hard is None or hard >= needed:
        raise_it = "the hard limit allows raising it (systemd: LimitNOFILE=; a shell: ulimit -n)"
    else:
        raise_it = f"the hard limit {hard} too: raise both (systemd: LimitNOFILE=)"
    return Finding(
        "fds",
        Verdict.WARN,
        f"soft limit {shown} < {needed} needed for {expect} ({formula}); {raise_it}",
    )


# --- clocks --------------------------------------------------------------------------------------

#: Skew past which clocks are not kept in step (NTP keeps them within milliseconds).
SKEW_WARN: Final = 1.0
#: Skew past which tokens' expiry goes wrong: the hub checks ``exp`` against its own clock with
#: no leeway (hub/auth.py), so a renewal due at 80% of a token's life may come too late.
SKEW_FAIL: Final = 5.0


def clock_skew(skew: float, uncertainty: float) -> Finding:
    """This machine's clock against Redis's ``TIME`` (``skew`` seconds, positive when this
    machine is ahead; ``uncertainty`` half the round trip): ``ok`` within :data:`SKEW_WARN`,
    ``warn`` up to :data:`SKEW_FAIL`, ``fail`` beyond."""
    side = "ahead of" if skew > 0 else "behind"
    detail = f"this machine is {abs(skew):.3f} s {side} Redis (± {uncertainty:.3f} s)"
    size = abs(skew)
    if size > SKEW_FAIL:
        return Finding(
            "clock",
            Verdict.FAIL,
            f"{detail}: over {SKEW_FAIL:g} s, token expiry is judged wrongly; run NTP "
            "(chrony, systemd-timesyncd) on every node",
        )
    if size > SKEW_WARN:
        return Finding(
            "clock", Verdict.WARN, f"{detail}: over {SKEW_WARN:g} s; keep clocks in step (NTP)"
        )
    return Finding("clock", Verdict.OK, detail)


# --- Redis ---------------------------------------------------------------------------------------

#: The oldest Redis the hub runs on: the store's ``SET ... NX GET`` came with 7.0.
MIN_REDIS: Final = (7, 0)


def version_tuple(version: str) -> tuple[int, ...]:
    """``"7.2.4"`` as ``(7, 2, 4)``; the leading numbers only (``"7.4.0-rc1"``: ``(7, 4, 0)``)."""
    numbers = []
    for part in version.split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        numbers.append(int(digits.group()))
    return tuple(numbers)


def redis_server(info: Mapping[str, object]) -> Finding:
    """Redis answered PING; its ``INFO server`` says which server it is: ``fail`` under
    :data:`MIN_REDIS`, ``warn`` when it does not say, ``ok`` otherwise."""
    version = str(info.get("redis_version", ""))
    valkey = info.get("valkey_version")
    name = f"Valkey {valkey} (redis_version {version})" if valkey else f"Redis {version}"
    found = version_tuple(version)
    needed = ".".join(map(str, MIN_REDIS))
    if not found:
        return Finding("redis", Verdict.WARN, "answers PING, but INFO says no redis_version")
    if found < MIN_REDIS:
        return Finding(
            "redis",
            Verdict.FAIL,
            f"{name} answers PING, but the hub needs {needed} or newer (SET NX GET)",
        )
    return Finding("redis", Verdict.OK, f"{name} answers PING")


def redis_persistence(appendonly: str, appendfsync: str, save: str) -> Finding:
    """What Redis keeps on disk, from ``CONFIG GET appendonly``, ``appendfsync`` and ``save``:
    ``fail`` for nothing (a restart loses the event's polls, ballots, roles and bans),
    ``warn`` for snapshots alone (a crash loses what came after the last one) or an
    append-only file the kernel flushes when it likes (``appendfsync no``), ``ok`` for the
    append-only file with ``always`` or ``everysec`` (docs/operators.md)."""
    aof = appendonly.strip().lower() == "yes"
    fsync = appendfsync.strip().lower()
    snapshots = save.strip()
    if aof and fsync in ("always", "everysec"):
        also = f"; snapshots too ({snapshots})" if snapshots else ""
        return Finding("persistence", Verdict.OK, f"append-only file, appendfsync {fsync}{also}")
    if aof:
        return Finding(
            "persistence",
            Verdict.WARN,
            f"append-only file with appendfsync {fsync or '?'}: a machine crash loses what the "
            "kernel had not written (up to about 30 s); use always or everysec",
        )
    if snapshots:
        return Finding(
            "persistence",
            Verdict.WARN,
            f"snapshots only (save {snapshots}): a crash loses everything after the last one; "
            "run with appendonly yes (docs/operators.md)",
        )
    return Finding(
        "persistence",
        Verdict.FAIL,
        "nothing on disk (appendonly no, no save points): a restart loses polls, ballots, "
        "roles, bans, hands, Q&A and breakouts; run with appendonly yes (docs/operators.md)",
    )


def persistence_not_judged(why: str) -> Finding:
    """A Redis that refuses ``CONFIG`` (managed services): its persistence is not judged."""
    return Finding(
        "persistence",
        Verdict.WARN,
        f"not judged: Redis refuses CONFIG ({why}); check persistence in the provider's settings",
    )


# --- the hub's own answers -----------------------------------------------------------------------


def readiness(status: int, body: Mapping[str, object] | None) -> Finding:
    """``GET /readyz``: ``ok`` for 200 (``warn`` when its ``sfu`` is degraded), ``fail`` for 503
    (with what the body says) or anything else."""
    body = body or {}
    node = body.get("node")
    said = "; ".join(
        f"{key}: {value}" for key, value in body.items() if key not in ("ready", "node")
    )
    on = f" (node {node})" if node else ""
    if status == 200:
        sfu = str(body.get("sfu", "ok"))
        if sfu != "ok":
            return Finding("readyz", Verdict.WARN, f"ready{on}, but sfu: {sfu}")
        return Finding("readyz", Verdict.OK, f"200 ready{on}")
    if status == 503:
        why = f": {said}" if said else ": the broker is not connected or not listening"
        return Finding("readyz", Verdict.FAIL, f"503 not ready{on}{why}")
    return Finding(
        "readyz", Verdict.FAIL, f"HTTP {status}: not the hub's answer (does the proxy pass it?)"
    )


def origin_policy(
    foreign: str, status: int | None, origins: Sequence[str], has_secret: bool
) -> Finding:
    """An upgrade sent with the ``foreign`` Origin got HTTP ``status`` (101: accepted; None: no
    answer at all), and these settings allow ``origins``: ``ok`` when it was refused with 403
    and the event's site is configured; ``warn`` when it was accepted, refused otherwise than
    by the hub's 403, or when a hub with a secret has no origins (its site's pages are
    refused) or ``*``; ``skip`` when the upgrade got no answer."""
    if not origins:
        configured = "none configured here (HUB_ORIGINS, --origin)"
    else:
        configured = "allowed here: " + ", ".join(origins)
    if status is None:
        return Finding("origin", Verdict.SKIP, f"no answer to the upgrade; {configured}")
    problems = []
    if status == 101:
        problems.append(f"a page of {foreign} was accepted: any site's pages may connect")
    elif status != 403:
        problems.append(f"{foreign} refused with HTTP {status}, not the hub's 403")
    if "*" in origins:
        problems.append("HUB_ORIGINS holds *: any site's pages may connect")
    if not origins and has_secret:
        problems.append(
            "only pages on localhost may connect: give --origin https://your.site (HUB_ORIGINS)"
        )
    if problems:
        return Finding("origin", Verdict.WARN, f"{'; '.join(problems)}; {configured}")
    return Finding("origin", Verdict.OK, f"{foreign} refused (403); {configured}")
