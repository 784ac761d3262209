"""When a token that ``hub token`` mints expires: ``--ttl SECONDS`` or ``--until TIME``.

Pure: the time comes in as ``now`` (unix seconds).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime


def parse_until(text: str) -> float:
    """The unix time an ISO 8601 date and time with its zone names (``2026-12-10T18:00Z``,
    ``2026-12-10T19:00+01:00``, seconds optional). Raises ValueError, saying what to write, for
    anything else, a time without a zone included: a link mailed abroad must not depend on the
    zone of the machine that made it."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date and time such as 2026-12-10T18:00Z") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{text!r} has no time zone: write 2026-12-10T18:00Z (UTC) or 2026-12-10T19:00+01:00"
        )
    return moment.timestamp()


def token_ttl(
    *, ttl: float | None, until: str | None, now: float, default: float | None
) -> float | None:
    """The lifetime, in seconds from ``now``, of a token minted with ``--ttl ttl`` (0: no expiry,
    None) or ``--until until`` (at most one of them given), else ``default``. Raises ValueError
    naming the option for a ttl that is negative or not finite, or a time that is not valid or
    not after ``now``."""
    if ttl is not None:
        if not math.isfinite(ttl) or ttl < 0:
            raise ValueError(f"--ttl takes seconds (0: no expiry), not {ttl!r}")
        return ttl or None
    if until is not None:
        try:
            expires = parse_until(until)
        except ValueError as error:
            raise ValueError(f"--until: {error}") from None
        if expires <= now:
            raise ValueError(f"--until: {until!r} is past")
        return expires - now
    return default


def expiry_text(*, ttl: float | None, now: float) -> str:
    """When a token issued at ``now`` with lifetime ``ttl`` expires, for people: ``"at
    2026-12-10T18:00:00Z"`` (UTC, whole seconds, as the token's ``exp``), or ``"never"``."""
    if ttl is None:
        return "never"
    moment = datetime.fromtimestamp(math.floor(now + ttl), UTC)
    return f"at {moment:%Y-%m-%dT%H:%M:%SZ}"
