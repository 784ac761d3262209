"""The feature interface (hub.feature): a new feature plugs in with one ``install(ctx)`` and
gets commands, node hooks, room hooks, hello hooks and HTTP routes; a second handler for one
command or one signal kind is refused."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from support.waiting import eventually
from unit.helpers import Client, config, connect, create_room, new_session, running, token

from hub import fields
from hub.app import build_hub, create_app
from hub.auth import Identity, Role
from hub.dispatch import CommandContext
from hub.errors import HubError
from hub.feature import Entrant, FeatureContext, RoomInfo, each_entrant_part
from hub.session import Session


class Lounge:
    """A toy feature: ``lounge.wave`` stores a ``wave`` event in a room the caller joined; the
    node counts waves from the stored events, joins carry the count, a hello says the lounge is
    open, leaving is noted, ``GET /api/lounge`` reports, ``/readyz`` says whether the lounge is
    open, and people named "grumpy" may not join a lounge room."""

    def __init__(self) -> None:
        self.waves: dict[str, int] = {}
        self.left: list[tuple[str, str]] = []
        self.closed: list[str] = []
        self.lost: list[str] = []
        self.pings: list[Any] = []
        self.ticks = 0
        self.life: list[str] = []

    def install(self, ctx: FeatureContext) -> None:
        self.node = ctx.node
        ctx.command("lounge.wave", self.wave)
        ctx.on_stored("wave", self._count)
        ctx.on_snapshot(each_entrant_part(self._snapshot))
        ctx.on_room_snapshot(self._room_snapshot)
        ctx.on_join_check(self._check)
        ctx.on_leave(self._left)
        ctx.on_hello(self._hello)
        ctx.route("/api/lounge", self._http)
        ctx.on_signal("lounge.ping", self.pings.append)
        ctx.on_session_closed(self._closed)
        ctx.on_history_lost(self._lost)
        ctx.every(3600.0, self.tick)
        ctx.on_start(self._started)
        ctx.on_stop(self._stopping)
        ctx.on_readiness(self._readiness)

    def _readiness(self) -> dict[str, str]:
        return {"lounge": "open" if self.life == ["started"] else "closed"}

    async def _started(self) -> None:
        self.life.append("started")

    async def _stopping(self) -> None:
        self.life.append("stopping")

    async def _closed(self, session: Session) -> None:
        self.closed.append(session.user_id)

    async def _lost(self, room: str) -> None:
        self.lost.append(room)

    async def tick(self) -> None:
        self.ticks += 1

    async def wave(self, ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
        room = fields.room_id(cmd.get("room"))
        if room not in ctx.session.rooms:
            raise HubError("forbidden", "join the room first")
        seq = await self.node.publish_event(room, "wave", {"from": ctx.identity.user_id})
        return {"seq": seq}

    def _count(self, event: dict[str, Any]) -> None:
        self.waves[event["room"]] = self.waves.get(event["room"], 0) + 1

    async def _snapshot(self, ctx: CommandContext, room: RoomInfo, role: Role) -> dict[str, Any]:
        return {"waves": self.waves.get(room.id, 0)}

    async def _room_snapshot(self, room: RoomInfo, role: Role) -> dict[str, Any]:
        return {"lounge_kind": room.kind, "as": role.label}

    async def _check(self, room: RoomInfo, entrants: Sequence[Entrant]) -> list[HubError | None]:
        return [
            HubError("forbidden", "no grumps in the lounge")
            if entrant.ctx.identity.user_id == "grumpy" and room.id.startswith("lounge")
            else None
            for entrant in entrants
        ]

    async def _left(self, session: Session, room: str) -> None:
        self.left.append((session.user_id, room))

    async def _hello(self, ctx: CommandContext, identity: Identity) -> dict[str, Any]:
        return {"lounge": "open"}

    async def _http(self, request: Request) -> Response:
        return JSONResponse({"waves": self.waves})


async def test_a_toy_feature_plugs_in_with_one_install() -> None:
    async with running("n1", "n2", extra=lambda: [Lounge()]) as [a, b]:
        org = await connect(a, "org", Role.ORGANIZER)
        await create_room(org, "lounge-1", "workshop")
        ada = await connect(a, "ada")
        bob = await connect(b, "bob")
        await ada.ok("join", room="lounge-1")
        await bob.ok("join", room="lounge-1")
        assert await ada.err("lounge.wave", room="main") == "forbidden"
        assert (await ada.ok("lounge.wave", room="lounge-1"))["seq"] >= 1
        # The stored event reached the member on the other node, and that node's hook.
        assert any(event.get("ev") == "wave" for event in bob.collect())
        lounge_b = b.features[-1]
        assert isinstance(lounge_b, Lounge) and lounge_b.waves == {"lounge-1": 1}
        cat = await connect(b, "cat")
        joined = await cat.ok("join", room="lounge-1")
        assert joined["snapshot"]["waves"] == 1
        assert joined["snapshot"]["lounge_kind"] == "workshop"
        assert joined["snapshot"]["as"] == "attendee"
        assert await (await connect(a, "grumpy")).err("join", room="lounge-1") == "forbidden"
        await cat.ok("leave", room="lounge-1")
        assert ("cat", "lounge-1") in lounge_b.left
        transport = httpx.ASGITransport(app=create_app(b.config, b))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            assert (await http.get("/api/lounge")).json() == {"waves": {"lounge-1": 1}}
            # A readiness report adds to /readyz (signalling's: the embedded SFU, never made).
            ready = await http.get("/readyz")
            assert ready.status_code == 200
            assert ready.json() == {"ready": True, "node": "n2", "lounge": "open", "sfu": "ok"}
        # Node hooks: a signal on the room's topic reaches both nodes' handler; a closed session,
        # a room's lost history and the timer reach theirs.
        await a.node.signal("lounge-1", "lounge.ping", {"n": 1})
        lounge_a = a.features[-1]
        assert isinstance(lounge_a, Lounge)
        assert lounge_a.pings == lounge_b.pings == [{"n": 1}]
        await b.node.remove_session(bob.session)
        assert lounge_b.closed == ["bob"]
        a.node.receive_epoch("lounge-1", "a-new-epoch")  # ada follows it on a
        await eventually(lambda: lounge_a.lost == ["lounge-1"], what="the history-lost hook")
        assert (3600.0, lounge_b.tick) in b.node._jobs
        assert lounge_b.life == ["started"]
    # Stopped with its node.
    assert lounge_b.life == ["started", "stopping"]


async def test_hello_hooks_add_to_the_reply() -> None:
    async with running(extra=lambda: [Lounge()]) as [hub]:
        client = Client(hub, new_session(hub))
        reply = await client.ok("hello", token=token(hub, "eve"))
        assert reply["lounge"] == "open"
        assert reply["ice_servers"] == []  # signalling's hello hook (no STUN/TURN configured)
        assert reply["sfu"] == {"name": "embedded", "simulcast": False}


def test_a_second_handler_for_a_signal_or_an_op_is_refused() -> None:
    class Twice:
        def install(self, ctx: FeatureContext) -> None:
            ctx.on_signal("presence", lambda data: None)

    class SameOp:
        def install(self, ctx: FeatureContext) -> None:
            async def handler(ctx: CommandContext, cmd: dict[str, Any]) -> None:
                return None

            ctx.command("join", handler)

    with pytest.raises(ValueError, match="signal 'presence' has a handler already"):
        build_hub(config(), extra=[Twice()])
    with pytest.raises(ValueError, match="registered already"):
        build_hub(config(), extra=[SameOp()])
