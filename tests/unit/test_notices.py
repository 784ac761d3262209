"""The join snapshot's ``notices``: a room's newest notices, from ``announce``, the HTTP announce
(``RoomsFeature.post_notice``) and ``breakout.broadcast``, on in-process hubs."""

from __future__ import annotations

from typing import Any

import pytest

from hub.auth import Role
from hub.broker import BrokerUnavailable
from rooms.feature import NOTICES_KEPT, notices_key
from tests.unit.helpers import connect, create_room, running


async def test_a_joiner_gets_the_newest_notices_exactly_as_they_were_sent() -> None:
    async with running("a", "b") as [a, b]:
        mod = await connect(a, "mod", Role.MODERATOR)
        watcher = await connect(a, "watcher")
        await watcher.ok("join", room="main")
        watcher.collect()
        for i in range(NOTICES_KEPT + 5):
            await mod.ok("announce", room="main", text=f"notice {i}")
        # The organizers' HTTP announce goes through the same path.
        await a.rooms.post_notice("main", "from the desk", "org")
        live = [event for event in watcher.collect() if event.get("ev") == "notice"]
        assert len(live) == NOTICES_KEPT + 6

        late = await connect(b, "late")
        notices = (await late.ok("join", room="main"))["snapshot"]["notices"]
        assert notices == live[-NOTICES_KEPT:]  # oldest first, each as it was sent
        assert notices[-1] == {
            "ev": "notice",
            "room": "main",
            "seq": live[-1]["seq"],
            "text": "from the desk",
            "from": "org",
        }


async def test_every_room_has_its_own_notices_and_a_new_room_none() -> None:
    async with running() as [hub]:
        org = await connect(hub, "org", Role.ORGANIZER)
        await create_room(org, "panel", "panel")
        await org.ok("announce", room="panel", text="on stage now")
        assert (await org.ok("join", room="main"))["snapshot"]["notices"] == []
        [notice] = (await org.ok("join", room="panel"))["snapshot"]["notices"]
        assert (notice["room"], notice["text"]) == ("panel", "on stage now")


async def test_breakout_broadcasts_are_notices_of_the_children() -> None:
    async with running() as [hub]:
        org = await connect(hub, "org", Role.ORGANIZER)
        await create_room(org, "ws", "workshop")
        await org.ok("breakout.open", room="ws", count=2, assign="self")
        sent = await org.ok("breakout.broadcast", room="ws", text="five minutes left")
        for child, seq in sent["rooms"].items():
            joined = await org.ok("join", room=child)
            assert joined["snapshot"]["notices"] == [
                {
                    "ev": "notice",
                    "room": child,
                    "seq": seq,
                    "text": "five minutes left",
                    "from": "org",
                }
            ]


async def test_a_notice_whose_log_write_fails_is_still_posted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running() as [hub]:
        mod = await connect(hub, "mod", Role.MODERATOR)
        await mod.ok("join", room="main")
        mod.collect()

        async def down(*args: Any, **kwargs: Any) -> None:
            raise BrokerUnavailable("redis went away")

        monkeypatch.setattr(hub.node.store, "log_append", down)
        ok = await mod.ok("announce", room="main", text="still here")
        [event] = [e for e in mod.collect() if e.get("ev") == "notice"]
        assert event["seq"] == ok["seq"]
        monkeypatch.undo()
        # Only the snapshot lost a line.
        assert (await mod.ok("join", room="main"))["snapshot"]["notices"] == []
        assert await hub.node.store.log_range(notices_key("main"), None, 10) == []
