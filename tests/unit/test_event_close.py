"""Closing the event (rooms.event_state, ``POST /api/event/close``), in process, on two nodes
sharing one memory backend."""

from __future__ import annotations

import httpx
from helpers import Client, connect, new_session, running, token

from hub.app import create_app
from hub.auth import Role
from rooms.event_state import EVENT_CLOSED_KEY
from rooms.feature import EVENT_CLOSED_TEXT
from rooms.model import LOBBY


async def test_an_organizer_closes_the_event_once_and_every_node_learns_it() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        ada = await connect(hub1, "ada")
        bob = await connect(hub2, "bob")
        await ada.ok("join", room=LOBBY)
        await bob.ok("dm.send", to="ada", text="see you later")
        org = hub1.authority.mint(user="org", name="Org", role="organizer", ttl=None)
        attendee = hub1.authority.mint(user="ada", name="Ada", role="attendee", ttl=None)
        transport = httpx.ASGITransport(app=create_app(hub1.config, hub1))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            url = "/api/event/close"
            assert (await http.post(url)).status_code == 401
            denied = await http.post(url, headers={"Authorization": f"Bearer {attendee}"})
            assert denied.status_code == 403
            auth = {"Authorization": f"Bearer {org}"}
            bad = await http.post(url, headers=auth, json={"text": ""})
            assert bad.status_code == 400 and bad.json()["err"]["code"] == "bad_request"
            assert await hub1.node.store.get(EVENT_CLOSED_KEY) is None  # nothing half-done
            first = await http.post(url, headers=auth, json={"text": "Thanks, all!"})
            again = await http.post(url, headers=auth)
        assert first.status_code == 200 and first.json()["closed"] is True
        assert again.status_code == 200 and again.json() == {
            "closed_at": first.json()["closed_at"],
            "closed": False,
        }
        # The notice is stored once in the lobby, however often the close was asked for.
        events = ada.collect()
        assert [e["text"] for e in events if e.get("ev") == "event.closed"] == ["Thanks, all!"]
        assert [e["text"] for e in events if e.get("ev") == "notice"] == ["Thanks, all!"]
        # The other node learns it at its next look (a timer, each second; called here), and
        # tells its people.
        assert not hub2.rooms.event.is_closed
        await hub2.rooms.event.poll()
        assert hub2.rooms.event.is_closed
        told = [e for e in bob.collect() if e.get("ev") == "event.closed"]
        assert told == [
            {"ev": "event.closed", "closed_at": first.json()["closed_at"], "text": "Thanks, all!"}
        ]
        await hub2.rooms.event.poll()
        assert not [e for e in bob.collect() if e.get("ev") == "event.closed"]  # once
        assert await bob.err("dm.send", to="ada", text="too late") == "closed"
        # History stays readable; organizers may still write.
        assert (await bob.ok("dm.history", **{"with": "ada"}))["messages"]
        boss = await connect(hub2, "boss", Role.ORGANIZER)
        await boss.ok("dm.send", to="ada", text="the recordings are online")
        # A new session hears of it in its hello.
        late = Client(hub2, new_session(hub2))
        hello = await late.ok("hello", token=token(hub2, "late"))
        assert hello["event"] == {"closed_at": first.json()["closed_at"]}
        joined = await late.ok("join", room=LOBBY)
        assert joined["snapshot"]["notices"][-1]["text"] == "Thanks, all!"


async def test_a_close_hook_that_failed_runs_again_at_the_next_look() -> None:
    async with running("n1") as [hub]:
        runs: list[str] = []

        async def flaky(record: object) -> None:
            runs.append("tried")
            if len(runs) == 1:
                raise ConnectionError("the broker blinked")

        async def steady(record: object) -> None:
            runs.append("steady")

        hub.rooms.event.on_close(flaky)
        hub.rooms.event.on_close(steady)
        _, first = await hub.rooms.event.close("org", "bye")
        assert first and runs == ["tried", "steady"]
        await hub.rooms.event.poll()
        assert runs == ["tried", "steady", "tried"]
        await hub.rooms.event.poll()
        assert runs == ["tried", "steady", "tried"]  # done: not again


async def test_a_close_without_text_posts_the_hubs_own_notice_with_its_key() -> None:
    async with running("n1") as [hub]:
        ada = await connect(hub, "ada")
        await ada.ok("join", room=LOBBY)
        org = hub.authority.mint(user="org", name="Org", role="organizer", ttl=None)
        transport = httpx.ASGITransport(app=create_app(hub.config, hub))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            closed = await http.post("/api/event/close", headers={"Authorization": f"Bearer {org}"})
        assert closed.status_code == 200
        events = ada.collect()
        (told,) = [e for e in events if e.get("ev") == "event.closed"]
        (notice,) = [e for e in events if e.get("ev") == "notice"]
        for event in (told, notice):
            assert (event["text"], event["key"]) == (EVENT_CLOSED_TEXT, "event.closed")
        joined = await ada.ok("join", room=LOBBY)
        assert joined["snapshot"]["notices"][-1]["key"] == "event.closed"


async def test_a_notice_an_organizer_wrote_has_no_key() -> None:
    async with running("n1") as [hub]:
        ada = await connect(hub, "ada")
        await ada.ok("join", room=LOBBY)
        await hub.rooms.close_event("org", "Thanks, all!")
        events = ada.collect()
        assert [e for e in events if "key" in e] == []
        assert [e["text"] for e in events if e.get("ev") == "notice"] == ["Thanks, all!"]
