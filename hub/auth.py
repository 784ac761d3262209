"""Who is on the other end of a session: roles, identities, and the tokens that carry them.

A token is a JWT signed with HS256 and the hub's secret (see the contract, "Session"), with
claims ``sub``, ``name``, ``role``, optional ``rooms``, optional ``lang`` (the holder's preferred
language, a BCP 47 tag) and optional ``exp``; the hub's own tokens also carry ``iat``, ``guest``
(a guest's token) and ``auth_time`` (a renewed token: when its holder first signed in).
Everything here is pure: time comes in as ``now`` (unix seconds), so callers and tests control
the clock.
"""

from __future__ import annotations

import enum
import math
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, TypeGuard

import jwt

from hub import fields
from hub.errors import HubError

ALGORITHM: Final = "HS256"
MIN_SECRET_BYTES: Final = 32  # RFC 7518 3.2: an HS256 key must be at least as long as the hash
MAX_TOKEN_CHARS: Final = 8192  # far above any real token; spares us decoding garbage
# token.renew: a token's lifetime when it has no exp or no iat to measure it by, and the bounds
# of a renewed token's lifetime.
DEFAULT_LIFETIME: Final = 3600
MIN_LIFETIME: Final = 60
MAX_LIFETIME: Final = 24 * 3600
# A language tag as BCP 47 writes it, simply: a primary language of letters, then subtags of
# letters and digits ("fr", "de-AT", "zh-Hant-TW", "sr-Latn"). 35 characters is the longest
# tag RFC 5646 asks implementations to handle.
MAXLANGUAGE_TAG: Final = 35
LANGUAGE_TAG: Final = re.compile(r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*")


class Role(enum.IntEnum):
    """A user's standing, ordered: ``ATTENDEE < SPEAKER < MODERATOR < ORGANIZER``."""

    ATTENDEE = 0
    SPEAKER = 1
    MODERATOR = 2
    ORGANIZER = 3

    @classmethod
    def parse(cls, value: object) -> Role:
        """Return the role named by a wire label (``"attendee"`` ... ``"organizer"``, exactly).

        A :class:`Role` is returned as is. Anything else, including integers and other
        spellings, raises :class:`ValueError`.
        """
        if isinstance(value, Role):
            return value
        if isinstance(value, str):
            role = _ROLES_BY_LABEL.get(value)
            if role is not None:
                return role
        raise ValueError(f"not a role: {value!r} (expected one of {', '.join(_ROLES_BY_LABEL)})")

    @property
    def label(self) -> str:
        """The role's name on the wire: ``"attendee"``, ``"speaker"`` ..."""
        return _LABELS[self]


# By value, made once: an enum's ``name`` is a Python-level descriptor, read by the thousand in
# a storm of joins.
_LABELS: Final[tuple[str, ...]] = tuple(r.name.lower() for r in Role)
_ROLES_BY_LABEL: Final[Mapping[str, Role]] = MappingProxyType({r.label: r for r in Role})


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated user, as a verified token (or a guest hello) describes them.

    ``rooms`` is copied into a read-only mapping on construction, so an identity never changes.
    It takes no part in the hash, which keeps identities usable as set members and dict keys.
    ``issued_at`` and ``auth_time`` (the token's ``iat`` and ``auth_time`` claims, None when
    absent) say when the token was made and when its holder first signed in; they are facts
    about the token, not the person, so they take no part in comparisons. ``lang`` (the
    token's ``lang`` claim, None when absent) is a preference the web app reads, no part of
    who the user is: it takes no part in comparisons either.
    """

    user_id: str
    name: str
    role: Role
    rooms: Mapping[str, Role] = field(hash=False)
    expires_at: float | None
    guest: bool = False
    issued_at: float | None = field(default=None, compare=False)
    auth_time: float | None = field(default=None, compare=False)
    lang: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rooms", MappingProxyType(dict(self.rooms)))

    def role_in(self, room: str) -> Role:
        """The user's role in ``room``: the event role, raised (never lowered) by a room claim."""
        if not self.rooms:  # most tokens
            return self.role
        return max(self.role, self.rooms.get(room, self.role))


def generate_secret() -> str:
    """A fresh random secret for signing tokens: 32 bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def guest_identity(name: object) -> Identity:
    """A guest: an attendee under a fresh random id ``guest-<hex>``, without expiry (the hub
    signs it into a token with :meth:`TokenAuthority.mint_identity`).

    ``name`` is checked by :func:`hub.fields.display_name` (``bad_request`` if unfit).
    """
    return Identity(
        user_id=f"guest-{secrets.token_hex(8)}",
        name=fields.display_name(name),
        role=Role.ATTENDEE,
        rooms={},
        expires_at=None,
        guest=True,
    )


def language_tag(value: object) -> str:
    """``value`` if it is a language tag the ``lang`` claim accepts: a string of at most
    :data:`MAXLANGUAGE_TAG` characters, a primary language of 2 to 8 letters and subtags of 1
    to 8 letters or digits after hyphens (``fr``, ``de-AT``, ``zh-Hant-TW``); raises
    :class:`ValueError` saying why not. Whether the web app has that language is not checked:
    it takes the nearest one it has, or English."""
    if not isinstance(value, str):
        raise ValueError(f"a language tag is a string, not {value!r}")
    if len(value) > MAXLANGUAGE_TAG or LANGUAGE_TAG.fullmatch(value) is None:
        raise ValueError(f"{value[:40]!r} is not a language tag (such as fr or de-AT)")
    return value


def _is_number(value: object) -> TypeGuard[float]:
    # bool is an int subclass, but `"exp": true` is not a time
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _unauthorized(msg: str) -> HubError:
    return HubError("unauthorized", msg)


class TokenAuthority:
    """HS256 tokens signed with the hub's secret (PyJWT).

    :meth:`mint` makes tokens that :meth:`verify` accepts until they expire; :meth:`verify`
    accepts exactly the tokens the contract describes, signed with this secret, and nothing else.
    """

    __slots__ = ("_secret",)

    def __init__(self, secret: str) -> None:
        """Sign and verify with ``secret``; raises :class:`ValueError` if it is under 32 bytes.

        A short HMAC key is guessable offline from any one token, so it is refused outright
        rather than warned about on every verification; :func:`generate_secret` makes a good one.
        """
        if not isinstance(secret, str):
            raise ValueError("secret must be a string")
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"secret must be at least {MIN_SECRET_BYTES} bytes long "
                "(generate one with hub.auth.generate_secret())"
            )
        self._secret = secret

    def mint(
        self,
        *,
        user: str,
        name: str,
        role: Role | str,
        rooms: Mapping[str, Role | str] | None = None,
        ttl: float | None = 3600.0,
        now: float | None = None,
        guest: bool = False,
        auth_time: float | None = None,
        lang: str | None = None,
    ) -> str:
        """Return a signed token for this user, valid for ``ttl`` seconds from ``now``.

        ``now`` is unix time (default ``time.time()``); ``ttl=None`` makes a token that never
        expires. ``exp`` is written as whole seconds, rounded down, so the token never outlives
        ``ttl``. ``guest`` marks a guest's token (an attendee without rooms: claim ``guest:
        true``); ``auth_time`` (unix seconds, written whole) is when the holder first signed in;
        ``lang`` the holder's preferred language (see :func:`language_tag`). Raises
        :class:`ValueError` for arguments :meth:`verify` would reject.
        """
        try:
            fields.user_id(user)
            clean_name = fields.display_name(name)
        except HubError as e:
            raise ValueError(e.msg) from None
        claims: dict[str, Any] = {"sub": user, "name": clean_name, "role": Role.parse(role).label}
        if rooms:
            for room in rooms:
                if not isinstance(room, str):
                    raise ValueError(f"room ids must be strings, not {room!r}")
            claims["rooms"] = {room: Role.parse(r).label for room, r in rooms.items()}
        if guest:
            if claims["role"] != Role.ATTENDEE.label or "rooms" in claims:
                raise ValueError("a guest is an attendee without rooms")
            claims["guest"] = True
        if auth_time is not None:
            if not _is_number(auth_time):
                raise ValueError(f"auth_time must be a number, not {auth_time!r}")
            claims["auth_time"] = math.floor(auth_time)
        if lang is not None:
            claims["lang"] = language_tag(lang)
        issued = time.time() if now is None else now
        claims["iat"] = math.floor(issued)
        if ttl is not None:
            if not (_is_number(ttl) and ttl > 0):
                raise ValueError(f"ttl must be a positive number of seconds or None, not {ttl!r}")
            claims["exp"] = math.floor(issued + ttl)
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def mint_identity(
        self,
        identity: Identity,
        *,
        ttl: float | None,
        now: float,
        auth_time: float | None = None,
    ) -> str:
        """A token for ``identity`` (same user, name, role, rooms, guest flag and language),
        issued at ``now`` and valid for ``ttl`` seconds (see :meth:`mint`)."""
        return self.mint(
            user=identity.user_id,
            name=identity.name,
            role=identity.role,
            rooms=identity.rooms,
            ttl=ttl,
            now=now,
            guest=identity.guest,
            auth_time=auth_time,
            lang=identity.lang,
        )

    def renew(self, identity: Identity, *, now: float, max_age: float) -> tuple[str, int]:
        """A fresh token for the holder of ``identity``'s token: ``(token, exp)``.

        The same ``sub``, ``name``, ``role``, ``rooms``, guest flag and ``lang``; ``iat``
        ``now``; the lifetime of the current token (``exp - iat``; :data:`DEFAULT_LIFETIME` when
        it lacks either), clamped to :data:`MIN_LIFETIME` .. :data:`MAX_LIFETIME`; ``auth_time``
        the original sign-in (the current token's ``auth_time``, else its ``iat``, else ``now``:
        a token without either counts from its first renewal). Raises ``HubError("forbidden")``
        once that sign-in is more than ``max_age`` seconds before ``now``.
        """
        signed_in = identity.auth_time
        if signed_in is None:
            signed_in = identity.issued_at if identity.issued_at is not None else now
        if now - signed_in > max_age:
            raise HubError("forbidden", "signed in too long ago to renew: sign in again")
        lifetime = renewal_lifetime(identity)
        token = self.mint_identity(identity, ttl=lifetime, now=now, auth_time=signed_in)
        return token, math.floor(now + lifetime)

    def verify(self, token: object, *, now: float | None = None) -> Identity:
        """Return the identity a valid token carries, or raise ``HubError("unauthorized", ...)``.

        Valid means: a string, a well-formed JWT signed with HS256 and this secret, not expired
        (``exp`` absent or later than ``now``, unix time, default ``time.time()``), not before its
        ``nbf`` if it has one, and claims as the contract describes them.
        """
        if not isinstance(token, str):
            raise _unauthorized("token must be a string")
        if len(token) > MAX_TOKEN_CHARS:
            raise _unauthorized("token is too long")
        if now is None:
            now = time.time()
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                # time claims are checked below against the caller's `now`, not PyJWT's clock
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_sub": False,
                },
            )
        except jwt.InvalidAlgorithmError:
            raise _unauthorized(f"token must be signed with {ALGORITHM}") from None
        except jwt.InvalidSignatureError:
            raise _unauthorized("token signature is invalid") from None
        except jwt.InvalidAudienceError:
            raise _unauthorized("token is meant for another audience") from None
        except jwt.PyJWTError as e:
            raise _unauthorized(f"token is malformed ({e})") from None
        return self._identity(claims, now)

    @staticmethod
    def _identity(claims: Mapping[str, Any], now: float) -> Identity:
        expires_at: float | None = None
        if "exp" in claims:
            exp = claims["exp"]
            if not _is_number(exp):
                raise _unauthorized("token claim 'exp' must be a number")
            if exp <= now:
                raise _unauthorized("token has expired")
            expires_at = float(exp)
        if "nbf" in claims:
            nbf = claims["nbf"]
            if not _is_number(nbf):
                raise _unauthorized("token claim 'nbf' must be a number")
            if nbf > now:
                raise _unauthorized("token is not valid yet")

        try:
            user_id = fields.user_id(claims.get("sub"), "sub")
        except HubError as e:
            raise _unauthorized(f"token claim 'sub' is invalid: {e.msg}") from None
        try:
            name = fields.display_name(claims.get("name"))
        except HubError as e:
            raise _unauthorized(f"token claim 'name' is invalid: {e.msg}") from None
        try:
            role = Role.parse(claims.get("role"))
        except ValueError as e:
            raise _unauthorized(f"token claim 'role' is invalid: {e}") from None

        rooms: dict[str, Role] = {}
        if "rooms" in claims:
            raw = claims["rooms"]
            if not isinstance(raw, dict):
                raise _unauthorized("token claim 'rooms' must be a map of room id to role")
            for room, room_role in raw.items():
                try:
                    if not isinstance(room, str):
                        raise ValueError(f"room id {room!r} is not a string")
                    rooms[room] = Role.parse(room_role)
                except ValueError as e:
                    raise _unauthorized(f"token claim 'rooms' is invalid: {e}") from None

        guest = claims.get("guest", False)
        if not isinstance(guest, bool):
            raise _unauthorized("token claim 'guest' must be a boolean")
        if guest and (role is not Role.ATTENDEE or rooms):
            raise _unauthorized("token claim 'guest' is for attendees without rooms")
        return Identity(
            user_id=user_id,
            name=name,
            role=role,
            rooms=rooms,
            expires_at=expires_at,
            guest=guest,
            # An unusable iat was always accepted (it is only informative): it counts as none.
            issued_at=float(iat) if _is_number(iat := claims.get("iat")) else None,
            auth_time=_auth_time(claims),
            lang=_lang(claims),
        )


def _auth_time(claims: Mapping[str, Any]) -> float | None:
    if "auth_time" not in claims:
        return None
    value = claims["auth_time"]
    if not _is_number(value):
        raise _unauthorized("token claim 'auth_time' must be a number")
    return float(value)


def _lang(claims: Mapping[str, Any]) -> str | None:
    if "lang" not in claims:
        return None
    try:
        return language_tag(claims["lang"])
    except ValueError as e:
        raise _unauthorized(f"token claim 'lang' is invalid: {e}") from None


def renewal_lifetime(identity: Identity) -> int:
    """The lifetime of a token renewed from ``identity``'s, in whole seconds: its ``exp - iat``
    (:data:`DEFAULT_LIFETIME` without either), clamped to :data:`MIN_LIFETIME` ..
    :data:`MAX_LIFETIME`."""
    if identity.expires_at is None or identity.issued_at is None:
        lifetime = float(DEFAULT_LIFETIME)
    else:
        lifetime = identity.expires_at - identity.issued_at
    return int(min(MAX_LIFETIME, max(MIN_LIFETIME, lifetime)))
