"""Guests' own tokens and ``token.renew`` (hub.core_ops), on in-process hubs."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from hub.auth import Role
from hub.config import HubConfig, from_environment
from hub.errors import CloseCode
from tests.unit.helpers import SECRET, Client, connect, drain, new_session, running, token

TURN = {
    "stun_urls": ("stun:stun.example.org",),
    "turn_urls": ("turn:turn.example.org",),
    "turn_secret": "shared-with-the-turn-server-0123456789",
}


def claims_of(value: str) -> dict[str, Any]:
    payload: dict[str, Any] = jwt.decode(value, SECRET, algorithms=["HS256"])
    return payload


# --- guests keep their identity ------------------------------------------------------------------


async def test_a_guest_hello_gets_a_token_for_the_same_guest() -> None:
    async with running(guests=True, **TURN) as [hub]:
        first = Client(hub, new_session(hub))
        before = int(time.time())
        ok = await first.ok("hello", name="  Grace ")
        user = ok["user"]
        claims = claims_of(ok["token"])
        assert claims["sub"] == user["id"]
        assert claims["name"] == "Grace"
        assert claims["role"] == "attendee"
        assert claims["guest"] is True
        assert before <= claims["iat"] <= time.time()
        assert claims["exp"] == claims["iat"] + 12 * 3600
        # The session holds that token: its identity is the token's.
        assert first.session.identity is not None
        assert first.session.identity.guest is True
        assert first.session.identity.expires_at == claims["exp"]

        # A reload: the same guest, still a guest (no TURN credentials), no new token.
        again = Client(hub, new_session(hub))
        reply = await again.ok("hello", token=ok["token"])
        assert reply["user"] == user
        assert "token" not in reply
        assert reply["ice_servers"] == [{"urls": ["stun:stun.example.org"]}]
        assert again.session.identity is not None
        assert again.session.identity.guest is True
        assert set(hub.node.users[user["id"]]) == {first.sid, again.sid}


async def test_a_token_hello_gets_no_token_in_its_reply() -> None:
    async with running(guests=True) as [hub]:
        client = Client(hub, new_session(hub))
        assert "token" not in await client.ok("hello", token=token(hub, "alice"))


async def test_the_guest_ttl_is_a_setting() -> None:
    async with running(guests=True, guest_ttl=600) as [hub]:
        ok = await Client(hub, new_session(hub)).ok("hello", name="G")
        claims = claims_of(ok["token"])
        assert claims["exp"] == claims["iat"] + 600


async def test_a_guest_token_is_refused_where_guests_are_not_admitted() -> None:
    async with running(guests=True) as [open_hub]:
        guest_token = (await Client(open_hub, new_session(open_hub)).ok("hello", name="G"))["token"]
    async with running() as [hub]:  # the same secret, no guests
        session = new_session(hub)
        await hub.dispatcher.dispatch(session, {"id": 1, "op": "hello", "token": guest_token})
        [reply] = drain(session)
        assert reply["err"]["code"] == "unauthorized"
        assert session.close_code is CloseCode.UNAUTHENTICATED


async def test_refresh_keeps_guests_and_members_apart() -> None:
    async with running(guests=True) as [hub]:
        guest = Client(hub, new_session(hub))
        ok = await guest.ok("hello", name="G")
        user = ok["user"]["id"]
        # A member token that happens to name the guest's id is not the guest's.
        member_token = hub.authority.mint(user=user, name="G", role="attendee", ttl=None)
        assert await guest.err("refresh", token=member_token) == "forbidden"
        assert await guest.ok("refresh", token=ok["token"]) == {}
        assert guest.session.identity is not None
        assert guest.session.identity.guest is True


# --- token.renew ---------------------------------------------------------------------------------


async def test_renew_gives_a_fresh_token_that_refresh_applies() -> None:
    async with running() as [hub]:
        issued = int(time.time()) - 100
        first = hub.authority.mint(
            user="ada", name="Ada", role="speaker", rooms={"p": "moderator"}, ttl=1800, now=issued
        )
        client = Client(hub, new_session(hub))
        signed_in = int(time.time())
        await client.ok("hello", token=first)
        ok = await client.ok("token.renew")
        assert set(ok) == {"token", "exp"}
        claims = claims_of(ok["token"])
        assert claims["sub"] == "ada"
        assert claims["name"] == "Ada"
        assert claims["role"] == "speaker"
        assert claims["rooms"] == {"p": "moderator"}
        # Signed in when it said hello with the token, not when the token was made.
        assert signed_in <= claims["auth_time"] <= time.time()
        assert claims["exp"] == ok["exp"] == claims["iat"] + 1800
        # Not applied until refresh.
        assert client.session.identity is not None
        assert client.session.identity.expires_at == issued + 1800
        assert await client.ok("refresh", token=ok["token"]) == {}
        assert client.session.identity.expires_at == ok["exp"]
        assert client.session.identity.role_in("p") is Role.MODERATOR
        # A renewal of the renewed token keeps the first sign-in.
        again = claims_of((await client.ok("token.renew"))["token"])
        assert again["auth_time"] == claims["auth_time"]


async def test_a_guest_renews_as_a_guest() -> None:
    async with running(guests=True) as [hub]:
        guest = Client(hub, new_session(hub))
        hello = await guest.ok("hello", name="G")
        renewed = claims_of((await guest.ok("token.renew", ignored="field"))["token"])
        assert renewed["guest"] is True
        assert renewed["sub"] == hello["user"]["id"]
        assert renewed["exp"] == renewed["iat"] + 12 * 3600
        assert renewed["auth_time"] == claims_of(hello["token"])["iat"]


async def test_renew_is_forbidden_once_the_sign_in_is_too_old() -> None:
    async with running(token_renew_max=600) as [hub]:
        long_ago = time.time() - 601
        old = hub.authority.mint(
            user="ada", name="Ada", role="attendee", ttl=3600, now=long_ago, auth_time=long_ago
        )
        client = Client(hub, new_session(hub))
        await client.ok("hello", token=old)
        assert await client.err("token.renew") == "forbidden"
        assert client.session.open  # an ordinary error
        # A sign-in link made as long ago but used only now counts from now.
        link = hub.authority.mint(user="bea", name="Bea", role="attendee", ttl=3600, now=long_ago)
        late = Client(hub, new_session(hub))
        await late.ok("hello", token=link)
        renewed = claims_of((await late.ok("token.renew"))["token"])
        assert renewed["auth_time"] >= long_ago + 600
        fresh = await connect(hub, "bob")  # a token without exp renews for an hour
        ok = await fresh.ok("token.renew")
        assert ok["exp"] == claims_of(ok["token"])["iat"] + 3600


async def test_renew_needs_a_hello() -> None:
    async with running() as [hub]:
        session = new_session(hub)
        await hub.dispatcher.dispatch(session, {"id": 1, "op": "token.renew"})
        [reply] = drain(session)
        assert reply["err"]["code"] == "unauthorized"


# --- settings ------------------------------------------------------------------------------------


def test_token_and_rooms_settings_come_from_the_environment() -> None:
    defaults = HubConfig()
    assert (defaults.guest_ttl, defaults.token_renew_max, defaults.rooms_interval) == (
        12 * 3600,
        7 * 24 * 3600,
        2.0,
    )
    config = from_environment(
        {"HUB_GUEST_TTL": "600", "HUB_TOKEN_RENEW_MAX": "86400", "HUB_ROOMS_INTERVAL": "0.5"}
    )
    assert (config.guest_ttl, config.token_renew_max, config.rooms_interval) == (600, 86400, 0.5)


@pytest.mark.parametrize(
    "env",
    [
        {"HUB_GUEST_TTL": "10"},
        {"HUB_GUEST_TTL": "soon"},
        {"HUB_TOKEN_RENEW_MAX": "0"},
        {"HUB_ROOMS_INTERVAL": "0"},
        {"HUB_ROOMS_INTERVAL": "nan"},
    ],
)
def test_invalid_token_and_rooms_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=next(iter(env))):
        from_environment(env)


# --- garbage in ---------------------------------------------------------------------------------

GARBAGE: list[object] = [None, True, 0, -1, 2**63, 1.5, "", "x" * 10_000, [], [1], {}, {"a": 1}]


@pytest.mark.parametrize("value", GARBAGE)
async def test_the_new_ops_answer_contract_codes_whatever_they_are_sent(value: object) -> None:
    async with running(guests=True) as [hub]:
        for fields in ({"name": value}, {"token": value}, {"token": value, "name": "G"}):
            session = new_session(hub)
            await hub.dispatcher.dispatch(session, {"id": 1, "op": "hello", **fields})
            [reply] = drain(session)
            assert reply.get("err", {}).get("code") in (None, "bad_request", "unauthorized")
        client = await connect(hub, "ada")
        for op in ("token.renew", "dm.conversations"):
            for field in ("token", "with", "limit", "room"):
                reply = await client.call(op, **{field: value})
                assert "ok" in reply, reply
