"""Profiles and the people directory (networking.profile_feature), in process, on two nodes of
one memory backend: publishing, privacy (unlisted, hidden, guests), moderation, paging, the
directory cache, the event's close."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Client, connect, new_session, next_event, running

from hub.app import Hub
from hub.auth import Role
from networking.profile_feature import (
    MAX_PROFILES,
    OWNERS_KEY,
    ProfileFeature,
    event_interests,
)

ROOMS = """
interests = ["AI", "Energy", "Climate"]

[[rooms]]
id = "panel-1"
kind = "panel"
title = "Opening panel"
"""


@pytest.fixture
def rooms_file(tmp_path: Path) -> str:
    path = tmp_path / "rooms.toml"
    path.write_text(ROOMS, encoding="utf-8")
    return str(path)


@contextlib.asynccontextmanager
async def two_nodes(rooms_file: str, **changes: Any) -> AsyncIterator[list[Hub]]:
    async with running("n1", "n2", rooms_file=rooms_file, **changes) as hubs:
        yield hubs


async def guest(hub: Hub, name: str = "Gus") -> Client:
    client = Client(hub, new_session(hub))
    await client.ok("hello", name=name)
    return client


def users(reply: dict[str, Any]) -> list[str]:
    return [profile["user"] for profile in reply["profiles"]]


def feature(hub: Hub) -> ProfileFeature:
    found = [f for f in hub.features if isinstance(f, ProfileFeature)]
    assert len(found) == 1
    return found[0]


async def test_a_profile_set_on_one_node_is_found_and_read_from_the_other(rooms_file: str) -> None:
    async with two_nodes(rooms_file) as [hub1, hub2]:
        ada = await connect(hub1, "ada")
        bob = await connect(hub2, "bob")
        ok = await ada.ok(
            "profile.set",
            name="Ada Lovelace",
            organisation="Engines Ltd",
            country="gb",
            bio="Numbers <script>x</script>",
            interests=["energy"],
            listed=True,
            contact=True,
        )
        expected = {
            "user": "ada",
            "name": "Ada Lovelace",
            "organisation": "Engines Ltd",
            "country": "GB",
            "bio": "Numbers <script>x</script>",
            "interests": ["Energy"],
            "listed": True,
            "contact": True,
            "hidden": False,
        }
        assert ok == {"profile": expected}
        assert await bob.ok("directory.search", interest="Energy") == {"profiles": [expected]}
        assert await bob.ok("profile.get", user="ada") == {
            "profile": expected,
            "interests": ["AI", "Energy", "Climate"],
        }


async def test_own_profile_starts_blank_and_carries_the_event_interests(rooms_file: str) -> None:
    async with two_nodes(rooms_file) as [hub1, _]:
        ada = await connect(hub1, "ada")
        mine = await ada.ok("profile.get")
        assert mine["interests"] == ["AI", "Energy", "Climate"]
        assert mine["profile"]["name"] == "ada" and mine["profile"]["listed"] is False
        assert (await ada.ok("profile.get", user="ada"))["profile"] == mine["profile"]


async def test_a_profile_that_did_not_opt_in_is_never_shown_to_others(rooms_file: str) -> None:
    async with two_nodes(rooms_file) as [hub1, hub2]:
        ada = await connect(hub1, "ada")
        bob = await connect(hub2, "bob")
        mod = await connect(hub2, "mod", Role.MODERATOR)
        await ada.ok("profile.set", name="Ada", interests=["AI"], contact=True)
        for viewer in (bob, mod):
            assert await viewer.err("profile.get", user="ada") == "not_found"
            assert await viewer.ok("directory.search") == {"profiles": []}
            assert await viewer.ok("directory.search", q="ada", interest="AI") == {"profiles": []}
        # Listed, then unlisted again: gone at once from the node that changed it, and from
        # the other once its copy is renewed.
        await ada.ok("profile.set", listed=True)
        assert users(await ada.ok("directory.search")) == ["ada"]
        await ada.ok("profile.set", listed=False)
        assert await ada.ok("directory.search") == {"profiles": []}
        feature(hub2)._forget_directory()
        assert await bob.ok("directory.search") == {"profiles": []}
        assert await bob.err("profile.get", user="ada") == "not_found"
        assert await bob.err("profile.get", user="nobody") == "not_found"


async def test_guests_have_no_profile_and_see_none(rooms_file: str) -> None:
    async with two_nodes(rooms_file, guests=True) as [hub1, hub2]:
        ada = await connect(hub1, "ada")
        await ada.ok("profile.set", listed=True)
        gus = await guest(hub2)
        assert await gus.err("profile.set", name="Gus", listed=True) == "forbidden"
        assert await gus.err("profile.get") == "forbidden"
        assert await gus.err("profile.get", user="ada") == "forbidden"
        assert await gus.err("directory.search") == "forbidden"
        assert await gus.err("profile.hide", user="ada", hidden=True) == "forbidden"
        assert set(await hub1.node.store.hash_get_all("profiles")) == {"ada"}


async def test_a_moderator_hides_and_shows_a_profile_again(rooms_file: str) -> None:
    async with two_nodes(rooms_file) as [hub1, hub2]:
        ada = await connect(hub1, "ada")
        bob = await connect(hub2, "bob")
        mod = await connect(hub2, "mod", Role.MODERATOR)
        await ada.ok("profile.set", name="Ada", listed=True)
        await bob.ok("profile.set", name="Bob", listed=True)
        assert users(await bob.ok("directory.search")) == ["ada", "bob"]

        assert await bob.err("profile.hide", user="ada", hidden=True) == "forbidden"
        hidden = await mod.ok("profile.hide", user="ada", hidden=True)
        assert hidden["profile"]["hidden"] is True
        assert await next_event(ada, "profile.hidden") == {"ev": "profile.hidden", "hidden": True}
        # Never in the directory, whatever the query, on either node; others get not_found.
        feature(hub1)._forget_directory()
        for viewer in (bob, mod, ada):
            assert users(await viewer.ok("directory.search")) == ["bob"]
            assert users(await viewer.ok("directory.search", q="ada")) == []
        assert await bob.err("profile.get", user="ada") == "not_found"
        # The owner sees it is hidden; an edit does not show it again; moderators read it.
        await ada.ok("profile.set", bio="still here")
        assert (await ada.ok("profile.get"))["profile"]["hidden"] is True
        assert (await mod.ok("profile.get", user="ada"))["profile"]["hidden"] is True
        assert users(await mod.ok("directory.search")) == ["bob"]

        await mod.ok("profile.hide", user="ada", hidden=False)
        assert await next_event(ada, "profile.hidden") == {"ev": "profile.hidden", "hidden": False}
        feature(hub1)._forget_directory()
        assert users(await bob.ok("directory.search")) == ["ada", "bob"]
        assert (await ada.ok("profile.get"))["profile"]["hidden"] is False


async def test_hide_needs_a_profile_and_valid_fields(rooms_file: str) -> None:
    async with two_nodes(rooms_file) as [hub1, _]:
        org = await connect(hub1, "org", Role.ORGANIZER)
        assert await org.err("profile.hide", user="nobody", hidden=True) == "not_found"
        assert await org.err("profile.hide", user="", hidden=True) == "bad_request"
        assert await org.err("profile.hide", user="org", hidden="yes") == "bad_request"
        await org.ok("profile.set")
        assert (await org.ok("profile.hide", user="org", hidden=True))["profile"]["hidden"]


async def test_the_directory_pages_by_name_then_user(rooms_file: str) -> None:
    async with two_nodes(rooms_file) as [hub1, hub2]:
        names = ["delta", "Alpha", "charlie", "Bravo", "echo", "alpha"]
        for index, name in enumerate(names):
            person = await connect(hub1 if index % 2 else hub2, f"u{index}")
            await person.ok("profile.set", name=name, listed=True, interests=["AI"])
        reader = await connect(hub2, "reader")
        feature(hub2)._forget_directory()
        seen: list[str] = []
        page = await reader.ok("directory.search", limit=4)
        seen += [p["name"] for p in page["profiles"]]
        page = await reader.ok("directory.search", limit=4, after=page["next"])
        seen += [p["name"] for p in page["profiles"]]
        assert "next" not in page
        assert seen == ["Alpha", "alpha", "Bravo", "charlie", "delta", "echo"]
        assert await reader.err("directory.search", limit=51) == "bad_request"
        assert await reader.err("directory.search", q="x" * 65) == "bad_request"
        assert await reader.err("directory.search", interest="Crypto") == "bad_request"
        assert await reader.err("directory.search", country="XX") == "bad_request"


async def test_a_burst_of_searches_reads_the_profiles_once(rooms_file: str) -> None:
    async with two_nodes(rooms_file) as [hub1, _]:
        ada = await connect(hub1, "ada")
        await ada.ok("profile.set", listed=True)
        store = hub1.node.store
        reads = 0
        original = store.hash_get_all

        async def counting(key: str) -> dict[str, bytes]:
            nonlocal reads
            reads += key == "profiles"
            return await original(key)

        store.hash_get_all = counting  # type: ignore[method-assign]
        for _ in range(20):
            assert users(await ada.ok("directory.search")) == ["ada"]
        assert reads == 1


async def test_invalid_profile_fields_change_nothing(rooms_file: str) -> None:
    async with two_nodes(rooms_file) as [hub1, _]:
        ada = await connect(hub1, "ada")
        await ada.ok("profile.set", name="Ada", listed=True)
        assert await ada.err("profile.set", name="Eve", interests=["Crypto"]) == "bad_request"
        assert await ada.err("profile.set", bio="x" * 501) == "too_large"
        assert await ada.err("profile.set", country="Germany") == "bad_request"
        assert (await ada.ok("profile.get"))["profile"]["name"] == "Ada"


async def test_the_number_of_profiles_is_bounded(rooms_file: str) -> None:
    async with two_nodes(rooms_file) as [hub1, _]:
        store = hub1.node.store
        for index in range(MAX_PROFILES):
            await store.set_add(OWNERS_KEY, f"someone-{index}")
        ada = await connect(hub1, "ada")
        assert await ada.err("profile.set", listed=True) == "conflict"
        assert await ada.err("profile.set", listed=True) == "conflict"  # no place taken
        await store.set_remove(OWNERS_KEY, "someone-0")
        assert (await ada.ok("profile.set", listed=True))["profile"]["listed"]
        assert (await ada.ok("profile.set", bio="again"))["profile"]["bio"] == "again"


async def test_after_the_close_the_directory_and_edits_answer_closed(rooms_file: str) -> None:
    async with two_nodes(rooms_file) as [hub1, hub2]:
        ada = await connect(hub1, "ada")
        bob = await connect(hub2, "bob")
        mod = await connect(hub2, "mod", Role.MODERATOR)
        await ada.ok("profile.set", listed=True)
        await hub1.rooms.event.close("org", "Thanks!")
        await hub2.rooms.event.poll()
        for client in (ada, bob):
            assert await client.err("profile.set", bio="late") == "closed"
            assert await client.err("directory.search") == "closed"
        assert await bob.err("profile.get", user="ada") == "closed"
        assert (await ada.ok("profile.get"))["profile"]["listed"] is True
        assert (await mod.ok("profile.hide", user="ada", hidden=True))["profile"]["hidden"]


def test_the_interests_are_read_from_the_rooms_file(rooms_file: str, tmp_path: Path) -> None:
    from helpers import config

    assert event_interests(config()) == []
    assert event_interests(config(rooms_file=rooms_file)) == ["AI", "Energy", "Climate"]
    bad = tmp_path / "bad.toml"
    bad.write_text('interests = ["AI", "AI"]\n', encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape("bad.toml: interests[1]")):
        event_interests(config(rooms_file=str(bad)))


def test_hub_serve_refuses_a_wrong_interests_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from helpers import SECRET

    from hub.cli import main

    rooms = tmp_path / "rooms.toml"
    rooms.write_text('interests = ["AI", "x\\ny"]\n', encoding="utf-8")
    assert main(["serve", "--secret", SECRET, "--rooms", str(rooms)]) == 2
    assert "interests[1]: must not contain control characters" in capsys.readouterr().err


async def test_a_profile_without_contact_takes_no_new_conversations(rooms_file: str) -> None:
    async with two_nodes(rooms_file) as [hub1, hub2]:
        ada = await connect(hub1, "ada")
        bob = await connect(hub2, "bob")
        carol = await connect(hub2, "carol")
        mod = await connect(hub1, "mod", Role.MODERATOR)
        # No profile: messages welcome, as before profiles existed.
        await bob.ok("dm.send", to="ada", text="hello before you had a profile")
        await ada.ok("profile.set", listed=True, contact=False)
        assert await carol.err("dm.send", to="ada", text="hi, stranger") == "forbidden"
        # A conversation once started stays open both ways; moderators may always write.
        await bob.ok("dm.send", to="ada", text="still here")
        await ada.ok("dm.send", to="carol", text="I write first")
        await carol.ok("dm.send", to="ada", text="and I answer")
        await mod.ok("dm.send", to="ada", text="a word from the moderators")
        await ada.ok("profile.set", contact=True)
        dave = await connect(hub1, "dave")
        await dave.ok("dm.send", to="ada", text="now anyone may")
