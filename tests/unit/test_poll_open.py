"""The award (polls.feature with polls.awards): polls and partnerships declared in the rooms file,
the lobby's ``awards``, ``poll.open`` and its HTTP route, options with profiles in
``poll.create``, the results moment (the closing ``poll`` event reaching the lobby on every node)
and the exports with the profiles, on two in-process nodes sharing one memory backend.

The tally job never runs on its own here; timers are run by hand (``run_timers``).
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import polls.feature
from hub.app import Hub, create_app, event_rooms
from hub.broker import BrokerUnavailable
from tests.unit.helpers import Client, connect, new_session, running

LOBBY = "main"
PANEL = "panel-1"
ZOE = {
    "organisation": "Grid Co",
    "country": "DE",
    "image": "https://example.org/zoe.jpg",
}
ROOMS_FILE = """
[[rooms]]
id = "panel-1"
kind = "panel"
title = "Panel"

[[polls]]
id = "manager-2026"
question = "Cluster manager of the year?"
show = "closed"
allow_change = false
guests = false

[[polls.options]]
text = "Zoë Müller"
organisation = "Grid Co"
country = "de"
image = "https://example.org/zoe.jpg"

[[polls.options]]
text = "=Ada"
description = "Pioneer.\\nTwo lines."

[[polls.options]]
text = "Nobody"

[[polls]]
id = "timed"
question = "Quick one?"
options = ["yes", "no"]
duration = 30

[[polls]]
id = "panel-poll"
room = "panel-1"
question = "Panel question?"
options = ["x", "y"]

[[partnerships]]
title = "Hydrogen valleys"
members = ["North Cluster", "South Cluster"]
text = "Two clusters, one grid."
link = "https://example.org/h2"

[[partnerships]]
title = "Quiet one"
members = ["Solo"]
"""
AWARD_PROFILES = [ZOE, {"description": "Pioneer.\nTwo lines."}, {}]
PARTNERSHIPS = [
    {
        "title": "Hydrogen valleys",
        "members": ["North Cluster", "South Cluster"],
        "text": "Two clusters, one grid.",
        "link": "https://example.org/h2",
    },
    {"title": "Quiet one", "members": ["Solo"]},
]


@pytest.fixture(autouse=True)
def quiet_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tally job is registered with this interval when a hub is built: never in a test."""
    monkeypatch.setattr(polls.feature, "TALLY_INTERVAL", 3600.0)


@pytest.fixture
def rooms_file(tmp_path: Path) -> str:
    path = tmp_path / "rooms.toml"
    path.write_text(ROOMS_FILE, encoding="utf-8")
    return str(path)


@contextlib.asynccontextmanager
async def event(rooms_file: str, **changes: Any) -> AsyncIterator[list[Hub]]:
    """Two nodes with the rooms file's rooms, as ``hub serve --rooms`` starts them."""
    async with running("n1", "n2", rooms_file=rooms_file, **changes) as hubs:
        await hubs[0].rooms.directory.ensure(event_rooms(hubs[0].config))
        yield hubs


async def member(hub: Hub, user: str, role: str = "attendee", room: str = LOBBY) -> Client:
    """A session of ``user`` in ``room``, its join reply taken."""
    client = await connect(hub, user, role)
    await client.ok("join", room=room)
    client.collect()
    return client


def polls_events(client: Client) -> list[dict[str, Any]]:
    return [event for event in client.stored() if event["ev"] == "poll"]


def award_states(snapshot: dict[str, Any]) -> list[tuple[str, str]]:
    return [(poll["id"], poll["state"]) for poll in snapshot["awards"]["polls"]]


# --- the awards in the snapshot ------------------------------------------------------------------


async def test_the_lobby_shows_the_declared_candidates_and_partnerships(rooms_file: str) -> None:
    async with event(rooms_file) as [a, b]:
        snapshot = (await (await connect(b, "ann")).ok("join", room=LOBBY))["snapshot"]
        assert snapshot["awards"] == {
            "polls": [
                {
                    "id": "manager-2026",
                    "question": "Cluster manager of the year?",
                    "options": ["Zoë Müller", "=Ada", "Nobody"],
                    "profiles": AWARD_PROFILES,
                    "state": "declared",
                },
                {
                    "id": "timed",
                    "question": "Quick one?",
                    "options": ["yes", "no"],
                    "state": "declared",
                },
            ],
            "partnerships": PARTNERSHIPS,
        }
        assert snapshot["polls"] == [] and snapshot["closed_polls"] == []
        panel = (await (await connect(a, "bob")).ok("join", room=PANEL))["snapshot"]
        assert panel["awards"] == {
            "polls": [
                {
                    "id": "panel-poll",
                    "question": "Panel question?",
                    "options": ["x", "y"],
                    "state": "declared",
                }
            ],
            "partnerships": [],
        }
        org = await connect(a, "org", "organizer")
        await org.ok("room.create", room="panel-2", kind="panel", title="Other")
        other = (await (await connect(b, "cat")).ok("join", room="panel-2"))["snapshot"]
        assert "awards" not in other


async def test_without_a_rooms_file_the_lobby_has_empty_awards() -> None:
    async with running("n1") as [hub]:
        snapshot = (await (await connect(hub, "ann")).ok("join", room=LOBBY))["snapshot"]
        assert snapshot["awards"] == {"polls": [], "partnerships": []}
        org = await connect(hub, "org", "organizer")
        assert await org.err("poll.open", room=LOBBY, poll="manager-2026") == "not_found"


# --- poll.open -----------------------------------------------------------------------------------


async def test_opening_a_declared_poll_announces_it_on_every_node(rooms_file: str) -> None:
    async with event(rooms_file) as [a, b]:
        ann, bob = await member(a, "ann"), await member(b, "bob")
        org = await connect(a, "org", "organizer")
        reply = await org.ok("poll.open", room=LOBBY, poll="manager-2026")
        poll = reply["poll"]
        assert poll == {
            "id": "manager-2026",
            "question": "Cluster manager of the year?",
            "options": ["Zoë Müller", "=Ada", "Nobody"],
            "profiles": AWARD_PROFILES,
            "multi": False,
            "anonymous": True,
            "show": "closed",
            "allow_change": False,
            "guests": False,
            "state": "open",
        }
        for watcher in (ann, bob):
            assert polls_events(watcher) == [
                {"ev": "poll", "room": LOBBY, "seq": reply["seq"], "poll": poll}
            ]
        late = await connect(b, "late")
        snapshot = (await late.ok("join", room=LOBBY))["snapshot"]
        assert award_states(snapshot) == [("manager-2026", "open"), ("timed", "declared")]
        assert [view["poll"] for view in snapshot["polls"]] == [poll]
        assert (await late.ok("poll.get", room=LOBBY, poll="manager-2026"))["poll"] == poll


async def test_who_may_open_what_and_only_once(rooms_file: str) -> None:
    async with event(rooms_file) as [a, b]:
        attendee = await member(a, "ann")
        lobby_mod = await connect(a, "mod", "moderator")
        panel_mod = await connect(b, "pat", rooms={PANEL: "moderator"})
        org = await connect(b, "org", "organizer")
        assert await attendee.err("poll.open", room=LOBBY, poll="manager-2026") == "forbidden"
        assert await lobby_mod.err("poll.open", room=LOBBY, poll="manager-2026") == "forbidden"
        assert await panel_mod.err("poll.open", room=LOBBY, poll="manager-2026") == "forbidden"
        assert await org.err("poll.open", room=LOBBY, poll="nope") == "not_found"
        assert await org.err("poll.open", room=LOBBY, poll="panel-poll") == "not_found"
        assert await org.err("poll.open", room=PANEL, poll="manager-2026") == "not_found"
        assert await org.err("poll.open", room="nowhere", poll="manager-2026") == "not_found"
        assert await org.err("poll.open", room=LOBBY, poll="bad id") == "bad_request"
        assert await org.err("poll.open", room=LOBBY) == "bad_request"
        created = (await org.ok("poll.create", room=LOBBY, question="Q?", options=["a", "b"]))[
            "poll"
        ]
        assert await org.err("poll.open", room=LOBBY, poll=created["id"]) == "not_found"

        opened = await panel_mod.ok("poll.open", room=PANEL, poll="panel-poll")
        assert opened["poll"]["id"] == "panel-poll"
        assert await org.err("poll.open", room=PANEL, poll="panel-poll") == "conflict"
        await panel_mod.ok("poll.close", room=PANEL, poll="panel-poll")
        assert await panel_mod.err("poll.open", room=PANEL, poll="panel-poll") == "conflict"
        panel = (await (await connect(a, "bob")).ok("join", room=PANEL))["snapshot"]
        assert award_states(panel) == [("panel-poll", "closed")]
        assert [closed["id"] for closed in panel["closed_polls"]] == ["panel-poll"]
        # The lobby heard only of its own poll, nothing of the panel's.
        assert [event["poll"]["id"] for event in polls_events(attendee)] == [created["id"]]


async def test_an_open_that_failed_after_its_record_is_announced_by_the_next_try(
    rooms_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with event(rooms_file) as [a, b]:
        watcher = await member(b, "ann")
        org_a, org_b = await connect(a, "org", "organizer"), await connect(b, "kim", "organizer")
        original = a.node.publish_event_once
        failures: list[str] = []

        async def failing(*args: Any, **kwargs: Any) -> tuple[int, bool]:
            if not failures:
                failures.append(args[1])
                raise BrokerUnavailable("injected")
            return await original(*args, **kwargs)

        monkeypatch.setattr(a.node, "publish_event_once", failing)
        assert await org_a.err("poll.open", room=LOBBY, poll="manager-2026") == "unavailable"
        assert failures == ["poll"] and polls_events(watcher) == []
        assert await org_b.err("poll.open", room=LOBBY, poll="manager-2026") == "conflict"
        [announced] = polls_events(watcher)
        assert (announced["poll"]["id"], announced["poll"]["state"]) == ("manager-2026", "open")
        assert await org_a.err("poll.open", room=LOBBY, poll="manager-2026") == "conflict"
        assert polls_events(watcher) == []  # announced once


# --- the results moment --------------------------------------------------------------------------


async def test_the_reveal_reaches_the_lobby_on_every_node_at_once(rooms_file: str) -> None:
    async with event(rooms_file, guests=True) as [a, b]:
        org = await connect(a, "org", "organizer")
        await org.ok("poll.open", room=LOBBY, poll="manager-2026")
        voters = [await member(a if i % 2 else b, f"v{i}") for i in range(5)]
        for voter, choice in zip(voters, [0, 0, 1, 0, 2], strict=True):
            assert await voter.ok("poll.vote", room=LOBBY, poll="manager-2026", choice=choice) == {}
        # One vote per person, whatever the node: no change allowed.
        again = await member(a if voters[0].hub is b else b, "v0")
        assert await again.err("poll.vote", room=LOBBY, poll="manager-2026", choice=1) == (
            "conflict"
        )
        guest = Client(b, new_session(b))
        await guest.ok("hello", name="Visitor")
        await guest.ok("join", room=LOBBY)
        assert await guest.err("poll.vote", room=LOBBY, poll="manager-2026", choice=0) == (
            "forbidden"
        )
        hidden = await voters[0].ok("poll.get", room=LOBBY, poll="manager-2026")
        assert "counts" not in hidden and hidden["mine"] == 0
        for voter in (*voters, again):
            voter.collect()

        closed = await org.ok("poll.close", room=LOBBY, poll="manager-2026")
        assert closed["poll"]["state"] == "closed"
        assert (closed["poll"]["counts"], closed["poll"]["voters"]) == ([3, 1, 1], 5)
        assert closed["poll"]["profiles"] == AWARD_PROFILES
        for voter in (*voters, again):
            assert polls_events(voter) == [{"ev": "poll", "room": LOBBY, **closed}]
        late = (await (await connect(b, "late")).ok("join", room=LOBBY))["snapshot"]
        assert late["closed_polls"] == [closed["poll"]]
        assert award_states(late) == [("manager-2026", "closed"), ("timed", "declared")]
        assert await org.err("poll.close", room=LOBBY, poll="manager-2026") == "closed"


async def test_a_declared_poll_with_a_duration_closes_on_its_timer(rooms_file: str) -> None:
    async with event(rooms_file) as [a, b]:
        watcher = await member(b, "ann")
        org = await connect(a, "org", "organizer")
        poll = (await org.ok("poll.open", room=LOBBY, poll="timed"))["poll"]
        assert poll["closes_at"] == pytest.approx(a.polls.clock() + 30, abs=5)
        mark = (LOBBY, "timed")
        assert a.polls.timers[mark] == b.polls.timers[mark] == poll["closes_at"]
        await watcher.ok("poll.vote", room=LOBBY, poll="timed", choice=1)
        watcher.collect()
        await b.polls.run_timers(poll["closes_at"])
        [closing] = polls_events(watcher)
        assert (closing["poll"]["state"], closing["poll"]["counts"]) == ("closed", [0, 1])
        await a.polls.run_timers(poll["closes_at"] + 1)
        assert polls_events(watcher) == []


# --- poll.create with profiles -------------------------------------------------------------------


async def test_poll_create_takes_options_with_profiles(rooms_file: str) -> None:
    async with event(rooms_file) as [a, b]:
        watcher = await member(b, "bob", room=PANEL)
        mod = await connect(a, "mod", rooms={PANEL: "moderator"})
        options = [
            {"text": " Ada ", "organisation": "Analytical Engines", "country": "gb"},
            "Bob",
            {"text": "Cat", "description": "<b>not bold</b>", "image": "http://x.org/c.png"},
        ]
        reply = await mod.ok("poll.create", room=PANEL, question="Who?", options=options)
        poll = reply["poll"]
        assert poll["options"] == ["Ada", "Bob", "Cat"]
        assert poll["profiles"] == [
            {"organisation": "Analytical Engines", "country": "GB"},
            {},
            {"description": "<b>not bold</b>", "image": "http://x.org/c.png"},
        ]
        assert polls_events(watcher) == [{"ev": "poll", "room": PANEL, **reply}]
        plain = (await mod.ok("poll.create", room=PANEL, question="Q?", options=["a", "b"]))["poll"]
        assert "profiles" not in plain

        bad = ["a", "b", {"text": "c", "country": "EU"}]
        reply_err = await mod.call("poll.create", room=PANEL, question="Q?", options=bad)
        assert reply_err["err"]["code"] == "bad_request"
        assert reply_err["err"]["msg"].startswith("options[2].country: ")
        unknown = ["a", {"text": "b", "html": "<i>"}]
        reply_err = await mod.call("poll.create", room=PANEL, question="Q?", options=unknown)
        assert reply_err["err"]["msg"].startswith("options[1].html: ")


# --- HTTP ----------------------------------------------------------------------------------------


async def test_organizers_open_a_declared_poll_over_http(rooms_file: str) -> None:
    async with event(rooms_file) as [a, b]:
        watcher = await member(b, "ann")
        panel_watcher = await member(b, "bob", room=PANEL)
        mint = a.authority.mint
        org = {"Authorization": f"Bearer {mint(user='org', name='O', role='organizer', ttl=None)}"}
        lobby_mod = {
            "Authorization": f"Bearer {mint(user='m', name='M', role='moderator', ttl=None)}"
        }
        panel_token = mint(
            user="p", name="P", role="attendee", rooms={PANEL: "moderator"}, ttl=None
        )
        panel_mod = {"Authorization": f"Bearer {panel_token}"}
        transport = httpx.ASGITransport(app=create_app(a.config, a))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            url = f"/api/rooms/{LOBBY}/polls/manager-2026/open"
            assert (await http.post(url)).status_code == 401
            assert (await http.post(url, headers=lobby_mod)).status_code == 403
            assert (await http.post(url, headers=panel_mod)).status_code == 403
            assert (await http.get(url, headers=org)).status_code == 405
            missing = await http.post(f"/api/rooms/{LOBBY}/polls/nope/open", headers=org)
            assert missing.status_code == 404 and missing.json()["err"]["code"] == "not_found"
            assert (
                await http.post("/api/rooms/nowhere/polls/manager-2026/open", headers=org)
            ).status_code == 404

            opened = await http.post(url, headers=org)
            assert opened.status_code == 201
            body = opened.json()
            assert set(body) == {"poll", "seq"}
            assert (body["poll"]["id"], body["poll"]["profiles"]) == (
                "manager-2026",
                AWARD_PROFILES,
            )
            assert polls_events(watcher) == [{"ev": "poll", "room": LOBBY, **body}]
            again = await http.post(url, headers=org)
            assert again.status_code == 409 and again.json()["err"]["code"] == "conflict"

            panel = await http.post(f"/api/rooms/{PANEL}/polls/panel-poll/open", headers=panel_mod)
            assert panel.status_code == 201
            assert polls_events(panel_watcher) == [{"ev": "poll", "room": PANEL, **panel.json()}]


async def test_the_exports_carry_the_profiles(rooms_file: str) -> None:
    async with event(rooms_file) as [a, b]:
        org = await connect(a, "org", "organizer")
        await org.ok("poll.open", room=LOBBY, poll="manager-2026")
        for i, choice in enumerate([0, 1, 0]):
            voter = await member(b, f"v{i}")
            await voter.ok("poll.vote", room=LOBBY, poll="manager-2026", choice=choice)
        await org.ok("poll.close", room=LOBBY, poll="manager-2026")
        token = a.authority.mint(user="org", name="O", role="organizer", ttl=None)
        auth = {"Authorization": f"Bearer {token}"}
        transport = httpx.ASGITransport(app=create_app(a.config, a))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            url = f"/api/rooms/{LOBBY}/polls/manager-2026"
            body = (await http.get(url, headers=auth)).json()
            assert body["poll"]["profiles"] == AWARD_PROFILES
            assert body["options"] == [
                {"option": "Zoë Müller", "count": 2, **ZOE},
                {"option": "=Ada", "count": 1, "description": "Pioneer.\nTwo lines."},
                {"option": "Nobody", "count": 0},
            ]
            text = (await http.get(url + ".csv", headers=auth)).text
        assert list(csv.reader(io.StringIO(text))) == [
            ["option", "count", "organisation", "country", "description", "image"],
            ["Zoë Müller", "2", "Grid Co", "DE", "", "https://example.org/zoe.jpg"],
            ["'=Ada", "1", "", "", "Pioneer.\nTwo lines.", ""],
            ["Nobody", "0", "", "", "", ""],
            ["voters", "3", "", "", "", ""],
        ]
