"""The envelopes of the Redis broker's channels.

An envelope is a kind byte, then length-prefixed fields ``<len>:<bytes>``, then the body, built
with string concatenation (by the publish script for stored events, so the script can PUBLISH
them itself). Every envelope names its origin node:

* ``S`` epoch, seq, origin, ts, body: a stored event of a room;
* ``E`` origin, payload: an ephemeral message;
* ``P`` origin, token: a listener's probe of its own subscription.
"""

from __future__ import annotations

from typing import Final

from hub.broker import StoredEvent

STORED: Final = b"S"
EPHEMERAL: Final = b"E"
PROBE: Final = b"P"


def field(value: bytes) -> bytes:
    """One length-prefixed field."""
    return str(len(value)).encode() + b":" + value


def split_fields(data: bytes, count: int, pos: int = 1) -> tuple[list[bytes], bytes]:
    """Read ``count`` length-prefixed fields after the kind byte; returns them and the rest.
    Raises ValueError for a malformed envelope."""
    out: list[bytes] = []
    for _ in range(count):
        colon = data.index(b":", pos)
        size = data[pos:colon]
        if not size.isdigit():
            raise ValueError("bad field length")
        end = colon + 1 + int(size)
        if end > len(data):
            raise ValueError("truncated envelope")
        out.append(data[colon + 1 : end])
        pos = end
    return out, data[pos:]


def ephemeral(origin: str, payload: bytes) -> bytes:
    """The envelope of an ephemeral message."""
    return EPHEMERAL + field(origin.encode()) + payload


def probe(origin: str, token: bytes) -> bytes:
    """The envelope of a probe."""
    return PROBE + field(origin.encode()) + token


def decode(topic: str, data: bytes) -> StoredEvent | bytes | None:
    """What an envelope heard on ``topic`` carries: a stored event, an ephemeral message's
    payload (bytes), or None for a probe. Raises ValueError for a malformed envelope."""
    kind = data[:1]
    if kind == STORED:
        (epoch, seq, origin, ts), body = split_fields(data, 4)
        return StoredEvent(topic, int(seq), epoch.decode(), body, origin.decode(), float(ts))
    if kind == EPHEMERAL:
        return split_fields(data, 1)[1]
    if kind == PROBE:
        return None
    raise ValueError(f"unknown envelope kind {kind!r}")
