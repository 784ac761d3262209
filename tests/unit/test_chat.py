"""Room chat (chat.messages) and its moderation (chat.moderation), in process: the pure rules, then
the ops on nodes sharing one memory backend, so "every node agrees" is checked on two nodes.

Time-based rules (mute expiry, slow mode) run on the feature's injected clock, never on waits.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import Client, connect, running

from chat.messages import ChatFeature, idempotency_key, ids_key, log_key
from chat.moderation import (
    CHAT_BURST,
    ChatRules,
    mute_end,
    seconds_left,
    slow_wait,
)
from hub.app import Hub
from hub.auth import Role
from hub.broker import BrokerUnavailable
from hub.node import Node

ROOM = "main"


def chat_of(hub: Hub) -> ChatFeature:
    """The node's chat feature (its handlers are bound methods of it)."""
    command = hub.registry.get("chat.send")
    assert command is not None
    feature = command.handler.__self__  # type: ignore[attr-defined]
    assert isinstance(feature, ChatFeature)
    return feature


class Clock:
    """A wall clock the test steps by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def step_clock(*hubs: Hub, start: float = 1_000_000.0) -> Clock:
    """Give every hub's chat rules the same hand-stepped clock."""
    clock = Clock(start)
    for hub in hubs:
        chat_of(hub).rules.clock = clock
    return clock


async def member(hub: Hub, user: str, role: Role = Role.ATTENDEE, **kw: Any) -> Client:
    client = await connect(hub, user, role, **kw)
    await client.ok("join", room=ROOM)
    return client


def chats(client: Client, ev: str = "chat") -> list[dict[str, Any]]:
    return [e for e in client.stored() if e["ev"] == ev]


# --- pure rules -----------------------------------------------------------------------------------


def test_seconds_left_rounds_up_and_stops_at_zero() -> None:
    assert seconds_left(10.0, 5.0) == 5
    assert seconds_left(10.0, 9.2) == 1
    assert seconds_left(10.0, 10.0) == 0
    assert seconds_left(10.0, 11.0) == 0


def test_a_mute_ends_on_a_whole_second_and_zero_seconds_is_no_mute() -> None:
    assert mute_end(100.2, 60) == 161
    assert mute_end(100.0, 60) == 160
    assert mute_end(100.2, 0) == 0


def test_slow_mode_waits_for_the_current_interval() -> None:
    assert slow_wait(100.0, 30, 100.0) == 30
    assert slow_wait(100.0, 30, 129.5) == 1
    assert slow_wait(100.0, 30, 130.0) == 0
    assert slow_wait(100.0, 5, 101.0) == 4  # shortened: the new interval counts at once
    assert slow_wait(100.0, 0, 100.0) == 0  # off


def test_idempotency_keys_of_different_users_never_collide() -> None:
    assert idempotency_key("r", "a:b", "c") != idempotency_key("r", "a", "b:c")
    assert idempotency_key("r", "u", "k") != idempotency_key("r2", "u", "k")


# --- chat.send ------------------------------------------------------------------------------------


async def test_a_message_is_a_stored_event_every_member_on_every_node_sees() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        ada = await member(hub1, "ada")
        bob = await member(hub2, "bob")
        ok = await ada.ok("chat.send", room=ROOM, text="  hello <b>all</b>\n  ")
        assert set(ok) == {"id", "seq"} and ok["seq"] == 1
        for client in (ada, bob):
            [event] = chats(client)
            assert event == {
                "ev": "chat",
                "room": ROOM,
                "seq": 1,
                "id": ok["id"],
                "user": "ada",
                "name": "ada",
                "text": "hello <b>all</b>",  # trimmed, plain text, nothing escaped or rendered
                "ts": event["ts"],
            }
            assert isinstance(event["ts"], float)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "bad_request"),
        ("   \n ", "bad_request"),
        ("x" * 2001, "too_large"),
        ("bell\x07", "bad_request"),
        ("tab\there", "bad_request"),
        ("cr\rhere", "bad_request"),
        ("c1\x85here", "bad_request"),
        ("del\x7f", "bad_request"),
        (5, "bad_request"),
        (None, "bad_request"),
    ],
)
async def test_text_limits(text: object, code: str) -> None:
    async with running() as [hub]:
        ada = await member(hub, "ada")
        assert await ada.err("chat.send", room=ROOM, text=text) == code
        assert chats(ada) == []


async def test_text_of_2000_characters_after_trimming_and_newlines_are_fine() -> None:
    async with running() as [hub]:
        ada = await member(hub, "ada")
        await ada.ok("chat.send", room=ROOM, text=" " + "x" * 2000 + " ")
        await ada.ok("chat.send", room=ROOM, text="two\nlines")
        assert [len(e["text"]) for e in chats(ada)] == [2000, 9]


async def test_only_members_of_the_room_may_send() -> None:
    async with running() as [hub]:
        boss = await connect(hub, "boss", Role.ORGANIZER)
        assert await boss.err("chat.send", room=ROOM, text="hi") == "forbidden"
        assert await boss.err("chat.send", room="nowhere", text="hi") == "forbidden"
        assert await boss.err("chat.send", room="No!", text="hi") == "bad_request"


@pytest.mark.parametrize("field", ["key", "reply_to"])
@pytest.mark.parametrize("value", ["", "k" * 65, 7, ["k"]])
async def test_malformed_key_or_reply_to_is_a_bad_request(field: str, value: object) -> None:
    async with running() as [hub]:
        ada = await member(hub, "ada")
        assert await ada.err("chat.send", room=ROOM, text="hi", **{field: value}) == "bad_request"


async def test_reply_to_must_name_a_live_message_of_the_room() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        boss = await connect(hub1, "boss", Role.ORGANIZER)
        await boss.ok("room.create", room="other", kind="workshop", title="Other")
        await boss.ok("join", room="other")
        elsewhere = await boss.ok("chat.send", room="other", text="elsewhere")
        ada = await member(hub1, "ada")
        bob = await member(hub2, "bob")
        first = await ada.ok("chat.send", room=ROOM, text="first")
        reply = await bob.ok("chat.send", room=ROOM, text="re", reply_to=first["id"])
        assert chats(ada)[-1]["reply_to"] == first["id"]
        assert "reply_to" not in chats(bob)[0]
        assert await bob.err("chat.send", room=ROOM, text="re", reply_to="nope") == "not_found"
        assert (
            await bob.err("chat.send", room=ROOM, text="re", reply_to=elsewhere["id"])
            == "not_found"
        )
        await ada.ok("chat.delete", room=ROOM, msg=first["id"])
        assert await bob.err("chat.send", room=ROOM, text="re", reply_to=first["id"]) == "not_found"
        await ada.ok("chat.send", room=ROOM, text="re re", reply_to=reply["id"])


# --- idempotency ----------------------------------------------------------------------------------


async def test_a_retry_with_the_same_key_on_another_node_posts_nothing_twice() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        watcher = await member(hub1, "watcher")
        on_a = await member(hub1, "ada")
        on_b = await member(hub2, "ada")  # the same person, reconnected to the other node
        first = await on_a.ok("chat.send", room=ROOM, text="once", key="k-1")
        again = await on_b.ok("chat.send", room=ROOM, text="changed text", key="k-1")
        assert again == first
        assert await on_a.ok("chat.send", room=ROOM, text="once", key="k-1") == first
        assert [e["text"] for e in chats(watcher)] == ["once"]
        # Another key, another user or another room is another message.
        other = await on_b.ok("chat.send", room=ROOM, text="new", key="k-2")
        bob = await member(hub2, "bob")
        bobs = await bob.ok("chat.send", room=ROOM, text="bob's", key="k-1")
        assert len({first["seq"], other["seq"], bobs["seq"]}) == 3
        history = await watcher.ok("chat.history", room=ROOM)
        assert [m["text"] for m in history["messages"]] == ["once", "new", "bob's"]


async def test_a_retry_while_the_first_send_is_in_flight_gets_conflict() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        ada = await member(hub2, "ada")
        # What the broker holds while another node's first attempt is still publishing.
        await hub1.node.store.set_if_absent(idempotency_key(ROOM, "ada", "k"), b"")
        assert await ada.err("chat.send", room=ROOM, text="hi", key="k") == "conflict"
        assert chats(ada) == []


async def test_a_send_that_failed_frees_its_key_for_the_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running() as [hub]:
        ada = await member(hub, "ada")
        publish = Node.publish_event_once

        async def down(self: Node, *args: Any, **kwargs: Any) -> tuple[int, bool]:
            raise BrokerUnavailable("down")

        monkeypatch.setattr(Node, "publish_event_once", down)
        assert await ada.err("chat.send", room=ROOM, text="hi", key="k") == "unavailable"
        monkeypatch.setattr(Node, "publish_event_once", publish)
        ok = await ada.ok("chat.send", room=ROOM, text="hi", key="k")
        assert await ada.ok("chat.send", room=ROOM, text="hi", key="k") == ok
        assert [e["text"] for e in chats(ada)] == ["hi"]


async def test_a_send_stored_before_it_failed_is_not_posted_again_by_its_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running() as [hub]:
        ada = await member(hub, "ada")
        put = hub.node.store.put

        async def down(key: str, value: bytes, **kwargs: Any) -> None:
            if value == b"":  # the claim itself (the memory store claims through put)
                return await put(key, value, **kwargs)
            raise BrokerUnavailable("down")

        # Stored and fanned out, then the result could not be recorded for the key.
        monkeypatch.setattr(hub.node.store, "put", down)
        assert await ada.err("chat.send", room=ROOM, text="hi", key="k") == "unavailable"
        monkeypatch.setattr(hub.node.store, "put", put)
        sent = chats(ada)
        assert [e["text"] for e in sent] == ["hi"]
        ok = await ada.ok("chat.send", room=ROOM, text="hi", key="k")
        assert ok == {"id": sent[0]["id"], "seq": sent[0]["seq"]}
        assert chats(ada) == []  # nothing posted again
        history = await ada.ok("chat.history", room=ROOM)
        assert [m["id"] for m in history["messages"]] == [ok["id"]]


@pytest.mark.parametrize("stored", [False, True])
async def test_a_key_that_redis_failing_left_claimed_is_taken_over_by_the_retry_on_its_node(
    monkeypatch: pytest.MonkeyPatch, stored: bool
) -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        ada = await member(hub1, "ada")
        elsewhere = await member(hub2, "ada")
        store = hub1.node.store
        publish, delete = Node.publish_event_once, store.delete

        async def down(*args: Any, **kwargs: Any) -> Any:
            raise BrokerUnavailable("down")

        async def stored_then_down(self: Node, *args: Any, **kwargs: Any) -> tuple[int, bool]:
            await publish(self, *args, **kwargs)
            raise BrokerUnavailable("down")

        # Redis goes away under the send (before or after storing it): the claim stays behind.
        monkeypatch.setattr(Node, "publish_event_once", stored_then_down if stored else down)
        monkeypatch.setattr(store, "delete", down)
        assert await ada.err("chat.send", room=ROOM, text="hi", key="k") == "unavailable"
        monkeypatch.setattr(Node, "publish_event_once", publish)
        monkeypatch.setattr(store, "delete", delete)
        # Another node cannot tell that attempt from one in flight; this node can.
        assert await elsewhere.err("chat.send", room=ROOM, text="hi", key="k") == "conflict"
        ok = await ada.ok("chat.send", room=ROOM, text="hi", key="k")
        assert await elsewhere.ok("chat.send", room=ROOM, text="hi", key="k") == ok
        history = await ada.ok("chat.history", room=ROOM)
        assert [(m["id"], m["seq"]) for m in history["messages"]] == [(ok["id"], ok["seq"])]


async def test_a_claim_whose_reply_was_lost_is_taken_over_by_the_retry_on_its_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running() as [hub]:
        ada = await member(hub, "ada")
        store = hub.node.store
        set_if_absent = store.set_if_absent

        async def lost(key: str, value: bytes, **kwargs: Any) -> bytes | None:
            await set_if_absent(key, value, **kwargs)
            raise BrokerUnavailable("down")

        monkeypatch.setattr(store, "set_if_absent", lost)
        assert await ada.err("chat.send", room=ROOM, text="hi", key="k") == "unavailable"
        monkeypatch.setattr(store, "set_if_absent", set_if_absent)
        ok = await ada.ok("chat.send", room=ROOM, text="hi", key="k")
        assert [e["seq"] for e in chats(ada)] == [ok["seq"]]


# --- chat.history ---------------------------------------------------------------------------------


async def test_history_pages_backwards_newest_last() -> None:
    async with running() as [hub]:
        mod = await member(hub, "mod", Role.ORGANIZER)  # exempt from every rate
        sent = [await mod.ok("chat.send", room=ROOM, text=f"m{i}") for i in range(60)]
        reader = await connect(hub, "reader")  # need not be in the room
        page = (await reader.ok("chat.history", room=ROOM))["messages"]
        assert [m["text"] for m in page] == [f"m{i}" for i in range(10, 60)]  # default 50
        assert page[-1] == chats(mod)[-1]  # exactly as sent live
        older = (await reader.ok("chat.history", room=ROOM, before=page[0]["seq"], limit=7))[
            "messages"
        ]
        assert [m["seq"] for m in older] == [s["seq"] for s in sent[3:10]]
        assert (await reader.ok("chat.history", room=ROOM, before=1))["messages"] == []
        full = await reader.ok("chat.history", room=ROOM, limit=200)
        assert len(full["messages"]) == 60
        assert "cap" not in full


async def test_history_errors() -> None:
    async with running() as [hub]:
        reader = await connect(hub, "reader")
        assert await reader.err("chat.history", room="nowhere") == "not_found"
        assert await reader.err("chat.history", room="Bad!") == "bad_request"
        for limit in (0, 201, "5", 1.5):
            assert await reader.err("chat.history", room=ROOM, limit=limit) == "bad_request"
        assert await reader.err("chat.history", room=ROOM, before=-1) == "bad_request"


async def test_history_outlasts_the_recovery_window_up_to_the_cap_moderators_see() -> None:
    async with running(history_size=5, chat_history=20) as [hub]:
        mod = await member(hub, "mod", Role.MODERATOR)
        for i in range(30):
            await mod.ok("chat.send", room=ROOM, text=f"m{i}")
        late = await connect(hub, "late")
        joined = await late.ok("join", room=ROOM, since=0)
        assert joined["recovered"] is False and len(joined["missed"]) == 5
        history = await mod.ok("chat.history", room=ROOM, limit=200)
        assert [m["text"] for m in history["messages"]] == [f"m{i}" for i in range(10, 30)]
        assert history["cap"] == 20
        assert "cap" not in await late.ok("chat.history", room=ROOM)


# --- chat.delete ----------------------------------------------------------------------------------


async def test_the_author_or_a_moderator_deletes_and_every_node_sees_it() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        ada = await member(hub1, "ada")
        bob = await member(hub2, "bob")
        mod = await connect(hub2, "mod", rooms={ROOM: Role.MODERATOR})  # not in the room
        one = await ada.ok("chat.send", room=ROOM, text="one")
        two = await ada.ok("chat.send", room=ROOM, text="two")
        three = await ada.ok("chat.send", room=ROOM, text="three")
        assert await bob.err("chat.delete", room=ROOM, msg=one["id"]) == "forbidden"
        deleted = await ada.ok("chat.delete", room=ROOM, msg=one["id"])
        assert deleted == {"seq": 4}
        assert await mod.ok("chat.delete", room=ROOM, msg=three["id"]) == {"seq": 5}
        for client in (ada, bob):
            assert [(e["seq"], e.get("msg")) for e in chats(client, "chat.deleted")] == [
                (4, one["id"]),
                (5, three["id"]),
            ]
        history = await bob.ok("chat.history", room=ROOM)
        assert [m["id"] for m in history["messages"]] == [two["id"]]
        assert await ada.err("chat.delete", room=ROOM, msg=one["id"]) == "not_found"
        assert await mod.err("chat.delete", room=ROOM, msg="nope") == "not_found"
        assert await mod.err("chat.delete", room="nowhere", msg=two["id"]) == "not_found"
        assert await mod.err("chat.delete", room=ROOM) == "bad_request"


async def test_ids_go_with_their_messages_out_of_the_chat_log() -> None:
    async with running(history_size=5, chat_history=20) as [hub]:
        mod = await member(hub, "mod", Role.MODERATOR)
        sent = [await mod.ok("chat.send", room=ROOM, text=f"m{i}") for i in range(30)]
        # m0 .. m9 were trimmed from the log: their ids are unknown as an unknown id is.
        for gone in (sent[0], sent[9]):
            assert await mod.err("chat.send", room=ROOM, text="re", reply_to=gone["id"]) == (
                "not_found"
            )
            assert await mod.err("chat.delete", room=ROOM, msg=gone["id"]) == "not_found"
        # The oldest message still in the log is as alive as the newest.
        await mod.ok("chat.send", room=ROOM, text="re", reply_to=sent[10]["id"])
        await mod.ok("chat.delete", room=ROOM, msg=sent[11]["id"])
        history = await mod.ok("chat.history", room=ROOM, limit=200)
        in_log = {m["id"] for m in history["messages"]}
        assert len(in_log) == 19
        assert set(await index_ids(hub)) == in_log


async def index_ids(hub: Hub) -> list[str]:
    """The ids the room's message index holds."""
    entries = await hub.node.store.index_newest(ids_key(ROOM), 10**6)
    return [member for member, _, _ in entries]


async def test_a_delete_whose_event_failed_can_be_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    async with running() as [hub]:
        ada = await member(hub, "ada")
        sent = await ada.ok("chat.send", room=ROOM, text="oops")
        publish = Node.publish_event

        async def down(self: Node, room: str, ev: str, fields: Any) -> int:
            raise BrokerUnavailable("down")

        monkeypatch.setattr(Node, "publish_event", down)
        assert await ada.err("chat.delete", room=ROOM, msg=sent["id"]) == "unavailable"
        monkeypatch.setattr(Node, "publish_event", publish)
        await ada.ok("chat.delete", room=ROOM, msg=sent["id"])
        assert [e["msg"] for e in chats(ada, "chat.deleted")] == [sent["id"]]
        assert await hub.node.store.log_range(log_key(ROOM), None, 10) == []


# --- chat.mute ------------------------------------------------------------------------------------


async def test_a_mute_is_seen_on_every_node_and_ends_on_time() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        clock = step_clock(hub1, hub2)
        mod = await member(hub1, "mod", Role.MODERATOR)
        ada = await member(hub2, "ada")
        assert await ada.err("chat.mute", room=ROOM, user="mod", seconds=60) == "forbidden"
        ok = await mod.ok("chat.mute", room=ROOM, user="ada", seconds=60)
        until = int(clock.now) + 60
        assert ok == {"until": until}
        for client in (mod, ada):
            [event] = chats(client, "chat.muted")
            assert event == {
                "ev": "chat.muted",
                "room": ROOM,
                "seq": 1,
                "user": "ada",
                "until": until,
            }
        reply = await ada.call("chat.send", room=ROOM, text="hi")
        assert reply["err"] == {"code": "forbidden", "msg": "muted for 60 s more"}
        clock.now += 45.5
        reply = await ada.call("chat.send", room=ROOM, text="hi")
        assert reply["err"]["msg"] == "muted for 15 s more"
        # The snapshot of a new session tells the muted user until when.
        again = await connect(hub1, "ada")
        snapshot = (await again.ok("join", room=ROOM))["snapshot"]
        assert snapshot["muted_until"] == until and "slowmode" not in snapshot
        clock.now += 15
        await ada.ok("chat.send", room=ROOM, text="free again")
        assert "muted_until" not in (await again.ok("join", room=ROOM))["snapshot"]


async def test_unmute_with_zero_seconds() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        mod = await member(hub1, "mod", Role.MODERATOR)
        ada = await member(hub2, "ada")
        await mod.ok("chat.mute", room=ROOM, user="ada", seconds=600)
        assert await ada.err("chat.send", room=ROOM, text="hi") == "forbidden"
        assert await mod.ok("chat.mute", room=ROOM, user="ada", seconds=0) == {"until": 0}
        await ada.ok("chat.send", room=ROOM, text="hi")
        events = [(e["ev"], e.get("until")) for e in ada.stored()]
        assert events[1:] == [("chat.muted", 0), ("chat", None)]


async def test_mute_is_per_room_and_validated() -> None:
    async with running() as [hub]:
        boss = await connect(hub, "boss", Role.ORGANIZER)
        await boss.ok("room.create", room="other", kind="workshop", title="Other")
        ada = await connect(hub, "ada")
        await ada.ok("join", room=ROOM)
        await ada.ok("join", room="other")
        await boss.ok("chat.mute", room="other", user="ada", seconds=60)
        await ada.ok("chat.send", room=ROOM, text="still fine here")
        assert await ada.err("chat.send", room="other", text="hi") == "forbidden"
        for seconds in (-1, 86_401, "60", None, 1.5):
            assert (
                await boss.err("chat.mute", room=ROOM, user="ada", seconds=seconds) == "bad_request"
            )
        assert await boss.err("chat.mute", room=ROOM, user="", seconds=5) == "bad_request"
        assert await boss.err("chat.mute", room="nowhere", user="ada", seconds=5) == "not_found"
        # A room moderator (by a room claim) mutes in that room only.
        room_mod = await connect(hub, "rm", rooms={"other": Role.MODERATOR})
        await room_mod.ok("chat.mute", room="other", user="ada", seconds=0)
        assert await room_mod.err("chat.mute", room=ROOM, user="ada", seconds=5) == "forbidden"


# --- room.slowmode --------------------------------------------------------------------------------


async def test_slow_mode_allows_one_message_per_interval_on_any_node() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        clock = step_clock(hub1, hub2)
        mod = await member(hub1, "mod", Role.MODERATOR)
        on_a = await member(hub1, "ada")
        on_b = await member(hub2, "ada")
        bob = await member(hub2, "bob")
        assert await on_a.err("room.slowmode", room=ROOM, seconds=30) == "forbidden"
        assert await mod.ok("room.slowmode", room=ROOM, seconds=30) == {}
        for client in (mod, bob):
            [event] = chats(client, "room.slowmode")
            assert event == {"ev": "room.slowmode", "room": ROOM, "seq": 1, "seconds": 30}
        await on_a.ok("chat.send", room=ROOM, text="one")
        reply = await on_b.call("chat.send", room=ROOM, text="two")  # the same user, elsewhere
        assert reply["err"] == {
            "code": "rate_limited",
            "msg": "slow mode: wait 30 s",
            "retry_in": 30,
        }
        await bob.ok("chat.send", room=ROOM, text="bob")  # each user has their own interval
        for i in range(3):
            await mod.ok("chat.send", room=ROOM, text=f"mod {i}")  # moderators are exempt
        clock.now += 29.2
        late = (await on_a.call("chat.send", room=ROOM, text="two"))["err"]
        assert (late["msg"], late["retry_in"]) == ("slow mode: wait 1 s", 1)
        clock.now += 0.8
        await on_b.ok("chat.send", room=ROOM, text="two")
        snapshot = (await bob.ok("join", room=ROOM))["snapshot"]
        assert snapshot["slowmode"] == 30 and "muted_until" not in snapshot
        await mod.ok("room.slowmode", room=ROOM, seconds=0)
        await on_a.ok("chat.send", room=ROOM, text="three")
        await on_a.ok("chat.send", room=ROOM, text="four")
        assert "slowmode" not in (await bob.ok("join", room=ROOM))["snapshot"]


async def test_slowmode_is_validated() -> None:
    async with running() as [hub]:
        mod = await member(hub, "mod", Role.MODERATOR)
        for seconds in (-1, 3601, None, "5"):
            assert await mod.err("room.slowmode", room=ROOM, seconds=seconds) == "bad_request"
        assert await mod.err("room.slowmode", room="nowhere", seconds=5) == "not_found"


async def test_a_refused_send_does_not_use_the_slow_mode_slot() -> None:
    async with running() as [hub]:
        mod = await member(hub, "mod", Role.MODERATOR)
        ada = await member(hub, "ada")
        await mod.ok("room.slowmode", room=ROOM, seconds=30)
        assert await ada.err("chat.send", room=ROOM, text="x", reply_to="nope") == "not_found"
        await ada.ok("chat.send", room=ROOM, text="first real one")


# --- the chat rate --------------------------------------------------------------------------------


async def test_the_chat_rate_is_per_user_apart_from_the_command_limits() -> None:
    async with running() as [hub]:
        ada = await member(hub, "ada")
        burst = int(CHAT_BURST)
        for i in range(burst):
            await ada.ok("chat.send", room=ROOM, text=f"m{i}")
        reply = await ada.call("chat.send", room=ROOM, text="one too many")
        assert reply["err"]["code"] == "rate_limited"
        assert reply["err"]["msg"] == f"too many messages: wait {reply['err']['retry_in']} s"
        assert reply["err"]["retry_in"] >= 1
        assert await ada.ok("ping") == {}  # other commands go on
        # The same person on a second session shares the budget; DMs count too.
        second = await member(hub, "ada")
        await connect(hub, "bob")
        assert await second.err("chat.send", room=ROOM, text="x") == "rate_limited"
        assert await second.err("dm.send", to="bob", text="x") == "rate_limited"
        # Others, moderators and organizers are unaffected.
        bob = await member(hub, "bob")
        await bob.ok("chat.send", room=ROOM, text="bob")
        boss = await member(hub, "boss", Role.ORGANIZER)
        for i in range(burst + 5):
            await boss.ok("chat.send", room=ROOM, text=f"b{i}")


async def test_a_retry_with_a_key_is_answered_even_when_the_rate_is_spent() -> None:
    async with running() as [hub]:
        ada = await member(hub, "ada")
        first = await ada.ok("chat.send", room=ROOM, text="m", key="k")
        for i in range(int(CHAT_BURST) - 1):
            await ada.ok("chat.send", room=ROOM, text=f"m{i}")
        assert await ada.err("chat.send", room=ROOM, text="m") == "rate_limited"
        assert await ada.ok("chat.send", room=ROOM, text="m", key="k") == first


# --- the rules on their own broker state ----------------------------------------------------------


async def test_rules_keep_their_state_in_the_broker() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        clock = Clock(500.0)
        here = ChatRules(hub1.node.store, clock)
        there = ChatRules(hub2.node.store, clock)
        assert await there.muted_until("r", "u") == 0
        assert await here.mute("r", "u", 10) == 510
        assert await there.muted_until("r", "u") == 510
        clock.now = 510.0
        assert await there.muted_until("r", "u") == 0
        await here.set_slowmode("r", 20)
        assert await there.slowmode("r") == 20
        assert await here.take_slot("r", "u", 20) == 0
        assert await there.take_slot("r", "u", 20) == 20
        clock.now += 20
        assert await there.take_slot("r", "u", 20) == 0
        await there.release_slot("r", "u")
        assert await here.take_slot("r", "u", 20) == 0
