"""Polls (polls.feature): the rules of creating, voting, closing and reading polls, who sees
tallies per ``show``, the batched ``poll.tally``, timers closing a poll once across nodes, the
join snapshot and the organizers' export, on two in-process nodes sharing one memory backend.

The periodic job never runs on its own here: tests call ``flush_tallies`` and ``run_timers``
directly, and move each feature's clocks (``clock`` for poll times, ``ticks`` for the throttle).
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from helpers import Client, connect, new_session, running

import polls.feature
from hub.app import Hub, create_app
from hub.codec import pack, unpack
from polls.export import export_csv, export_map
from polls.model import Poll, Show
from polls.options import OptionProfile

ROOM = "panel-1"
LOBBY = "main"


@pytest.fixture(autouse=True)
def quiet_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """The job is registered with this interval when a hub is built: never within a test."""
    monkeypatch.setattr(polls.feature, "TALLY_INTERVAL", 3600.0)


class Ticks:
    """A throttle clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def nodes() -> AsyncIterator[tuple[Hub, Hub]]:
    """Two started nodes on one memory backend, with the panel ``ROOM`` and fake tick clocks."""
    async with running("n1", "n2") as (a, b):
        ticks = Ticks()
        a.polls.ticks = b.polls.ticks = ticks
        org = await connect(a, "org", "organizer")
        await org.ok("room.create", room=ROOM, kind="panel", title="Panel")
        yield a, b


async def member(hub: Hub, user: str, role: str = "attendee", room: str = ROOM) -> Client:
    """A session of ``user`` in ``room``, its join reply already taken."""
    client = await connect(hub, user, role)
    await client.ok("join", room=room)
    client.collect()
    return client


def of(client: Client, ev: str) -> list[dict[str, Any]]:
    """The events named ``ev`` the client received since the last call (others are dropped)."""
    return [event for event in client.collect() if event.get("ev") == ev]


async def create(client: Client, room: str = ROOM, **fields: Any) -> dict[str, Any]:
    """Open a poll (three options unless told); returns the reply's ``poll``."""
    fields.setdefault("question", "Best talk?")
    fields.setdefault("options", ["a", "b", "c"])
    reply = await client.ok("poll.create", room=room, **fields)
    poll: dict[str, Any] = reply["poll"]
    return poll


async def flush(*hubs: Hub, step: float = 1.0) -> None:
    """One run of the tally job on each hub (in order: voting nodes first), a throttle window
    apart from the previous run."""
    for hub in hubs:
        hub.polls.ticks.now += step  # type: ignore[attr-defined]
        await hub.polls.flush_tallies()


def tallies(client: Client, poll: str) -> list[tuple[list[int], int]]:
    return [(e["counts"], e["voters"]) for e in of(client, "poll.tally") if e["poll"] == poll]


# --- creating -------------------------------------------------------------------------------------


async def test_create_needs_a_moderator_and_in_the_lobby_an_organizer(
    nodes: tuple[Hub, Hub],
) -> None:
    a, b = nodes
    watcher_a, watcher_b = await member(a, "ada"), await member(b, "bob")
    assert await watcher_a.err("poll.create", room=ROOM, question="Q", options=["x", "y"]) == (
        "forbidden"
    )
    mod = await connect(a, "mod", "moderator")  # the role is enough: no join needed
    reply = await mod.ok("poll.create", room=ROOM, question=" Lunch? ", options=["yes", "no"])
    poll = reply["poll"]
    assert poll == {
        "id": poll["id"],
        "question": "Lunch?",
        "options": ["yes", "no"],
        "multi": False,
        "anonymous": True,
        "show": "live",
        "allow_change": True,
        "guests": True,
        "state": "open",
    }
    for watcher in (watcher_a, watcher_b):
        assert watcher.stored() == [{"ev": "poll", "room": ROOM, "seq": reply["seq"], "poll": poll}]
    claimed = await connect(b, "cat", rooms={ROOM: "moderator"})
    await create(claimed)

    assert await mod.err("poll.create", room=LOBBY, question="Award?", options=["x", "y"]) == (
        "forbidden"
    )
    org = await connect(b, "org", "organizer")
    award = await create(org, LOBBY, show="closed", allow_change=False, guests=False, duration=60)
    assert award["show"] == "closed" and award["closes_at"] > time.time()
    assert (award["allow_change"], award["guests"]) == (False, False)

    assert await mod.err("poll.create", room=ROOM, question="Q", options=["only"]) == "bad_request"
    assert await mod.err(
        "poll.create", room=ROOM, question="Q", options=["x", "y"], duration=1
    ) == ("bad_request")
    assert await mod.err("poll.create", room="nope", question="Q", options=["x", "y"]) == (
        "not_found"
    )


# --- voting ---------------------------------------------------------------------------------------


async def test_vote_rules_and_one_ballot_per_user_across_nodes(nodes: tuple[Hub, Hub]) -> None:
    a, b = nodes
    mod = await member(a, "mod", "moderator")
    poll = (await create(mod))["id"]
    bob_a, bob_b = await member(a, "bob"), await member(b, "bob")
    outsider = await connect(b, "eve")
    assert await outsider.err("poll.vote", room=ROOM, poll=poll, choice=0) == "forbidden"
    assert await bob_a.err("poll.vote", room=ROOM, poll="nope", choice=0) == "not_found"
    assert await bob_a.err("poll.vote", room=ROOM, poll=7, choice=0) == "bad_request"
    assert await bob_a.err("poll.vote", room=ROOM, poll=poll, choice=3) == "bad_request"
    assert await bob_a.err("poll.vote", room=ROOM, poll=poll, choice=[0]) == "bad_request"

    assert await bob_a.ok("poll.get", room=ROOM, poll=poll) == {
        "poll": (await mod.ok("poll.get", room=ROOM, poll=poll))["poll"],
        "counts": [0, 0, 0],
        "voters": 0,
        "mine": None,
    }
    assert await bob_a.ok("poll.vote", room=ROOM, poll=poll, choice=1) == {}
    assert await bob_b.ok("poll.vote", room=ROOM, poll=poll, choice=2) == {}  # replaces it
    got = await bob_a.ok("poll.get", room=ROOM, poll=poll)
    assert (got["counts"], got["voters"], got["mine"]) == ([0, 0, 1], 1, 2)

    fixed = (await create(mod, allow_change=False, multi=2))["id"]
    assert await bob_b.err("poll.vote", room=ROOM, poll=fixed, choice=1) == "bad_request"
    assert await bob_b.err("poll.vote", room=ROOM, poll=fixed, choice=[0, 1, 2]) == "bad_request"
    assert await bob_b.ok("poll.vote", room=ROOM, poll=fixed, choice=[2, 0]) == {}
    assert await bob_a.err("poll.vote", room=ROOM, poll=fixed, choice=[1]) == "conflict"
    got = await bob_a.ok("poll.get", room=ROOM, poll=fixed)
    assert (got["counts"], got["voters"], got["mine"]) == ([1, 0, 1], 1, [0, 2])


async def test_concurrent_ballots_of_one_user_count_once(nodes: tuple[Hub, Hub]) -> None:
    a, b = nodes
    mod = await member(a, "mod", "moderator")
    poll = (await create(mod, allow_change=False))["id"]
    users = [f"u{i}" for i in range(20)]
    pairs = [(await member(a, user), await member(b, user)) for user in users]
    replies = await asyncio.gather(
        *(
            c.call("poll.vote", room=ROOM, poll=poll, choice=i % 3)
            for p in pairs
            for i, c in enumerate(p)
        )
    )
    outcomes = sorted("ok" if "ok" in r else r["err"]["code"] for r in replies)
    assert outcomes == ["conflict"] * 20 + ["ok"] * 20
    got = await mod.ok("poll.get", room=ROOM, poll=poll)
    assert got["voters"] == 20 and sum(got["counts"]) == 20


async def test_guests_vote_only_where_the_poll_lets_them() -> None:
    async with running("n1", guests=True) as (hub,):
        mod = await member(hub, "mod", "moderator", LOBBY)
        org = await connect(hub, "org", "organizer")
        open_poll = (await create(org, LOBBY))["id"]
        election = (await create(org, LOBBY, show="closed", allow_change=False, guests=False))["id"]
        guest = Client(hub, new_session(hub))
        await guest.ok("hello", name="Visitor")
        await guest.ok("join", room=LOBBY)
        assert await guest.ok("poll.vote", room=LOBBY, poll=open_poll, choice=0) == {}
        assert await guest.err("poll.vote", room=LOBBY, poll=election, choice=0) == "forbidden"
        assert await mod.ok("poll.vote", room=LOBBY, poll=election, choice=0) == {}
        assert await mod.err("poll.vote", room=LOBBY, poll=election, choice=1) == "conflict"


# --- closing --------------------------------------------------------------------------------------


async def test_close_once_then_votes_are_closed(nodes: tuple[Hub, Hub]) -> None:
    a, b = nodes
    mod_a, mod_b = await member(a, "mod", "moderator"), await member(b, "kim", "moderator")
    voter = await member(b, "bob")
    poll = (await create(mod_a))["id"]
    await voter.ok("poll.vote", room=ROOM, poll=poll, choice=2)
    assert await voter.err("poll.close", room=ROOM, poll=poll) == "forbidden"
    voter.collect()
    closes = await asyncio.gather(
        mod_a.call("poll.close", room=ROOM, poll=poll),
        mod_b.call("poll.close", room=ROOM, poll=poll),
    )
    assert sorted("ok" if "ok" in r else r["err"]["code"] for r in closes) == ["closed", "ok"]
    winner = next(r["ok"] for r in closes if "ok" in r)
    assert winner["poll"]["state"] == "closed"
    assert (winner["poll"]["counts"], winner["poll"]["voters"]) == ([0, 0, 1], 1)
    assert voter.stored() == [{"ev": "poll", "room": ROOM, **winner}]
    assert await voter.err("poll.vote", room=ROOM, poll=poll, choice=0) == "closed"
    assert await mod_b.err("poll.close", room=ROOM, poll=poll) == "closed"
    got = await voter.ok("poll.get", room=ROOM, poll=poll)
    assert got["poll"]["state"] == "closed" and got["mine"] == 2

    org = await connect(a, "org", "organizer")
    election = (await create(org, LOBBY))["id"]
    assert (
        await (await connect(a, "m2", "moderator")).err("poll.close", room=LOBBY, poll=election)
        == "forbidden"
    )
    assert (await org.ok("poll.close", room=LOBBY, poll=election))["poll"]["state"] == "closed"


async def test_timers_close_a_poll_once_across_nodes(nodes: tuple[Hub, Hub]) -> None:
    a, b = nodes
    mod = await member(a, "mod", "moderator")
    watcher = await member(b, "bob")
    poll = await create(mod, duration=5)
    closes_at = poll["closes_at"]
    mark = (ROOM, poll["id"])
    assert a.polls.timers[mark] == b.polls.timers[mark] == closes_at
    await watcher.ok("poll.vote", room=ROOM, poll=poll["id"], choice=0)
    watcher.collect()

    await asyncio.gather(a.polls.run_timers(closes_at - 0.1), b.polls.run_timers(closes_at - 0.1))
    assert watcher.stored() == []
    await asyncio.gather(a.polls.run_timers(closes_at), b.polls.run_timers(closes_at))
    closed = watcher.stored()
    assert [(e["ev"], e["poll"]["state"], e["poll"]["counts"]) for e in closed] == [
        ("poll", "closed", [1, 0, 0])
    ]
    assert mark not in a.polls.timers and mark not in b.polls.timers
    await a.polls.run_timers(closes_at + 10)
    assert watcher.stored() == []
    got = await watcher.ok("poll.get", room=ROOM, poll=poll["id"])
    assert got["poll"]["state"] == "closed"
    exported, _, _ = await b.polls.export(ROOM, poll["id"])
    assert exported.closed_at == closes_at


async def test_a_vote_after_closes_at_is_closed_and_closes_the_poll(
    nodes: tuple[Hub, Hub],
) -> None:
    a, b = nodes
    mod = await member(a, "mod", "moderator")
    voter = await member(b, "bob")
    poll = await create(mod, duration=5)
    voter.collect()
    b.polls.clock = lambda: poll["closes_at"] + 0.5
    assert await voter.err("poll.vote", room=ROOM, poll=poll["id"], choice=0) == "closed"
    [event] = voter.stored()
    assert event["poll"]["state"] == "closed"
    assert (event["poll"]["counts"], event["poll"]["voters"]) == ([0, 0, 0], 0)
    # The timer of the other node finds it closed: nothing more is published.
    await a.polls.run_timers(poll["closes_at"] + 1)
    assert voter.stored() == []
    got = await mod.ok("poll.get", room=ROOM, poll=poll["id"])
    assert got["poll"]["state"] == "closed"


async def test_a_node_loads_the_timers_of_a_room_when_someone_joins_it(
    nodes: tuple[Hub, Hub],
) -> None:
    a, b = nodes
    mod = await connect(a, "mod", "moderator")
    poll = await create(mod, duration=60)
    mark = (ROOM, poll["id"])
    assert a.polls.timers == {mark: poll["closes_at"]}
    assert b.polls.timers == {}  # b follows no room: it heard nothing
    await member(b, "bob")
    assert b.polls.timers == {mark: poll["closes_at"]}


# --- tallies and visibility -----------------------------------------------------------------------


async def test_tallies_are_batched_and_throttled(nodes: tuple[Hub, Hub]) -> None:
    a, b = nodes
    mod = await member(a, "mod", "moderator")
    poll = (await create(mod))["id"]
    voters = [await member(a if i % 2 else b, f"u{i}") for i in range(6)]
    watcher = await member(b, "bob")
    for i, voter in enumerate(voters):
        await voter.ok("poll.vote", room=ROOM, poll=poll, choice=i % 2)
    await flush(a, b)
    assert tallies(watcher, poll) == [([3, 3, 0], 6)]
    assert tallies(mod, poll) == [([3, 3, 0], 6)]
    await flush(a, b)
    assert tallies(watcher, poll) == []  # no change, no tally

    # At most 4 a second: a fifth change within the second waits, then goes out.
    for i in range(5):
        await voters[0].ok("poll.vote", room=ROOM, poll=poll, choice=i % 3)
        await flush(b, a, step=0.05)
    seen = tallies(watcher, poll)
    assert len(seen) == 4 and seen[-1] == ([3, 3, 0], 6)  # the fifth change waits...
    await flush(b, a, step=0.05)
    assert tallies(watcher, poll) == []
    await flush(b, a, step=1.0)
    assert tallies(watcher, poll) == [([2, 4, 0], 6)]  # ... and goes out once the second is over


@pytest.mark.parametrize("show", ["live", "closed", "never"])
async def test_who_sees_tallies_per_show(nodes: tuple[Hub, Hub], show: str) -> None:
    a, b = nodes
    mod_a, mod_b = await member(a, "mod", "moderator"), await member(b, "kim", "moderator")
    ada, bob = await member(a, "ada"), await member(b, "bob")
    poll = (await create(mod_a, show=show))["id"]
    await ada.ok("poll.vote", room=ROOM, poll=poll, choice=1)
    await bob.ok("poll.vote", room=ROOM, poll=poll, choice=1)
    await flush(a, b)
    live = show == "live"
    for moderator in (mod_a, mod_b):
        assert tallies(moderator, poll) == [([0, 2, 0], 2)]
        got = await moderator.ok("poll.get", room=ROOM, poll=poll)
        assert (got["counts"], got["voters"]) == ([0, 2, 0], 2)
    for attendee in (ada, bob):
        assert tallies(attendee, poll) == ([([0, 2, 0], 2)] if live else [])
        got = await attendee.ok("poll.get", room=ROOM, poll=poll)
        assert ("counts" in got, "voters" in got, got["mine"]) == (live, live, 1)

    closed = (await mod_b.ok("poll.close", room=ROOM, poll=poll))["poll"]
    shown = show != "never"
    assert ("counts" in closed, "voters" in closed) == (shown, shown)
    for attendee in (ada, bob):
        [event] = [e for e in attendee.stored() if e["ev"] == "poll"]
        assert event["poll"] == closed
        got = await attendee.ok("poll.get", room=ROOM, poll=poll)
        assert ("counts" in got) == shown
    got = await mod_a.ok("poll.get", room=ROOM, poll=poll)
    assert (got["counts"], got["voters"]) == ([0, 2, 0], 2)


# --- snapshot -------------------------------------------------------------------------------------


async def test_the_join_snapshot_lists_open_polls_as_the_caller_sees_them(
    nodes: tuple[Hub, Hub],
) -> None:
    a, b = nodes
    mod = await member(a, "mod", "moderator")
    live = (await create(mod, question="Live?"))["id"]
    secret = (await create(mod, question="Secret?", show="closed", multi=True))["id"]
    gone = (await create(mod, question="Gone?"))["id"]
    await mod.ok("poll.close", room=ROOM, poll=gone)
    bob = await member(a, "bob")
    await bob.ok("poll.vote", room=ROOM, poll=live, choice=2)
    await bob.ok("poll.vote", room=ROOM, poll=secret, choice=[0, 1])

    bob_b = await connect(b, "bob")
    polls_of_bob = (await bob_b.ok("join", room=ROOM))["snapshot"]["polls"]
    assert [
        (p["poll"]["id"], p.get("counts"), p.get("voters"), p["mine"]) for p in polls_of_bob
    ] == [
        (live, [0, 0, 1], 1, 2),
        (secret, None, None, [0, 1]),
    ]
    assert polls_of_bob[0]["poll"]["question"] == "Live?"
    kim = await connect(b, "kim", "moderator")
    polls_of_kim = (await kim.ok("join", room=ROOM))["snapshot"]["polls"]
    assert [(p["poll"]["id"], p["counts"], p["voters"], p["mine"]) for p in polls_of_kim] == [
        (live, [0, 0, 1], 1, None),
        (secret, [1, 1, 0], 1, None),
    ]


# --- export ---------------------------------------------------------------------------------------


def _poll(options: tuple[str, ...]) -> Poll:
    return Poll("p1", ROOM, "Q?", options, False, True, Show.NEVER, True, True, "org", 10.0, None)


def test_export_holds_counts_only_and_defuses_formulas() -> None:
    poll = _poll(("Yes", "=cmd()", 'say "hi", ok'))
    exported = export_map(poll, [3, 1, 0], 4)
    assert exported == {
        "poll": {**poll.describe(), "opened_at": 10.0, "closed_at": None},
        "counts": [3, 1, 0],
        "voters": 4,
        "options": [
            {"option": "Yes", "count": 3},
            {"option": "=cmd()", "count": 1},
            {"option": 'say "hi", ok', "count": 0},
        ],
    }
    rows = list(csv.reader(io.StringIO(export_csv(poll, [3, 1, 0], 4))))
    assert rows == [
        ["option", "count", "organisation", "country", "description", "image"],
        ["Yes", "3", "", "", "", ""],
        ["'=cmd()", "1", "", "", "", ""],
        ['say "hi", ok', "0", "", "", "", ""],
        ["voters", "4", "", "", "", ""],
    ]


def test_export_carries_the_profiles_and_defuses_every_text_cell() -> None:
    profiles = (
        OptionProfile(organisation="-Org", description="@home\n=second line"),
        OptionProfile(),
        OptionProfile(country="DE", image="https://x.org/+.png"),
    )
    poll = replace(_poll(("+A", "B", "C")), profiles=profiles)
    exported = export_map(poll, [1, 0, 2], 3)
    assert exported["poll"]["profiles"] == [p.describe() for p in profiles]
    assert exported["options"] == [
        {"option": "+A", "count": 1, "organisation": "-Org", "description": "@home\n=second line"},
        {"option": "B", "count": 0},
        {"option": "C", "count": 2, "country": "DE", "image": "https://x.org/+.png"},
    ]
    rows = list(csv.reader(io.StringIO(export_csv(poll, [1, 0, 2], 3))))
    assert rows == [
        ["option", "count", "organisation", "country", "description", "image"],
        ["'+A", "1", "'-Org", "", "'@home\n=second line", ""],
        ["B", "0", "", "", "", ""],
        ["C", "2", "", "DE", "", "https://x.org/+.png"],
        ["voters", "3", "", "", "", ""],
    ]


async def test_http_export_needs_a_moderator_of_the_room(nodes: tuple[Hub, Hub]) -> None:
    a, _ = nodes
    mod = await member(a, "mod", "moderator")
    poll = (await create(mod, show="never"))["id"]
    await (await member(a, "secret-voter")).ok("poll.vote", room=ROOM, poll=poll, choice=1)
    app = create_app(a.config, a)
    org_token = a.authority.mint(user="org", name="Org", role="organizer", ttl=None)
    mod_token = a.authority.mint(user="mod", name="Mod", role="moderator", ttl=None)
    speaker_token = a.authority.mint(user="spk", name="Spk", role="speaker", ttl=None)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
        url = f"/api/rooms/{ROOM}/polls/{poll}"
        assert (await http.get(url)).status_code == 401
        assert (await http.get(url + ".csv")).status_code == 401
        speaker_auth = {"Authorization": f"Bearer {speaker_token}"}
        assert (await http.get(url, headers=speaker_auth)).status_code == 403
        mod_auth = {"Authorization": f"Bearer {mod_token}"}
        assert (await http.get(url + ".csv", headers=mod_auth)).status_code == 200
        auth = {"Authorization": f"Bearer {org_token}"}
        assert (await http.get(f"/api/rooms/{ROOM}/polls/nope", headers=auth)).status_code == 404
        assert (await http.get(f"/api/rooms/nope/polls/{poll}", headers=auth)).status_code == 404
        assert (await http.get(f"/api/rooms/{ROOM}/polls/nope.csv", headers=auth)).status_code == (
            404
        )
        reply = await http.get(url, headers=auth)
        assert reply.status_code == 200
        body = reply.json()
        assert (body["counts"], body["voters"], body["poll"]["state"]) == ([0, 1, 0], 1, "open")
        assert "secret-voter" not in reply.text
        reply = await http.get(url + ".csv", headers=auth)
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/csv")
        assert reply.text == (
            "option,count,organisation,country,description,image\r\n"
            "a,0,,,,\r\nb,1,,,,\r\nc,0,,,,\r\nvoters,1,,,,\r\n"
        )


# --- closed polls in the join snapshot ------------------------------------------------------------


async def test_a_late_joiner_sees_the_closed_election_with_its_result(
    nodes: tuple[Hub, Hub],
) -> None:
    a, b = nodes
    org = await connect(a, "org", "organizer")
    award = await create(
        org, LOBBY, show="closed", allow_change=False, guests=False, options=["x", "y"]
    )
    for i, choice in enumerate([0, 1, 1]):
        voter = await member(b, f"v{i}", room=LOBBY)
        await voter.ok("poll.vote", room=LOBBY, poll=award["id"], choice=choice)
    closed = await org.ok("poll.close", room=LOBBY, poll=award["id"])
    assert (closed["poll"]["counts"], closed["poll"]["voters"]) == ([1, 2], 3)

    late = await connect(b, "late")
    snapshot = (await late.ok("join", room=LOBBY))["snapshot"]
    assert snapshot["polls"] == []
    assert snapshot["closed_polls"] == [closed["poll"]]
    assert snapshot["closed_polls"][0]["allow_change"] is False
    assert snapshot["closed_polls"][0]["guests"] is False


async def test_closed_polls_with_show_never_have_counts_for_moderators_only(
    nodes: tuple[Hub, Hub],
) -> None:
    a, b = nodes
    mod = await member(a, "mod", "moderator")
    poll = await create(mod, show="never")
    await (await member(b, "voter")).ok("poll.vote", room=ROOM, poll=poll["id"], choice=2)
    closed = (await mod.ok("poll.close", room=ROOM, poll=poll["id"]))["poll"]
    assert "counts" not in closed and "voters" not in closed

    attendee = await connect(b, "late")
    [seen] = (await attendee.ok("join", room=ROOM))["snapshot"]["closed_polls"]
    assert seen == closed
    moderator = await connect(b, "late-mod", rooms={ROOM: "moderator"})
    [seen] = (await moderator.ok("join", room=ROOM))["snapshot"]["closed_polls"]
    assert seen == {**closed, "counts": [0, 0, 1], "voters": 1}
    assert (await moderator.ok("poll.get", room=ROOM, poll=poll["id"]))["counts"] == [0, 0, 1]


async def test_the_snapshot_keeps_the_newest_ten_closed_polls_oldest_first(
    nodes: tuple[Hub, Hub],
) -> None:
    a, b = nodes
    mod = await member(a, "mod", "moderator")
    closed = []
    for i in range(polls.feature.CLOSED_KEPT + 2):
        a.polls.clock = lambda i=i: 5000.0 + i  # type: ignore[misc]
        poll = await create(mod, question=f"Q{i}?")
        closed.append((await mod.ok("poll.close", room=ROOM, poll=poll["id"]))["poll"])
    still_open = await create(mod, question="Open?")
    snapshot = (await (await connect(b, "late")).ok("join", room=ROOM))["snapshot"]
    assert snapshot["closed_polls"] == closed[-polls.feature.CLOSED_KEPT :]
    assert [view["poll"]["id"] for view in snapshot["polls"]] == [still_open["id"]]


async def test_a_poll_closed_by_its_timer_keeps_its_result(nodes: tuple[Hub, Hub]) -> None:
    a, b = nodes
    mod = await member(a, "mod", "moderator")
    poll = await create(mod, duration=30, show="closed")
    await (await member(b, "voter")).ok("poll.vote", room=ROOM, poll=poll["id"], choice=0)
    await b.polls.run_timers(poll["closes_at"])
    [seen] = (await (await connect(a, "late")).ok("join", room=ROOM))["snapshot"]["closed_polls"]
    assert (seen["state"], seen["counts"], seen["voters"]) == ("closed", [1, 0, 0], 1)


async def test_a_poll_closed_before_the_tally_was_kept_reads_it(nodes: tuple[Hub, Hub]) -> None:
    a, b = nodes
    mod = await member(a, "mod", "moderator")
    poll = await create(mod)
    await (await member(b, "voter")).ok("poll.vote", room=ROOM, poll=poll["id"], choice=1)
    await mod.ok("poll.close", room=ROOM, poll=poll["id"])
    # A record written by an older hub: closed, without the final tally.
    key = f"polls:{ROOM}"
    record = Poll.from_record(unpack(await a.node.store.hash_get(key, poll["id"]) or b""))
    legacy = replace(record, counts=None, voters=None)
    await a.node.store.hash_set(key, poll["id"], pack(legacy.to_record()))
    [seen] = (await (await connect(b, "late")).ok("join", room=ROOM))["snapshot"]["closed_polls"]
    assert (seen["counts"], seen["voters"]) == ([0, 1, 0], 1)
