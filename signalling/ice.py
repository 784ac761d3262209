"""ICE servers for the ``hello`` reply: STUN urls as configured, and TURN urls with short-lived
credentials of the TURN REST scheme (the one coturn's ``use-auth-secret`` checks).

The username is ``<expiry unix time>:<user id>`` and the credential the base64 of the HMAC-SHA1
of that username keyed with the secret shared with the TURN server. The secret itself never
leaves the hub; a credential stops working at its expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from signalling.wire import IceServer


@dataclass(frozen=True, slots=True)
class IceSettings:
    """What ``hub serve`` was told about STUN and TURN (``ttl``: credential lifetime, seconds)."""

    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str | None = None
    ttl: int = 24 * 3600


def turn_credentials(secret: str, user: str, now: float, ttl: int) -> tuple[str, str]:
    """``(username, credential)`` for ``user``, valid until ``now + ttl``."""
    username = f"{int(now) + ttl}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers(settings: IceSettings, user: str, now: float) -> list[IceServer]:
    """The ``ice_servers`` of a hello reply, as ``RTCPeerConnection`` takes them: one entry for
    the STUN urls, one for the TURN urls with fresh credentials (only when a TURN secret is
    configured: without credentials a TURN server refuses allocations)."""
    servers: list[IceServer] = []
    if settings.stun_urls:
        servers.append({"urls": list(settings.stun_urls)})
    if settings.turn_urls and settings.turn_secret:
        username, credential = turn_credentials(settings.turn_secret, user, now, settings.ttl)
        servers.append(
            {"urls": list(settings.turn_urls), "username": username, "credential": credential}
        )
    return servers
