"""Direct messages (chat.dm), in process, on nodes sharing one memory backend."""

from __future__ import annotations

import time
from typing import Any

import pytest
from helpers import Client, connect, new_session, running, token

import chat.dm
from chat.dm import KNOWN_USERS, DirectMessages, conversation, guest_key
from chat.moderation import CHAT_BURST
from hub.app import Hub
from hub.auth import Role
from hub.broker import BrokerUnavailable
from hub.memory import MemoryBackend, MemoryBroker


def dms(client: Client) -> list[dict[str, Any]]:
    return [e for e in client.collect() if e.get("ev") == "dm"]


def dm_feature(hub: Hub) -> DirectMessages:
    command = hub.registry.get("dm.send")
    assert command is not None
    feature = command.handler.__self__  # type: ignore[attr-defined]
    assert isinstance(feature, DirectMessages)
    return feature


def test_a_conversation_has_one_name_whoever_sends_and_pairs_never_collide() -> None:
    assert conversation("ada", "bob") == conversation("bob", "ada")
    assert conversation("x|y", "z") != conversation("x", "y|z")
    assert conversation("a", "b|c") != conversation("a|b", "c")


async def test_a_dm_reaches_every_session_of_the_recipient_on_every_node() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        ada = await connect(hub1, "ada")
        bob_1 = await connect(hub1, "bob")
        bob_2 = await connect(hub2, "bob")
        carol = await connect(hub2, "carol")
        ok = await ada.ok("dm.send", to="bob", text="  psst <i>hi</i> ")
        assert set(ok) == {"id", "ts", "n"} and ok["n"] == 1
        expected = {
            "ev": "dm",
            "id": ok["id"],
            "from": "ada",
            "name": "ada",
            "text": "psst <i>hi</i>",
            "ts": ok["ts"],
            "n": 1,
        }
        assert dms(bob_1) == [expected]
        assert dms(bob_2) == [expected]
        assert dms(carol) == []
        assert dms(ada) == []  # the sender has its reply


async def test_dms_to_oneself_or_an_unknown_user_are_refused() -> None:
    async with running() as [hub]:
        ada = await connect(hub, "ada")
        assert await ada.err("dm.send", to="ada", text="me") == "bad_request"
        assert await ada.err("dm.send", to="nobody", text="hi") == "not_found"
        for to in ("", None, 5, "x" * 129):
            assert await ada.err("dm.send", to=to, text="hi") == "bad_request"
        await connect(hub, "bob")
        assert await ada.err("dm.send", to="bob", text=" ") == "bad_request"
        assert await ada.err("dm.send", to="bob", text="x" * 2001) == "too_large"
        assert await ada.err("dm.send", to="bob", text="a\x1bb") == "bad_request"


async def test_a_user_who_said_hello_on_another_node_is_known() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        ada = await connect(hub1, "ada")
        bob = await connect(hub2, "bob")
        # Bob's session is gone, yet he is known: the DM waits for him in dm.history.
        await hub2.node.remove_session(bob.session)
        assert (await ada.ok("dm.send", to="bob", text="later"))["n"] == 1


async def test_history_pages_a_conversation_oldest_first() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        ada = await connect(hub1, "ada", Role.MODERATOR)  # exempt from the chat rate
        bob = await connect(hub2, "bob", Role.MODERATOR)
        sent = []
        for i in range(6):
            sender, to = (ada, "bob") if i % 2 == 0 else (bob, "ada")
            sent.append(await sender.ok("dm.send", to=to, text=f"m{i}"))
        assert [s["n"] for s in sent] == [1, 2, 3, 4, 5, 6]
        for me, other in ((ada, "bob"), (bob, "ada")):
            page = (await me.ok("dm.history", **{"with": other}))["messages"]
            assert [(m["n"], m["from"], m["text"]) for m in page] == [
                (i + 1, "ada" if i % 2 == 0 else "bob", f"m{i}") for i in range(6)
            ]
        # What bob received live is exactly what the history holds.
        live = dms(bob)
        history = (await bob.ok("dm.history", **{"with": "ada"}))["messages"]
        assert [m for m in history if m["from"] == "ada"] == live
        older = await ada.ok("dm.history", limit=2, before=5, **{"with": "bob"})
        assert [m["n"] for m in older["messages"]] == [3, 4]
        # A reconnecting person reads the conversation back, on any node.
        again = await connect(hub1, "bob")
        page = (await again.ok("dm.history", limit=3, **{"with": "ada"}))["messages"]
        assert [m["text"] for m in page] == ["m3", "m4", "m5"]
        # Someone else's conversations are not theirs to read.
        carol = await connect(hub1, "carol")
        assert (await carol.ok("dm.history", **{"with": "ada"}))["messages"] == []


async def test_history_errors() -> None:
    async with running() as [hub]:
        ada = await connect(hub, "ada")
        assert await ada.err("dm.history", **{"with": "ada"}) == "bad_request"
        assert await ada.err("dm.history") == "bad_request"
        for limit in (0, 201, "1"):
            assert await ada.err("dm.history", limit=limit, **{"with": "bob"}) == "bad_request"
        assert await ada.err("dm.history", before=-1, **{"with": "bob"}) == "bad_request"


async def test_known_users_come_back_after_the_broker_lost_them() -> None:
    async with running() as [hub]:
        ada = await connect(hub, "ada")
        await connect(hub, "bob")
        broker = hub.node.broker
        assert isinstance(broker, MemoryBroker)
        broker.backend.sets.pop(KNOWN_USERS)
        assert await ada.err("dm.send", to="bob", text="hi") == "not_found"
        await dm_feature(hub).restore_users("main")  # what the history-lost hook runs
        await ada.ok("dm.send", to="bob", text="hi")


# --- guests -------------------------------------------------------------------------------------


class Monotonic:
    """The memory backend's clock, stepped by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def stepped_backend(hub: Hub) -> tuple[MemoryBackend, Monotonic]:
    broker = hub.node.broker
    assert isinstance(broker, MemoryBroker)
    clock = Monotonic()
    broker.backend.clock = clock
    return broker.backend, clock


async def guest(hub: Hub, name: str = "Gus") -> tuple[Client, str]:
    client = Client(hub, new_session(hub))
    ok = await client.ok("hello", name=name)
    return client, ok["user"]["id"]


async def test_a_guest_is_known_while_connected_and_for_the_guest_ttl_after() -> None:
    async with running(guests=True, guest_ttl=3600) as [hub]:
        backend, clock = stepped_backend(hub)
        ada = await connect(hub, "ada", Role.MODERATOR)  # no chat rate
        gus, gus_id = await guest(hub)
        await ada.ok("dm.send", to=gus_id, text="hi")
        # Connected, the guest stays known past the ttl: each node keeps its guests known.
        clock.now += 3000
        await dm_feature(hub).keep_guests_known()
        clock.now += 3000
        await ada.ok("dm.send", to=gus_id, text="still there?")
        await hub.node.remove_session(gus.session)
        clock.now += 3599
        await ada.ok("dm.send", to=gus_id, text="read it when you are back")
        clock.now += 1
        assert await ada.err("dm.send", to=gus_id, text="gone") == "not_found"
        backend.sweep()
        assert guest_key(gus_id) not in backend.values


async def test_guests_are_not_kept_for_good_however_many_say_hello() -> None:
    async with running(guests=True, guest_ttl=60) as [hub]:
        backend, clock = stepped_backend(hub)
        await connect(hub, "ada")
        for i in range(200):
            client, _ = await guest(hub, f"guest {i}")
            await hub.node.remove_session(client.session)
        assert await hub.node.store.set_members(KNOWN_USERS) == {"ada"}
        clock.now += 60
        backend.sweep()
        assert not [key for key in backend.values if key.startswith("dm:guest:")]


async def test_connected_guests_come_back_after_the_broker_lost_them() -> None:
    async with running(guests=True) as [hub]:
        ada = await connect(hub, "ada")
        _, gus_id = await guest(hub)
        broker = hub.node.broker
        assert isinstance(broker, MemoryBroker)
        broker.backend.values.clear()
        assert await ada.err("dm.send", to=gus_id, text="hi") == "not_found"
        await dm_feature(hub).restore_users("main")
        await ada.ok("dm.send", to=gus_id, text="hi")
        assert await hub.node.store.set_members(KNOWN_USERS) == {"ada"}


@pytest.mark.parametrize("role", [Role.ATTENDEE, Role.SPEAKER])
async def test_the_chat_rate_applies_to_dms(role: Role) -> None:
    async with running() as [hub]:
        ada = await connect(hub, "ada", role)
        await connect(hub, "bob")
        for i in range(int(CHAT_BURST)):
            await ada.ok("dm.send", to="bob", text=f"m{i}")
        assert await ada.err("dm.send", to="bob", text="more") == "rate_limited"


# --- dm.conversations -----------------------------------------------------------------------------


class Clock:
    """Stands in for the ``time`` module of chat.dm: wall time moves 1 s per message."""

    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def time(self) -> float:
        self.now += 1.0
        return self.now

    @staticmethod
    def monotonic() -> float:
        return time.monotonic()


async def named(hub: Hub, user: str, name: str) -> Client:
    client = Client(hub, new_session(hub))
    await client.ok("hello", token=token(hub, user, name=name))
    return client


async def test_conversations_list_both_sides_newest_first() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        ada = await named(hub1, "ada", "Ada L")
        bob = await named(hub2, "bob", "Bob B")
        await named(hub2, "cat", "Cat C")
        assert await ada.ok("dm.conversations") == {"conversations": []}
        to_bob = await ada.ok("dm.send", to="bob", text="hi bob")
        back = await bob.ok("dm.send", to="ada", text="hi ada")
        to_cat = await ada.ok("dm.send", to="cat", text="hi cat")

        listed = (await ada.ok("dm.conversations", ignored=1))["conversations"]
        assert listed == [
            # cat never sent ada anything: no name seen yet.
            {"with": "cat", "name": None, "n": 1, "ts": to_cat["ts"]},
            {"with": "bob", "name": "Bob B", "n": 2, "ts": back["ts"]},
        ]
        assert (await bob.ok("dm.conversations"))["conversations"] == [
            {"with": "ada", "name": "Ada L", "n": 2, "ts": back["ts"]},
        ]
        assert to_bob["n"] == 1


async def test_a_conversation_keeps_the_name_last_seen_from_the_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chat.dm, "time", Clock())
    async with running() as [hub]:
        ada = await named(hub, "ada", "Ada")
        bob = await named(hub, "bob", "Bob")
        await bob.ok("dm.send", to="ada", text="one")
        await bob.ok("refresh", token=token(hub, "bob", name="Robert"))
        await bob.ok("dm.send", to="ada", text="two")
        last = await ada.ok("dm.send", to="bob", text="three")  # ada's own message
        [entry] = (await ada.ok("dm.conversations"))["conversations"]
        assert entry == {"with": "bob", "name": "Robert", "n": 3, "ts": last["ts"]}
        [entry] = (await bob.ok("dm.conversations"))["conversations"]
        assert entry == {"with": "ada", "name": "Ada", "n": 3, "ts": last["ts"]}


async def test_conversations_are_capped_to_the_newest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat.dm, "time", Clock())
    monkeypatch.setattr(chat.dm, "CONVERSATIONS_KEPT", 3)
    async with running() as [hub]:
        ada = await connect(hub, "ada", Role.MODERATOR)  # no chat rate for the burst
        for user in ("u1", "u2", "u3", "u4"):
            await connect(hub, user)
            await ada.ok("dm.send", to=user, text="hello")
        await ada.ok("dm.send", to="u2", text="again")
        listed = (await ada.ok("dm.conversations"))["conversations"]
        assert [(entry["with"], entry["n"]) for entry in listed] == [
            ("u2", 2),
            ("u4", 1),
            ("u3", 1),
        ]
        broker = hub.node.broker
        assert isinstance(broker, MemoryBroker)
        assert set(broker.backend.indexes["dm:c:ada"]) == {"u2", "u3", "u4"}


async def test_a_failed_conversation_update_still_sends_the_dm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running() as [hub]:
        ada, bob = await connect(hub, "ada"), await connect(hub, "bob")

        async def down(*args: Any, **kwargs: Any) -> bool:
            raise BrokerUnavailable("redis went away")

        monkeypatch.setattr(hub.node.store, "index_put", down)
        sent = await ada.ok("dm.send", to="bob", text="still here")
        assert [dm["id"] for dm in dms(bob)] == [sent["id"]]
        monkeypatch.undo()
        assert (await bob.ok("dm.conversations"))["conversations"] == []
        assert len((await bob.ok("dm.history", **{"with": "ada"}))["messages"]) == 1
