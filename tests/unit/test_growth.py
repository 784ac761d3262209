"""Ordinary use does not grow what the hub holds: guest after guest says hello, joins a panel,
chats (with keys, under slow mode), asks, votes, gets muted and goes, and the node and its memory
backend hold no more after the second wave of guests than after the first. (Direct messages are
left out: each conversation keeps its messages for good, by design.)

Entries are counted, not bytes: the process's RSS over minutes is the soak benchmark's
(``benchmarks/soak.py``). Caps are made small so that a few hundred guests pass them, and the
backend's clock is stepped past every ttl (a day: chat keys) instead of waited for.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import Client, connect, new_session, running

import chat.qa
import hub.memory.broker
import networking.match_feature
from hub.app import Hub
from hub.auth import Role
from hub.errors import CloseCode
from hub.memory import MemoryBackend, MemoryBroker

PANEL = "panel"
GUESTS = 300  # per wave
CHAT_HISTORY = 40
OPEN_MAX = 15
CLOSED_KEPT = 25
ONCE_KEPT = 60


class Monotonic:
    """The memory backend's clock, stepped by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Event:
    """The organizer who runs the panel, and the questions open in it."""

    def __init__(self, hub: Hub, org: Client) -> None:
        self.hub = hub
        self.org = org
        self.open: list[str] = []
        self.guests = 0

    async def wave(self, count: int) -> None:
        """``count`` guests come, take part, and go."""
        for _ in range(count):
            await self.guest()

    async def guest(self) -> None:
        self.guests += 1
        n = self.guests
        client = Client(self.hub, new_session(self.hub))
        user = (await client.ok("hello", name=f"Guest {n}"))["user"]["id"]
        await client.ok("join", room=PANEL)
        await client.ok("chat.send", room=PANEL, text=f"hello from {n}", key=f"k{n}")
        if self.open:
            await client.ok("qa.vote", room=PANEL, question=self.open[-1])
        asked = await client.ok("qa.ask", room=PANEL, text=f"question {n}?")
        self.open.append(asked["question"]["id"])
        if len(self.open) >= OPEN_MAX:
            for question in self.open[:5]:
                await self.org.ok("qa.dismiss", room=PANEL, question=question)
            del self.open[:5]
        if n % 10 == 0:
            await self.org.ok("chat.mute", room=PANEL, user=user, seconds=60)
        await client.ok("leave", room=PANEL)
        client.session.request_close(CloseCode.NORMAL, "bye")
        await self.hub.node.remove_session(client.session)
        self.org.collect()


def held(hub: Hub, backend: MemoryBackend) -> dict[str, Any]:
    """What the node and the backend hold, entry by entry."""
    node = hub.node
    return {
        **backend.sizes(),
        "sessions": len(node.sessions),
        "users": len(node.users),
        "streams": len(node.streams),
        "dm_guest_keys": sum(key.startswith("dm:guest:") for key in backend.values),
    }


async def test_guests_coming_and_going_leave_nothing_growing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chat.qa, "OPEN_MAX", OPEN_MAX)
    monkeypatch.setattr(chat.qa, "CLOSED_KEPT", CLOSED_KEPT)
    monkeypatch.setattr(hub.memory.broker, "ONCE_KEPT", ONCE_KEPT)
    # The matcher's quarter-second rounds write one key (how many wait): whether a round falls
    # in one wave and not the other depends on the machine's speed, not on growth.
    monkeypatch.setattr(networking.match_feature, "ROUND_INTERVAL", 10.0**6)
    # The organizer stays all along: their presence outlives the stepped days.
    settings = {"chat_history": CHAT_HISTORY, "history_size": 30, "presence_ttl": 10.0**7}
    async with running(guests=True, **settings) as [node]:
        broker = node.node.broker
        assert isinstance(broker, MemoryBroker)
        backend = broker.backend
        clock = Monotonic()
        backend.clock = clock
        org = await connect(node, "org", Role.ORGANIZER)
        await org.ok("room.create", room=PANEL, kind="panel", title="Panel")
        await org.ok("join", room=PANEL)
        await org.ok("room.slowmode", room=PANEL, seconds=2)
        event = Event(node, org)

        async def wave_then_a_day() -> dict[str, Any]:
            await event.wave(GUESTS)
            clock.now += 86_400 + 1  # past every ttl: chat keys, guests, mutes, slots
            backend.sweep()
            return held(node, backend)

        first = await wave_then_a_day()
        second = await wave_then_a_day()

    assert second == first
    assert first["log_items"] <= CHAT_HISTORY + 20  # the chat log, and the lobby's notices
    assert first["index_entries"] <= CHAT_HISTORY  # the ids of the messages in the log
    assert first["once_keys"] <= ONCE_KEPT
    assert first["dm_guest_keys"] == 0
    assert first["sessions"] == first["users"] == 1  # the organizer
    # The panel's questions: at most OPEN_MAX open and CLOSED_KEPT closed, each with voters.
    assert first["hash_fields"] < 2 * (OPEN_MAX + CLOSED_KEPT) + 20
    assert first["sets"] < OPEN_MAX + CLOSED_KEPT + 10
