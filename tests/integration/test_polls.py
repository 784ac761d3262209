"""Polls on two real ``hub serve`` processes sharing one private Redis, driven over the wire.

Two hundred users, half on each node, vote in a poll that refuses changes; twenty of them vote
from a second session on the other node at the same moment: each of those gets one ``ok`` and one
``conflict``, and the final counts are exact. Every member sees the last ``poll.tally`` carry
them. Polls with ``show: closed`` and ``never`` send tallies to moderators only, and their
closing events carry counts where results may be shown. A poll with the shortest duration is
closed by the nodes' timers exactly once. Organizers and the room's moderators (by event role,
``rooms`` claim or a role stored with ``role.set``) export results over HTTP (JSON and CSV);
others cannot.

Members are bare WebSockets that record every message as the hub sent it. No test sleeps to
synchronise: each waits for a reply or an event with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any

import httpx
import pytest

from tests.conftest import TIMEOUT
from tests.integration.conftest import StartNodes, uid
from tests.integration.conftest import open_member as shared_open_member
from tests.support import recording
from tests.support.hub_process import mint

pytestmark = [pytest.mark.integration, pytest.mark.redis]

USERS = 200
DOUBLES = 20  # users who also vote from a session on the other node, at the same time
OPTIONS = ["red", "green", "blue", "=1+1"]
MIN_DURATION = 5


class Member(recording.Member):
    """A :class:`~tests.support.recording.Member` that reads poll events."""

    def tallies(self, room: str, poll: str) -> list[tuple[list[int], int]]:
        """``(counts, voters)`` of the ``poll.tally`` events for ``poll``, in arrival order."""
        return [
            (e["counts"], e["voters"]) for e in self.events("poll.tally", room) if e["poll"] == poll
        ]

    def polls(self, room: str, poll: str) -> list[dict[str, Any]]:
        """The ``poll`` maps of the stored ``poll`` events for ``poll``."""
        return [e["poll"] for e in self.events("poll", room) if e["poll"]["id"] == poll]


open_member = functools.partial(shared_open_member, kind=Member)


async def test_polls_on_two_nodes(
    start_nodes: StartNodes, stack: contextlib.AsyncExitStack
) -> None:
    a, b = await start_nodes()
    org = await open_member(stack, a, uid("org"), "organizer")
    room = uid("panel")
    await org.request("room.create", room=room, kind="panel", title="Panel")
    mod_a = await open_member(stack, a, uid("mod"), "moderator")
    mod_b = await open_member(stack, b, uid("mod"), "moderator")
    await asyncio.gather(mod_a.join(room), mod_b.join(room))

    # The timed poll first: its timers run while the rest of the test goes on.
    timed = (
        await mod_b.request(
            "poll.create", room=room, question="Quick?", options=["y", "n"], duration=MIN_DURATION
        )
    )["poll"]

    users = [uid("u") for _ in range(USERS)]
    homes = [a if i % 2 else b for i in range(USERS)]
    members = list(
        await asyncio.gather(*(open_member(stack, n, u) for n, u in zip(homes, users, strict=True)))
    )
    doubles = list(
        await asyncio.gather(
            *(open_member(stack, b if homes[i] is a else a, users[i]) for i in range(DOUBLES))
        )
    )
    everyone = [*members, *doubles]
    await asyncio.gather(*(m.join(room) for m in everyone))

    created = await mod_a.request(
        "poll.create", room=room, question="Colour?", options=OPTIONS, allow_change=False
    )
    poll = created["poll"]["id"]
    for m in [mod_a, mod_b, *members[:2]]:
        await m.wait_until(lambda m=m: bool(m.polls(room, poll)), "the poll event")  # type: ignore[misc]

    # Every user votes (choice i % 4); the doubles from both sessions at the same moment.
    votes = [m.call("poll.vote", room=room, poll=poll, choice=i % 4) for i, m in enumerate(members)]
    votes += [
        m.call("poll.vote", room=room, poll=poll, choice=i % 4) for i, m in enumerate(doubles)
    ]
    replies = await asyncio.gather(*votes)
    for i in range(USERS):
        pair = [replies[i]] + ([replies[USERS + i]] if i < DOUBLES else [])
        outcomes = sorted("ok" if "ok" in r else r["err"]["code"] for r in pair)
        assert outcomes == (["conflict", "ok"] if i < DOUBLES else ["ok"]), (i, pair)
    expected = [USERS // 4] * 4

    # Everyone sees the tallies climb to the exact final counts (batched: far fewer than votes).
    final = (expected, USERS)
    for m in [mod_a, mod_b, *everyone]:
        await m.wait_until(lambda m=m: final in m.tallies(room, poll), "the final tally")  # type: ignore[misc]
        seen = m.tallies(room, poll)
        assert seen[-1] == final and [v for _, v in seen] == sorted(v for _, v in seen)
        assert len(seen) < USERS
    got = await doubles[0].request("poll.get", room=room, poll=poll)
    assert (got["counts"], got["voters"], got["mine"]) == (expected, USERS, 0)
    newcomer = await open_member(stack, b, uid("new"))
    snapshot = (await newcomer.join(room))["snapshot"]["polls"]
    listed = {p["poll"]["id"]: p for p in snapshot}
    assert listed[poll]["counts"] == expected and listed[poll]["mine"] is None

    # show closed / never: tallies reach the moderators only; closing shows counts for closed.
    secret: dict[str, str] = {}
    for show in ("closed", "never"):
        secret[show] = (
            await mod_a.request(
                "poll.create", room=room, question=f"{show}?", options=["x", "y"], show=show
            )
        )["poll"]["id"]
        await asyncio.gather(
            *(m.request("poll.vote", room=room, poll=secret[show], choice=1) for m in members[:4])
        )
    watchers = members[4:8]  # on both nodes
    for show, pid in secret.items():
        for mod in (mod_a, mod_b):
            await mod.wait_until(
                lambda mod=mod, pid=pid: ([0, 4], 4) in mod.tallies(room, pid),  # type: ignore[misc]
                f"the {show} tally",
            )
        for w in watchers:
            # A reply queued after the moderators' tally: a tally for w would have come first.
            got = await w.request("poll.get", room=room, poll=pid)
            assert "counts" not in got and "voters" not in got and got["mine"] is None
            assert w.tallies(room, pid) == []
        closed = (await mod_b.request("poll.close", room=room, poll=pid))["poll"]
        assert closed["state"] == "closed"
        if show == "closed":
            assert (closed["counts"], closed["voters"]) == ([0, 4], 4)
        else:
            assert "counts" not in closed and "voters" not in closed
        for w in watchers:
            await w.wait_until(lambda w=w, pid=pid: bool(w.polls(room, pid)[1:]), "the close")  # type: ignore[misc]
            assert w.polls(room, pid)[-1] == closed

    # Close the main poll; a late vote is closed.
    closing = await asyncio.gather(
        mod_a.call("poll.close", room=room, poll=poll),
        mod_b.call("poll.close", room=room, poll=poll),
    )
    assert sorted("ok" if "ok" in r else r["err"]["code"] for r in closing) == ["closed", "ok"]
    late = await members[-1].call("poll.vote", room=room, poll=poll, choice=0)
    assert late["err"]["code"] == "closed"

    # The timed poll: closed by the timers exactly once, seen on both nodes.
    watching = [mod_a, mod_b, members[0], members[1]]
    for m in watching:
        await m.wait_until(
            lambda m=m: any(p["state"] == "closed" for p in m.polls(room, timed["id"])),  # type: ignore[misc]
            "the timed close",
        )
    extra = await mod_a.call("poll.close", room=room, poll=timed["id"])
    assert extra["err"]["code"] == "closed"
    for m in watching:
        states = [p["state"] for p in m.polls(room, timed["id"])]
        assert states == (["open", "closed"] if m in (mod_a, mod_b) else ["closed"])

    # Export: not for attendees; counts, never who voted.
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        url = f"{b.http}/api/rooms/{room}/polls/{poll}"
        auth = {"Authorization": f"Bearer {mint(uid('org'), 'organizer')}"}
        assert (await http.get(url)).status_code == 401
        assert (await http.get(url + ".csv")).status_code == 401
        attendee = {"Authorization": f"Bearer {mint(users[0])}"}
        assert (await http.get(url, headers=attendee)).status_code == 403
        missing = f"{b.http}/api/rooms/{room}/polls/nope"
        assert (await http.get(missing, headers=auth)).status_code == 404
        assert (await http.get(missing + ".csv", headers=auth)).status_code == 404
        reply = await http.get(url, headers=auth)
        assert reply.status_code == 200
        body = reply.json()
        assert body["poll"]["state"] == "closed" and body["poll"]["closed_at"] is not None
        assert (body["counts"], body["voters"]) == (expected, USERS)
        assert body["options"] == [
            {"option": o, "count": c} for o, c in zip(OPTIONS, expected, strict=True)
        ]
        assert not any(user in reply.text for user in users)
        reply = await http.get(url + ".csv", headers=auth)
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/csv")
        n = USERS // 4
        assert reply.text.splitlines() == [
            "option,count,organisation,country,description,image",
            f"red,{n},,,,",
            f"green,{n},,,,",
            f"blue,{n},,,,",
            f"'=1+1,{n},,,,",
            f"voters,{USERS},,,,",
        ]


async def test_moderators_of_a_room_export_its_polls(
    start_nodes: StartNodes, stack: contextlib.AsyncExitStack
) -> None:
    a, b = await start_nodes()
    org = await open_member(stack, a, uid("org"), "organizer")
    room, other = uid("panel"), uid("panel")
    for r in (room, other):
        await org.request("room.create", room=r, kind="panel", title="P")
    poll = (await org.request("poll.create", room=room, question="Q?", options=["x", "y"]))["poll"]
    promoted, demoted = uid("promoted"), uid("demoted")
    # Roles stored on node a count for exports on node b.
    await org.request("role.set", room=room, user=promoted, role="moderator")
    await org.request("role.set", room=room, user=demoted, role="attendee")

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    allowed = {
        "event moderator": mint(uid("mod"), "moderator"),
        "room claim": mint(uid("claim"), rooms={room: "moderator"}),
        "stored role": mint(promoted),
        "organizer": mint(uid("org"), "organizer"),
    }
    refused = {
        "attendee": mint(uid("att")),
        "speaker": mint(uid("spk"), "speaker", rooms={room: "speaker"}),
        "claim on another room": mint(uid("claim"), rooms={other: "moderator"}),
        "moderator stepped down in the room": mint(demoted, "moderator"),
    }
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        url = f"{b.http}/api/rooms/{room}/polls/{poll['id']}"
        for who, token in allowed.items():
            for suffix in ("", ".csv"):
                reply = await http.get(url + suffix, headers=bearer(token))
                assert reply.status_code == 200, (who, suffix, reply.text)
            assert reply.text.splitlines() == [
                "option,count,organisation,country,description,image",
                "x,0,,,,",
                "y,0,,,,",
                "voters,0,,,,",
            ]
        for who, token in refused.items():
            for suffix in ("", ".csv"):
                reply = await http.get(url + suffix, headers=bearer(token))
                assert reply.status_code == 403, (who, suffix, reply.text)
                assert reply.json()["err"]["code"] == "forbidden"
        assert (await http.get(url)).status_code == 401
        assert (await http.get(url, headers=bearer("not-a-token"))).status_code == 401
        moderator = bearer(allowed["event moderator"])
        unknown = f"{b.http}/api/rooms/{uid('nowhere')}/polls/{poll['id']}"
        assert (await http.get(unknown, headers=moderator)).status_code == 404
        not_a_room = f"{b.http}/api/rooms/Not-A-Room/polls/{poll['id']}"
        assert (await http.get(not_a_room, headers=bearer(refused["attendee"]))).status_code == 403
