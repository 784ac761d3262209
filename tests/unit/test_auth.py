"""Tokens, identities and roles (hub.auth); display names are tests/unit/test_fields.py's."""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import jwt
import pytest

from hub.auth import (
    Identity,
    Role,
    TokenAuthority,
    generate_secret,
    guest_identity,
    language_tag,
)
from hub.errors import HubError

# 64 bytes, so the same secret can also sign the HS512 token of the algorithm test without
# PyJWT's short-key warning (an error under this project's pytest settings)
SECRET = "0123456789abcdef" * 4
NOW = 1_750_000_000.0


@pytest.fixture
def authority() -> TokenAuthority:
    return TokenAuthority(SECRET)


def sign(claims: dict[str, Any], *, secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


_DROP = object()  # a claim override that leaves the claim out


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sub": "u1", "name": "Ada", "role": "speaker", "exp": NOW + 60}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not _DROP}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rejected(authority: TokenAuthority, token: object, now: float = NOW) -> str:
    with pytest.raises(HubError) as info:
        authority.verify(token, now=now)
    assert info.value.code == "unauthorized"
    assert info.value.msg
    return info.value.msg


# -- Role ---------------------------------------------------------------------------------------


def test_roles_are_ordered() -> None:
    assert Role.ATTENDEE < Role.SPEAKER < Role.MODERATOR < Role.ORGANIZER
    assert max(Role.SPEAKER, Role.MODERATOR) is Role.MODERATOR


@pytest.mark.parametrize("role", list(Role))
def test_role_label_round_trips(role: Role) -> None:
    assert role.label == role.name.lower()
    assert Role.parse(role.label) is role
    assert Role.parse(role) is role


def test_role_labels() -> None:
    assert [r.label for r in Role] == ["attendee", "speaker", "moderator", "organizer"]


@pytest.mark.parametrize("value", ["admin", "Speaker", " speaker", "", None, 1, True, 2.0, ["x"]])
def test_role_parse_rejects_anything_else(value: object) -> None:
    with pytest.raises(ValueError):
        Role.parse(value)


# -- Identity -----------------------------------------------------------------------------------


def identity(role: Role, rooms: dict[str, Role]) -> Identity:
    return Identity(user_id="u", name="U", role=role, rooms=rooms, expires_at=None)


def test_role_in_room_claim_raises_the_event_role() -> None:
    who = identity(Role.ATTENDEE, {"panel-1": Role.SPEAKER})
    assert who.role_in("panel-1") is Role.SPEAKER
    assert who.role_in("elsewhere") is Role.ATTENDEE


def test_role_in_room_claim_never_lowers_the_event_role() -> None:
    who = identity(Role.MODERATOR, {"panel-1": Role.ATTENDEE})
    assert who.role_in("panel-1") is Role.MODERATOR


def test_identity_rooms_are_a_frozen_copy() -> None:
    source = {"a": Role.SPEAKER}
    who = identity(Role.ATTENDEE, source)
    source["a"] = Role.ORGANIZER
    source["b"] = Role.ORGANIZER
    assert dict(who.rooms) == {"a": Role.SPEAKER}
    with pytest.raises(TypeError):
        who.rooms["c"] = Role.SPEAKER  # type: ignore[index]


def test_identity_is_hashable_and_compares_by_value() -> None:
    one = identity(Role.SPEAKER, {"a": Role.MODERATOR})
    two = identity(Role.SPEAKER, {"a": Role.MODERATOR})
    assert one == two
    assert len({one, two}) == 1
    assert one != identity(Role.SPEAKER, {})


# -- mint / verify ------------------------------------------------------------------------------


def test_mint_verify_round_trip_with_rooms(authority: TokenAuthority) -> None:
    token = authority.mint(
        user="user-42",
        name="  Ada Lovelace ",
        role=Role.SPEAKER,
        rooms={"panel-1": "moderator", "ws": Role.ORGANIZER},
        ttl=3600,
        now=NOW,
    )
    who = authority.verify(token, now=NOW + 10)
    assert who == Identity(
        user_id="user-42",
        name="Ada Lovelace",
        role=Role.SPEAKER,
        rooms={"panel-1": Role.MODERATOR, "ws": Role.ORGANIZER},
        expires_at=NOW + 3600,
        guest=False,
    )
    assert who.role_in("panel-1") is Role.MODERATOR
    assert who.role_in("lobby") is Role.SPEAKER


def test_token_claims_follow_the_contract(authority: TokenAuthority) -> None:
    token = authority.mint(user="u1", name="Ada", role="organizer", rooms={"r": "speaker"}, now=NOW)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    payload = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert payload["sub"] == "u1"
    assert payload["name"] == "Ada"
    assert payload["role"] == "organizer"
    assert payload["rooms"] == {"r": "speaker"}
    assert payload["exp"] == NOW + 3600


def test_mint_without_rooms_or_ttl(authority: TokenAuthority) -> None:
    token = authority.mint(user="u1", name="Ada", role="attendee", ttl=None, now=NOW)
    who = authority.verify(token, now=NOW + 10**9)
    assert who.rooms == {}
    assert who.expires_at is None
    assert who.role is Role.ATTENDEE


def test_mint_rounds_exp_down(authority: TokenAuthority) -> None:
    token = authority.mint(user="u1", name="Ada", role="attendee", ttl=10, now=NOW + 0.75)
    assert authority.verify(token, now=NOW).expires_at == NOW + 10


def test_verify_defaults_to_the_wall_clock(authority: TokenAuthority) -> None:
    fresh = authority.mint(user="u1", name="Ada", role="attendee", ttl=60)
    assert authority.verify(fresh).user_id == "u1"
    stale = authority.mint(user="u1", name="Ada", role="attendee", ttl=60, now=time.time() - 120)
    with pytest.raises(HubError, match="expired"):
        authority.verify(stale)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"user": ""},
        {"user": "x" * 129},
        {"name": " "},
        {"name": "a\nb"},
        {"name": "x" * 65},
        {"role": "admin"},
        {"rooms": {"r": "boss"}},
        {"ttl": 0},
        {"ttl": -5},
        {"ttl": float("nan")},
        {"ttl": float("inf")},
    ],
)
def test_mint_refuses_what_verify_would_reject(
    authority: TokenAuthority, kwargs: dict[str, Any]
) -> None:
    args: dict[str, Any] = {"user": "u1", "name": "Ada", "role": "attendee", "now": NOW}
    args.update(kwargs)
    with pytest.raises(ValueError):
        authority.mint(**args)


@pytest.mark.parametrize("secret", ["", "short", "x" * 31, 12345])
def test_authority_refuses_weak_secrets(secret: Any) -> None:
    with pytest.raises(ValueError):
        TokenAuthority(secret)


def test_generate_secret() -> None:
    one, two = generate_secret(), generate_secret()
    assert one != two
    assert len(one) == 43
    assert re.fullmatch(r"[A-Za-z0-9_-]+", one)
    authority = TokenAuthority(one)
    token = authority.mint(user="u", name="U", role="attendee", now=NOW)
    assert authority.verify(token, now=NOW).user_id == "u"


# -- verify: every rejection --------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, 42, b"a.b.c", ["x"], {"token": "x"}])
def test_verify_rejects_non_strings(authority: TokenAuthority, token: object) -> None:
    assert "string" in rejected(authority, token)


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c", "!!.??.**", "x" * 9000])
def test_verify_rejects_malformed(authority: TokenAuthority, token: str) -> None:
    rejected(authority, token)


def test_verify_rejects_a_payload_that_is_not_a_map(authority: TokenAuthority) -> None:
    rejected(authority, jwt.PyJWS().encode(b"[1, 2]", SECRET, algorithm="HS256"))


def test_verify_rejects_wrong_secret(authority: TokenAuthority) -> None:
    other = TokenAuthority("another secret, also long enough!!")
    token = other.mint(user="u1", name="Ada", role="organizer", now=NOW)
    assert "signature" in rejected(authority, token)


def test_verify_rejects_tampered_payload(authority: TokenAuthority) -> None:
    header, _, signature = authority.mint(user="u1", name="Ada", role="attendee", now=NOW).split(
        "."
    )
    forged = b64(json.dumps(claims(role="organizer")).encode())
    assert "signature" in rejected(authority, f"{header}.{forged}.{signature}")


@pytest.mark.parametrize("signature", ["", "c2ln"])
def test_verify_rejects_alg_none(authority: TokenAuthority, signature: str) -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims(role="organizer")).encode())
    assert "HS256" in rejected(authority, f"{header}.{payload}.{signature}")


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_verify_rejects_other_hmac_algorithms(authority: TokenAuthority, alg: str) -> None:
    assert "HS256" in rejected(authority, sign(claims(), algorithm=alg))


def test_verify_rejects_expired_by_injected_now(authority: TokenAuthority) -> None:
    token = authority.mint(user="u1", name="Ada", role="attendee", ttl=60, now=NOW)
    assert authority.verify(token, now=NOW + 59.999).expires_at == NOW + 60
    assert "expired" in rejected(authority, token, now=NOW + 61)


def test_verify_rejects_exp_exactly_now(authority: TokenAuthority) -> None:
    token = authority.mint(user="u1", name="Ada", role="attendee", ttl=60, now=NOW)
    assert "expired" in rejected(authority, token, now=NOW + 60)


def test_verify_accepts_fractional_exp(authority: TokenAuthority) -> None:
    token = sign(claims(exp=NOW + 0.5))
    assert authority.verify(token, now=NOW).expires_at == NOW + 0.5
    assert "expired" in rejected(authority, token, now=NOW + 0.5)


@pytest.mark.parametrize("exp", ["soon", True, None, [1], float("nan"), float("inf")])
def test_verify_rejects_invalid_exp(authority: TokenAuthority, exp: object) -> None:
    assert "exp" in rejected(authority, sign(claims(exp=exp)))


def test_verify_honours_nbf(authority: TokenAuthority) -> None:
    token = sign(claims(nbf=NOW + 5))
    assert "not valid yet" in rejected(authority, token, now=NOW)
    assert authority.verify(token, now=NOW + 5).user_id == "u1"
    assert "nbf" in rejected(authority, sign(claims(nbf="later")))


def test_verify_rejects_a_foreign_audience(authority: TokenAuthority) -> None:
    assert "audience" in rejected(authority, sign(claims(aud="another-service")))


@pytest.mark.parametrize("sub", [_DROP, "", None, 42, ["u1"], "x" * 129])
def test_verify_rejects_invalid_sub(authority: TokenAuthority, sub: object) -> None:
    assert "'sub'" in rejected(authority, sign(claims(sub=sub)))


def test_verify_accepts_a_128_char_sub(authority: TokenAuthority) -> None:
    assert authority.verify(sign(claims(sub="x" * 128)), now=NOW).user_id == "x" * 128


@pytest.mark.parametrize(
    "name", [_DROP, "", "   ", None, 42, "x" * 65, "a\nb", "a\x00b", "\x1b[31mred", "\u202eevil"]
)
def test_verify_rejects_invalid_name(authority: TokenAuthority, name: object) -> None:
    assert "'name'" in rejected(authority, sign(claims(name=name)))


def test_verify_strips_the_name(authority: TokenAuthority) -> None:
    assert authority.verify(sign(claims(name="  Ada  ")), now=NOW).name == "Ada"


@pytest.mark.parametrize("role", [_DROP, "", "admin", "Organizer", 3, None, ["speaker"]])
def test_verify_rejects_invalid_role(authority: TokenAuthority, role: object) -> None:
    assert "'role'" in rejected(authority, sign(claims(role=role)))


@pytest.mark.parametrize(
    "rooms",
    [None, "panel-1", ["panel-1"], 3, {"panel-1": "boss"}, {"panel-1": 2}, {"a": None}],
)
def test_verify_rejects_invalid_rooms(authority: TokenAuthority, rooms: object) -> None:
    assert "'rooms'" in rejected(authority, sign(claims(rooms=rooms)))


def test_verify_accepts_empty_rooms_and_no_exp(authority: TokenAuthority) -> None:
    who = authority.verify(sign(claims(rooms={}, exp=_DROP)), now=NOW + 10**9)
    assert who.rooms == {}
    assert who.expires_at is None


# -- guests -------------------------------------------------------------------------------------


def test_guest_identity() -> None:
    one = guest_identity("  Visitor ")
    two = guest_identity("Visitor")
    assert re.fullmatch(r"guest-[0-9a-f]+", one.user_id)
    assert one.user_id != two.user_id
    assert one.name == "Visitor"
    assert one.role is Role.ATTENDEE
    assert one.rooms == {}
    assert one.expires_at is None
    assert one.guest is True
    assert one.role_in("any") is Role.ATTENDEE


@pytest.mark.parametrize("name", ["", "  ", None, "x" * 65, "a\tb"])
def test_guest_identity_checks_the_name(name: object) -> None:
    with pytest.raises(HubError) as info:
        guest_identity(name)
    assert info.value.code == "bad_request"


# -- guest tokens -------------------------------------------------------------------------------


def test_a_guest_token_carries_the_guest_identity(authority: TokenAuthority) -> None:
    guest = guest_identity("Visitor")
    token = authority.mint_identity(guest, ttl=12 * 3600, now=NOW)
    payload = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert payload["guest"] is True
    assert payload["role"] == "attendee"
    assert "rooms" not in payload
    assert payload["exp"] - payload["iat"] == 12 * 3600
    who = authority.verify(token, now=NOW + 1)
    assert who == Identity(
        user_id=guest.user_id,
        name="Visitor",
        role=Role.ATTENDEE,
        rooms={},
        expires_at=NOW + 12 * 3600,
        guest=True,
    )
    assert who.issued_at == NOW
    assert who.auth_time is None


def test_tokens_are_not_guests_unless_marked(authority: TokenAuthority) -> None:
    assert authority.verify(sign(claims()), now=NOW).guest is False
    assert authority.verify(sign(claims(guest=False)), now=NOW).guest is False


@pytest.mark.parametrize(
    "overrides",
    [
        {"guest": "yes"},
        {"guest": 1},
        {"guest": True},  # the base claims are a speaker's
        {"guest": True, "role": "attendee", "rooms": {"r": "speaker"}},
        {"auth_time": "yesterday"},
        {"auth_time": True},
    ],
)
def test_verify_rejects_invalid_guest_and_auth_time_claims(
    authority: TokenAuthority, overrides: dict[str, Any]
) -> None:
    rejected(authority, sign(claims(**overrides)))


def test_mint_refuses_a_guest_of_another_role(authority: TokenAuthority) -> None:
    with pytest.raises(ValueError, match="guest"):
        authority.mint(user="g", name="G", role="speaker", guest=True, now=NOW)
    with pytest.raises(ValueError, match="guest"):
        authority.mint(user="g", name="G", role="attendee", rooms={"r": "speaker"}, guest=True)


def test_an_unusable_iat_counts_as_none(authority: TokenAuthority) -> None:
    assert authority.verify(sign(claims(iat="now")), now=NOW).issued_at is None
    assert authority.verify(sign(claims(iat=NOW - 5)), now=NOW).issued_at == NOW - 5


# -- renewal ------------------------------------------------------------------------------------

WEEK = 7 * 24 * 3600


def renew_claims(token: str) -> dict[str, Any]:
    payload: dict[str, Any] = jwt.decode(
        token, SECRET, algorithms=["HS256"], options={"verify_exp": False}
    )
    return payload


def test_renew_keeps_the_identity_with_the_same_lifetime(authority: TokenAuthority) -> None:
    first = authority.mint(
        user="u1", name="Ada", role="speaker", rooms={"p": "moderator"}, ttl=7200, now=NOW
    )
    who = authority.verify(first, now=NOW + 100)
    token, exp = authority.renew(who, now=NOW + 5760.5, max_age=WEEK)
    payload = renew_claims(token)
    assert payload == {
        "sub": "u1",
        "name": "Ada",
        "role": "speaker",
        "rooms": {"p": "moderator"},
        "iat": NOW + 5760,
        "exp": NOW + 5760 + 7200,
        "auth_time": NOW,
    }
    assert exp == payload["exp"]
    renewed = authority.verify(token, now=NOW + 5761)
    assert renewed == Identity(
        user_id="u1",
        name="Ada",
        role=Role.SPEAKER,
        rooms={"p": Role.MODERATOR},
        expires_at=NOW + 5760 + 7200,
    )
    assert renewed.auth_time == NOW


def test_renew_keeps_the_guest_flag_and_the_first_sign_in(authority: TokenAuthority) -> None:
    guest = authority.verify(
        authority.mint_identity(guest_identity("G"), ttl=3600, now=NOW), now=NOW
    )
    token, _ = authority.renew(guest, now=NOW + 3000, max_age=WEEK)
    again = authority.verify(token, now=NOW + 3001)
    assert again.guest is True
    assert again.user_id == guest.user_id
    assert again.auth_time == NOW
    # A renewal of a renewal keeps the original sign-in, not the previous iat.
    token, _ = authority.renew(again, now=NOW + 6000, max_age=WEEK)
    assert renew_claims(token)["auth_time"] == NOW


@pytest.mark.parametrize(
    ("ttl", "lifetime"),
    [(3600, 3600), (10, 60), (59, 60), (60, 60), (86_400, 86_400), (10 * 86_400, 86_400)],
)
def test_renewed_lifetime_is_clamped(authority: TokenAuthority, ttl: int, lifetime: int) -> None:
    token = authority.mint(user="u", name="U", role="attendee", ttl=ttl, now=NOW)
    who = authority.verify(token, now=NOW)
    token, exp = authority.renew(who, now=NOW + 1, max_age=WEEK)
    assert exp == NOW + 1 + lifetime
    assert renew_claims(token)["exp"] == exp


def test_renew_without_exp_or_iat_lasts_an_hour(authority: TokenAuthority) -> None:
    no_exp = authority.verify(
        authority.mint(user="u", name="U", role="attendee", ttl=None), now=NOW
    )
    _, exp = authority.renew(no_exp, now=NOW, max_age=WEEK)
    assert exp == NOW + 3600
    no_iat = authority.verify(sign(claims(exp=NOW + 7200)), now=NOW)
    token, exp = authority.renew(no_iat, now=NOW, max_age=WEEK)
    assert exp == NOW + 3600
    # Without iat, the first renewal is the sign-in.
    assert renew_claims(token)["auth_time"] == NOW


def test_renew_is_refused_once_the_sign_in_is_too_old(authority: TokenAuthority) -> None:
    token = authority.mint(user="u", name="U", role="attendee", ttl=3600, now=NOW)
    first = authority.verify(token, now=NOW)
    authority.renew(first, now=NOW + WEEK, max_age=WEEK)  # exactly the limit: still fine
    with pytest.raises(HubError) as info:
        authority.renew(first, now=NOW + WEEK + 1, max_age=WEEK)
    assert info.value.code == "forbidden"
    # The limit follows auth_time through renewals.
    token, _ = authority.renew(first, now=NOW + WEEK - 10, max_age=WEEK)
    renewed = authority.verify(token, now=NOW + WEEK - 5)
    with pytest.raises(HubError) as info:
        authority.renew(renewed, now=NOW + WEEK + 1, max_age=WEEK)
    assert info.value.code == "forbidden"


# -- the language claim -------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["fr", "de-AT", "zh-Hant-TW", "sr-Latn", "gsw", "es-419", "EN-gb"])
def test_a_lang_claim_is_kept_as_written(authority: TokenAuthority, tag: str) -> None:
    token = authority.mint(user="u1", name="Ada", role="attendee", lang=tag, now=NOW)
    assert renew_claims(token)["lang"] == tag
    assert authority.verify(token, now=NOW).lang == tag


def test_a_token_without_lang_has_none(authority: TokenAuthority) -> None:
    token = authority.mint(user="u1", name="Ada", role="attendee", now=NOW)
    assert "lang" not in renew_claims(token)
    assert authority.verify(token, now=NOW).lang is None


BAD_TAGS = ["", "f", "fr_FR", "fr-", "-fr", "français", "fr-CA-", "123", "de-AT-" + "x" * 9]


@pytest.mark.parametrize("tag", [*BAD_TAGS, "a" * 2 + "-abcdefgh" * 4, 7, None, ["fr"]])
def test_a_token_with_an_unfit_lang_is_invalid(authority: TokenAuthority, tag: object) -> None:
    assert "lang" in rejected(authority, sign(claims(lang=tag)))


@pytest.mark.parametrize("tag", BAD_TAGS)
def test_mint_and_language_tag_refuse_an_unfit_lang(authority: TokenAuthority, tag: str) -> None:
    with pytest.raises(ValueError, match="language tag"):
        authority.mint(user="u1", name="Ada", role="attendee", lang=tag, now=NOW)
    with pytest.raises(ValueError, match="language tag"):
        language_tag(tag)


def test_lang_takes_no_part_in_comparisons(authority: TokenAuthority) -> None:
    french = authority.verify(sign(claims(lang="fr")), now=NOW)
    plain = authority.verify(sign(claims()), now=NOW)
    assert french == plain and hash(french) == hash(plain)


def test_renew_keeps_the_lang(authority: TokenAuthority) -> None:
    first = authority.mint(user="u1", name="Ada", role="attendee", lang="de-AT", ttl=3600, now=NOW)
    who = authority.verify(first, now=NOW)
    token, _ = authority.renew(who, now=NOW + 3000, max_age=WEEK)
    assert renew_claims(token)["lang"] == "de-AT"
    assert authority.verify(token, now=NOW + 3001).lang == "de-AT"
