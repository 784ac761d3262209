"""Signalling in process, on two nodes sharing a memory broker: the relay (the hub's ``from`` and
``user``), refusals that deliver nothing, offers in panels, ``bye`` on leaving and on a role
change, ``media`` and the ``peers`` snapshot, the signal rate limit, and ``ice_servers``."""

from __future__ import annotations

import asyncio
from typing import Any

from hub.auth import Role
from hub.errors import CloseCode
from signalling.feature import SDP_BURST, SIGNAL_BURST
from tests.support.waiting import eventually
from tests.unit.helpers import (
    TIMEOUT,
    Client,
    connect,
    create_room,
    new_session,
    next_event,
    running,
    token,
)

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"


async def _pair_in_workshop(hub: Any) -> tuple[Client, Client]:
    """Alice and Bob, both in a new workshop ``ws`` of ``hub``."""
    boss = await connect(hub, "boss", Role.ORGANIZER)
    await create_room(boss, "ws", "workshop")
    alice = await connect(hub, "alice")
    bob = await connect(hub, "bob")
    await alice.ok("join", room="ws")
    await bob.ok("join", room="ws")
    return alice, bob


async def test_a_signal_reaches_one_session_on_another_node_with_the_hubs_from() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        boss = await connect(hub1, "boss", Role.ORGANIZER)
        await create_room(boss, "ws", "workshop")
        alice = await connect(hub1, "alice")
        bob = await connect(hub2, "bob")
        bob_too = await connect(hub2, "bob")  # another session of bob: gets nothing
        for client in (alice, bob, bob_too):
            await client.ok("join", room="ws")

        await alice.ok(
            "signal", room="ws", to=bob.sid, type="offer", sdp=SDP, **{"from": "forged"},
            user="mallory",
        )  # fmt: skip
        event = await next_event(bob, "signal")
        assert event == {
            "ev": "signal",
            "room": "ws",
            "from": alice.sid,
            "user": "alice",
            "type": "offer",
            "sdp": SDP,
        }
        candidate = {"candidate": "candidate:1 1 UDP 1 127.0.0.1 9 typ host", "sdpMid": "0"}
        await bob.ok("signal", room="ws", to=alice.sid, type="candidate", candidate=candidate)
        got = await next_event(alice, "signal")
        assert got["candidate"] == {**candidate, "sdpMLineIndex": None}
        assert got["from"] == bob.sid and got["user"] == "bob"
        assert [e for e in bob_too.collect() if e.get("ev") == "signal"] == []


async def test_signals_outside_the_room_are_refused_and_delivered_nowhere() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        boss = await connect(hub1, "boss", Role.ORGANIZER)
        await create_room(boss, "ws", "workshop")
        alice = await connect(hub1, "alice")
        outsider = await connect(hub2, "out")
        await alice.ok("join", room="ws")
        await outsider.ok("join", room="main")

        assert await alice.err("signal", room="ws", to=outsider.sid, type="bye") == "not_found"
        assert await outsider.err("signal", room="ws", to=alice.sid, type="bye") == "forbidden"
        assert await alice.err("signal", room="ws", to=alice.sid, type="bye") == "bad_request"
        assert await alice.err("signal", room="ws", to="n9.nobody", type="bye") == "not_found"
        assert await alice.err("signal", room="ws", to=outsider.sid, type="nope") == "bad_request"
        await alice.ok("join", room="main")
        assert await alice.err("signal", room="main", to=outsider.sid, type="bye") == (
            "bad_request"  # the lobby has no media
        )
        await alice.ok("ping")
        await outsider.ok("ping")
        assert [e for e in outsider.collect() if e.get("ev") == "signal"] == []
        assert [e for e in alice.collect() if e.get("ev") == "signal"] == []


async def test_in_a_panel_the_audience_signals_only_the_stage() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        boss = await connect(hub1, "boss", Role.ORGANIZER)
        await create_room(boss, "panel", "panel")
        speaker = await connect(hub1, "spk", rooms={"panel": Role.SPEAKER})
        viewer = await connect(hub2, "viewer")
        other = await connect(hub2, "other")
        for client in (speaker, viewer, other):
            await client.ok("join", room="panel")
        await speaker.ok("signal", room="panel", to=viewer.sid, type="offer", sdp=SDP)
        await viewer.ok("signal", room="panel", to=speaker.sid, type="answer", sdp=SDP)
        await viewer.ok("signal", room="panel", to=speaker.sid, type="offer", sdp=SDP)
        for kind, extra in (("offer", {"sdp": SDP}), ("answer", {"sdp": SDP}), ("bye", {})):
            code = await viewer.err("signal", room="panel", to=other.sid, type=kind, **extra)
            assert code == "forbidden"
        # Made a speaker (a stored role): now the viewer may offer to the audience.
        await boss.ok("role.set", room="panel", user="viewer", role="speaker")
        await next_event(viewer, "role")
        await viewer.ok("signal", room="panel", to=other.sid, type="offer", sdp=SDP)


async def test_leaving_or_a_role_change_sends_bye_to_the_peers() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        boss = await connect(hub1, "boss", Role.ORGANIZER)
        await create_room(boss, "ws", "workshop")
        alice = await connect(hub1, "alice")
        bob = await connect(hub2, "bob")
        carol = await connect(hub2, "carol")
        for client in (alice, bob, carol):
            await client.ok("join", room="ws")
        await alice.ok("signal", room="ws", to=bob.sid, type="offer", sdp=SDP)
        await carol.ok("signal", room="ws", to=alice.sid, type="offer", sdp=SDP)

        await alice.ok("leave", room="ws")
        for peer in (bob, carol):
            bye = await next_event(peer, "signal", type="bye")
            assert bye == {
                "ev": "signal",
                "room": "ws",
                "from": alice.sid,
                "user": "alice",
                "type": "bye",
            }

        await bob.ok("signal", room="ws", to=carol.sid, type="offer", sdp=SDP)
        await boss.ok("role.set", room="ws", user="carol", role="speaker")
        # On carol's behalf, to her peers (she knows from the role event).
        assert (await next_event(bob, "signal", type="bye"))["from"] == carol.sid


async def test_media_events_and_the_peers_snapshot() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        boss = await connect(hub1, "boss", Role.ORGANIZER)
        await create_room(boss, "ws", "workshop")
        alice = await connect(hub1, "alice", rooms={"ws": Role.MODERATOR})
        bob = await connect(hub2, "bob")
        await alice.ok("join", room="ws")
        await bob.ok("join", room="ws")
        await alice.ok("media", room="ws", audio=True, video=True, screen=False)
        event = await next_event(bob, "media")
        assert event == {
            "ev": "media",
            "room": "ws",
            "sid": alice.sid,
            "user": "alice",
            "name": "alice",
            "audio": True,
            "video": True,
            "screen": False,
        }
        assert await bob.err("media", room="ws", audio="yes", video=True, screen=False) == (
            "bad_request"
        )
        assert await bob.err("media", room="main", audio=True, video=True, screen=False) == (
            "forbidden"
        )

        carol = await connect(hub2, "carol")
        peers = (await carol.ok("join", room="ws"))["snapshot"]["peers"]
        by_sid = {peer["sid"]: peer for peer in peers}
        assert set(by_sid) == {alice.sid, bob.sid}
        assert by_sid[alice.sid] == {
            "sid": alice.sid,
            "user": "alice",
            "name": "alice",
            "role": "moderator",
            "media": {"audio": True, "video": True, "screen": False},
        }
        assert by_sid[bob.sid]["media"] == {"audio": False, "video": False, "screen": False}
        assert "peers" not in (await carol.ok("join", room="main"))["snapshot"]

        await alice.ok("leave", room="ws")
        # A state left behind by a session whose node died is dropped at the next snapshot.
        await hub1.node.store.hash_set("media:ws", "n9.gone", b"\x80")
        late = await connect(hub1, "late")
        peers = (await late.ok("join", room="ws"))["snapshot"]["peers"]
        assert {peer["sid"] for peer in peers} == {bob.sid, carol.sid}
        assert set(await hub2.node.store.hash_get_all("media:ws")) == set()


async def test_an_ice_burst_passes_a_signal_flood_does_not() -> None:
    async with running() as [hub]:
        alice, bob = await _pair_in_workshop(hub)
        candidate = {"candidate": "candidate:1 1 UDP 1 127.0.0.1 9 typ host"}
        # More than the command burst (60): signals have their own, larger budget.
        for _ in range(int(SIGNAL_BURST)):
            await alice.ok("signal", room="ws", to=bob.sid, type="candidate", candidate=candidate)
        codes = []
        for _ in range(200):
            reply = await alice.call(
                "signal", room="ws", to=bob.sid, type="candidate", candidate=candidate
            )
            codes.append(reply.get("err", {}).get("code"))
            if not alice.session.open:
                break
        # Refills let a few through while this runs; the flood is refused and ends in 4029.
        assert codes.count("rate_limited") > codes.count(None)
        assert alice.session.close_code is CloseCode.FLOODING


async def test_more_connections_of_one_user_buy_at_most_twice_the_budget() -> None:
    async with running() as [hub]:
        alice, bob = await _pair_in_workshop(hub)
        more = [await connect(hub, "alice") for _ in range(3)]
        for client in more:
            await client.ok("join", room="ws")
        candidate = {"candidate": ""}
        accepted = 0
        for client in [alice, *more]:
            for _ in range(int(SIGNAL_BURST)):
                if not client.session.open:  # closed for flooding (4029): that is the point
                    break
                reply = await client.call(
                    "signal", room="ws", to=bob.sid, type="candidate", candidate=candidate
                )
                accepted += "ok" in reply
        # Four connections' bursts would be 800; the user's is 400 (plus what refills meanwhile).
        assert accepted < 2 * SIGNAL_BURST + 50


async def test_offers_and_answers_have_a_tighter_budget_than_candidates() -> None:
    async with running() as [hub]:
        alice, bob = await _pair_in_workshop(hub)
        big = "v=0\r\n" + "a=x\r\n" * 5000  # about 30 KiB
        codes = [
            (await alice.call("signal", room="ws", to=bob.sid, type="offer", sdp=big))
            .get("err", {})
            .get("code")
            for _ in range(int(SDP_BURST) + 5)
        ]
        assert codes.count(None) <= SDP_BURST + 1
        assert "rate_limited" in codes
        assert bob.session.open  # its queue never came near the 4 MiB bound


async def test_duplicate_byes_and_a_signal_raced_by_a_kick() -> None:
    async with running() as [hub]:
        alice, bob = await _pair_in_workshop(hub)
        await alice.ok("signal", room="ws", to=bob.sid, type="offer", sdp=SDP)
        await alice.ok("signal", room="ws", to=bob.sid, type="bye")
        await alice.ok("signal", room="ws", to=bob.sid, type="bye")
        await alice.ok("leave", room="ws")
        await bob.ok("ping")
        byes = [e for e in bob.collect() if e.get("ev") == "signal" and e["type"] == "bye"]
        assert len(byes) == 2  # the two alice sent; no third from the hub: they were not peers
        assert not [key for key in hub.signalling.peers if key[1] == alice.sid]

        # The sender is kicked while its signal waits for the broker: nothing is delivered.
        await alice.ok("join", room="ws")
        gate, entered = asyncio.Event(), asyncio.Event()
        real = hub.node.broker.presence_get

        async def slow(room: str, sid: str) -> bytes | None:
            entered.set()
            await gate.wait()
            return await real(room, sid)

        hub.node.broker.presence_get = slow  # type: ignore[method-assign]
        pending = asyncio.create_task(
            alice.call("signal", room="ws", to=bob.sid, type="offer", sdp=SDP)
        )
        await asyncio.wait_for(entered.wait(), 10)
        await hub.rooms.leave_room(alice.session, "ws")
        gate.set()
        reply = await asyncio.wait_for(pending, 10)
        hub.node.broker.presence_get = real  # type: ignore[method-assign]
        assert reply["err"]["code"] == "forbidden"
        await bob.ok("ping")
        assert [e for e in bob.collect() if e.get("ev") == "signal"] == []


async def test_hello_carries_ice_servers_with_turn_credentials_not_the_secret() -> None:
    secret = "shared-with-the-turn-server-0123456789"
    async with running(
        stun_urls=("stun:stun.example.org",), turn_urls=("turn:turn.example.org",),
        turn_secret=secret, turn_ttl=120, guests=True,
    ) as [hub]:  # fmt: skip
        fresh = Client(hub, new_session(hub))
        ok = await fresh.ok("hello", token=token(hub, "alice"))
        servers = ok["ice_servers"]
        assert servers[0] == {"urls": ["stun:stun.example.org"]}
        assert servers[1]["urls"] == ["turn:turn.example.org"]
        assert servers[1]["username"].endswith(":alice")
        assert secret not in repr(ok)
        guest = Client(hub, new_session(hub))
        assert (await guest.ok("hello", name="Guest"))["ice_servers"] == servers[:1]  # no TURN


# --- a panel's peers: only the stage -------------------------------------------------------------


def _sids(reply: dict[str, Any]) -> set[str]:
    return {peer["sid"] for peer in reply["snapshot"]["peers"]}


async def test_a_panels_peers_are_its_stage_only() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        boss = await connect(hub1, "boss", Role.ORGANIZER)
        await create_room(boss, "panel", "panel")
        await boss.ok("join", room="panel")
        speaker = await connect(hub2, "spk", rooms={"panel": Role.SPEAKER})
        await speaker.ok("join", room="panel")
        await speaker.ok("media", room="panel", audio=True, video=False, screen=True)
        mod = await connect(hub1, "mod", rooms={"panel": Role.MODERATOR})
        await mod.ok("join", room="panel")
        audience = [await connect((hub1, hub2)[i % 2], f"a{i}") for i in range(4)]
        for client in audience:
            # Nobody in the audience is told of anyone else in it.
            assert _sids(await client.ok("join", room="panel")) == {boss.sid, speaker.sid, mod.sid}

        late = await connect(hub2, "late")
        peers = (await late.ok("join", room="panel"))["snapshot"]["peers"]
        assert [peer["sid"] for peer in peers] == sorted([boss.sid, speaker.sid, mod.sid])
        assert {peer["sid"]: peer for peer in peers}[speaker.sid] == {
            "sid": speaker.sid,
            "user": "spk",
            "name": "spk",
            "role": "speaker",
            "media": {"audio": True, "video": False, "screen": True},
        }
        # The stage sees the stage too, not the audience.
        assert _sids(await speaker.ok("join", room="panel")) == {boss.sid, mod.sid}
        # A workshop still lists everyone.
        await create_room(boss, "ws", "workshop")
        for client in audience[:2]:
            await client.ok("join", room="ws")
        assert _sids(await late.ok("join", room="ws")) == {audience[0].sid, audience[1].sid}


async def test_the_panel_stage_follows_role_changes_and_leaves() -> None:
    async with running("n1", "n2") as [hub1, hub2]:
        boss = await connect(hub1, "boss", Role.ORGANIZER)
        await create_room(boss, "panel", "panel")
        ada = await connect(hub2, "ada")
        await ada.ok("join", room="panel")
        watcher = await connect(hub1, "watcher")
        assert _sids(await watcher.ok("join", room="panel")) == set()

        await boss.ok("role.set", room="panel", user="ada", role="speaker")
        stage = "stage:panel"
        await eventually(lambda: _has(hub1, stage, ada.sid), what="ada on stage", within=TIMEOUT)
        assert _sids(await watcher.ok("join", room="panel")) == {ada.sid}

        await boss.ok("role.set", room="panel", user="ada", role="attendee")
        await eventually(
            lambda: _has(hub1, stage, ada.sid, False), what="ada off stage", within=TIMEOUT
        )
        assert _sids(await watcher.ok("join", room="panel")) == set()

        spk = await connect(hub2, "spk", rooms={"panel": Role.SPEAKER})
        await spk.ok("join", room="panel")
        assert _sids(await watcher.ok("join", room="panel")) == {spk.sid}
        await spk.ok("leave", room="panel")
        assert await hub1.node.store.hash_get_all(stage) == {}
        assert _sids(await watcher.ok("join", room="panel")) == set()


async def _has(hub: Any, key: str, sid: str, present: bool = True) -> bool:
    return (sid in await hub.node.store.hash_get_all(key)) is present


async def test_a_panel_snapshot_reads_the_stage_not_the_audience() -> None:
    async with running() as [hub]:
        boss = await connect(hub, "boss", Role.ORGANIZER)
        await create_room(boss, "panel", "panel")
        await boss.ok("join", room="panel")
        for i in range(5):
            await (await connect(hub, f"a{i}")).ok("join", room="panel")
        # A stage entry whose session has no presence (its node died) is dropped when read.
        await hub.node.store.hash_set("stage:panel", "n9.gone", b"ghost")
        pages = 0
        real = hub.node.broker.presence_page

        async def counted(*args: Any) -> Any:
            nonlocal pages
            pages += 1
            return await real(*args)

        hub.node.broker.presence_page = counted  # type: ignore[method-assign]
        late = await connect(hub, "late")
        assert _sids(await late.ok("join", room="panel")) == {boss.sid}
        assert pages == 0
        assert set(await hub.node.store.hash_get_all("stage:panel")) == {boss.sid}
