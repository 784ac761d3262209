"""``hub doctor URL``: check a running deployment from the outside and from this node's
settings, and print a verdict per check."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from rich.console import Console

from hub.config import from_environment
from hub.doctor.diagnose import DEFAULT_TIMEOUT, Examination, diagnose
from hub.doctor.report import as_json, print_diagnosis
from hub.doctor.target import Target


def parser() -> argparse.ArgumentParser:
    """The arguments of ``hub doctor``: the URL, the overrides of ``hub serve``'s settings
    that the checks use, ``--expect``, ``--json`` and ``--timeout``."""
    doctor = argparse.ArgumentParser(
        prog="hub doctor",
        description="Check a running deployment: /readyz, the WebSocket upgrade through the "
        "proxy, the Origin policy, the secret, Redis (version, persistence, clock), TURN, the "
        "SFU and the open-file limit. Settings come from the environment, as for hub serve; "
        "exit status 1 when a check fails.",
    )
    doctor.add_argument(
        "url", metavar="URL", help="the deployment: https://event.example.org or wss://.../ws"
    )
    doctor.add_argument("--redis", help="Redis URL (REDIS_URL)")
    doctor.add_argument("--secret", help="token secret (HUB_SECRET)")
    doctor.add_argument("--origin", action="append", help="allowed Origin (HUB_ORIGINS)")
    doctor.add_argument("--stun-url", action="append", help="STUN url (HUB_STUN_URLS)")
    doctor.add_argument("--turn-url", action="append", help="TURN url (HUB_TURN_URLS)")
    doctor.add_argument(
        "--turn-secret", help="secret shared with the TURN server (HUB_TURN_SECRET)"
    )
    doctor.add_argument(
        "--sfu", action="append", metavar="URL", help="Janus, janus+ws://HOST:8188 (HUB_SFU)"
    )
    doctor.add_argument("--expect", type=int, metavar="N", help="the expected audience (people)")
    doctor.add_argument("--json", action="store_true", help="print the result as JSON")
    doctor.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long each check may take (default {DEFAULT_TIMEOUT:g})",
    )
    return doctor


def examination(args: argparse.Namespace) -> Examination | str:
    """What to examine, from the arguments and the environment; or what is wrong with them."""
    try:
        target = Target.parse(args.url)
    except ValueError as error:
        return f"URL takes https://HOST (or http://, ws(s)://HOST/ws), not {args.url!r}: {error}"
    if args.expect is not None and not 1 <= args.expect <= 10_000_000:
        return "--expect must be 1 to 10000000"
    if not 0 < args.timeout <= 120:
        return "--timeout must be more than 0 and at most 120 seconds"
    try:
        environment = from_environment()
    except ValueError as error:
        return f"a HUB_* setting is not valid: {error}"
    config = environment.with_overrides(
        redis_url=args.redis,
        secret=args.secret,
        origins=tuple(args.origin) if args.origin else None,
        stun_urls=tuple(args.stun_url) if args.stun_url else None,
        turn_urls=tuple(args.turn_url) if args.turn_url else None,
        turn_secret=args.turn_secret,
        sfu=tuple(args.sfu) if args.sfu else None,
    )
    return Examination(target, config, expect=args.expect, timeout=args.timeout)


def main(argv: Sequence[str]) -> int:
    """Run ``hub doctor`` with ``argv`` (the arguments after ``doctor``): 0 when no check
    failed, 1 when one did, 2 for arguments or settings that are not valid."""
    args = parser().parse_args(argv)
    planned = examination(args)
    if isinstance(planned, str):
        print(f"hub doctor: {planned}", file=sys.stderr)
        return 2
    diagnosis = asyncio.run(diagnose(planned))
    if args.json:
        print(as_json(diagnosis))
    else:
        print_diagnosis(Console(), diagnosis)
    return diagnosis.exit_status
