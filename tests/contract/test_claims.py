"""Operations that happen once (a poll's close, a question's close, a Q&A vote), on both
backends: a broker failure between any two of their steps leaves nothing stuck half-done. The
first claim decides; every later step may run again, on any node, and the stored event goes out
once (``publish_once``), so a retry, a timer or a refused ballot completes what was begun."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from support.redis_server import RedisServer
from support.waiting import eventually
from unit.helpers import Client, config, connect, running, started

from hub.app import Hub, build_hub
from hub.broker import BrokerSettings, BrokerUnavailable
from hub.codec import unpack
from hub.redis import redis_node

BACKENDS = [pytest.param("memory"), pytest.param("redis", marks=pytest.mark.redis)]
ROOM = "panel"


@contextlib.asynccontextmanager
async def redis_hubs(server: RedisServer) -> AsyncIterator[list[Hub]]:
    """Two started hubs on the private Redis, under a key prefix of their own."""
    cfg = config()
    settings = BrokerSettings(history_size=cfg.history_size, presence_ttl=cfg.presence_ttl)
    prefix = f"claims-{uuid.uuid4().hex[:8]}:"
    hubs = [
        build_hub(cfg, redis_node(server.url, node_id, settings, prefix=prefix))
        for node_id in ("n1", "n2")
    ]
    async with started(hubs):
        yield hubs


@pytest.fixture(params=BACKENDS)
async def hubs(request: pytest.FixtureRequest) -> AsyncIterator[list[Hub]]:
    """Two nodes sharing one backend, with the panel ``ROOM``."""
    if request.param == "memory":
        context = running("n1", "n2")
    else:
        context = redis_hubs(request.getfixturevalue("redis_server"))
    async with context as nodes:
        org = await connect(nodes[0], "org", "organizer")
        await org.ok("room.create", room=ROOM, kind="panel", title="Panel")
        yield nodes


def fail_once(
    monkeypatch: pytest.MonkeyPatch, target: object, method: str, when: Callable[..., bool]
) -> list[int]:
    """Make ``target.method`` raise BrokerUnavailable the first time ``when(*args)`` holds;
    returns a list that counts the failures."""
    original = getattr(target, method)
    failed: list[int] = []

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        if not failed and when(*args):
            failed.append(1)
            raise BrokerUnavailable("injected")
        return await original(*args, **kwargs)

    monkeypatch.setattr(target, method, flaky)
    return failed


async def stored(hub: Hub, ev: str) -> list[dict[str, Any]]:
    """The stored events ``ev`` of ``ROOM``, from its history."""
    history = await hub.node.broker.history(ROOM, 0)
    bodies = [unpack(event.body) for event in history.events]
    return [body for body in bodies if body["ev"] == ev]


async def closed_polls(hub: Hub) -> list[dict[str, Any]]:
    return [e for e in await stored(hub, "poll") if e["poll"]["state"] == "closed"]


async def member(hub: Hub, user: str, role: str = "attendee") -> Client:
    client = await connect(hub, user, role)
    await client.ok("join", room=ROOM)
    return client


async def open_poll(mod: Client) -> str:
    reply = await mod.ok("poll.create", room=ROOM, question="Best?", options=["a", "b"])
    poll: str = reply["poll"]["id"]
    return poll


def break_poll_close(monkeypatch: pytest.MonkeyPatch, hub: Hub, step: str) -> list[int]:
    """Make ``hub``'s next poll close fail at ``step``: after the claim (``tally``), after the
    tally (``record``) or after the record (``event``)."""
    if step == "tally":
        return fail_once(monkeypatch, hub.polls.ballots, "tally", lambda *a: True)
    if step == "record":
        return fail_once(
            monkeypatch, hub.node.store, "hash_set", lambda key, *a: key.startswith("polls:")
        )
    return fail_once(monkeypatch, hub.node.broker, "publish_once", lambda *a: True)


@pytest.mark.parametrize("step", ["tally", "record", "event"])
async def test_a_poll_close_that_failed_halfway_is_completed_by_the_next_close(
    hubs: list[Hub], monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    a, b = hubs
    mod_a, mod_b = await member(a, "mod", "moderator"), await member(b, "kim", "moderator")
    voter = await member(b, "ann")
    poll = await open_poll(mod_a)
    await voter.ok("poll.vote", room=ROOM, poll=poll, choice=1)
    failed = break_poll_close(monkeypatch, a, step)

    assert await mod_a.err("poll.close", room=ROOM, poll=poll) == "unavailable"
    assert failed == [1]
    assert await closed_polls(a) == []

    done = await mod_b.ok("poll.close", room=ROOM, poll=poll)
    assert done["poll"]["state"] == "closed"
    assert (done["poll"]["counts"], done["poll"]["voters"]) == ([0, 1], 1)
    assert await mod_a.err("poll.close", room=ROOM, poll=poll) == "closed"
    assert len(await closed_polls(a)) == 1
    got = await voter.ok("poll.get", room=ROOM, poll=poll)
    assert got["poll"]["state"] == "closed"


# After the record, the poll reads closed and no ballot reaches the box: the next poll.close
# (above) publishes the event.
@pytest.mark.parametrize("step", ["tally", "record"])
async def test_a_refused_ballot_completes_a_close_that_failed_halfway(
    hubs: list[Hub], monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    a, b = hubs
    mod = await member(a, "mod", "moderator")
    voter = await member(b, "ann")
    poll = await open_poll(mod)
    break_poll_close(monkeypatch, a, step)
    assert await mod.err("poll.close", room=ROOM, poll=poll) == "unavailable"

    # From the claim on, the tally is final on every node, and the refusal completes the close.
    assert await voter.err("poll.vote", room=ROOM, poll=poll, choice=0) == "closed"
    await eventually(
        lambda: _count(closed_polls(a), 1), what="the close completed by the refused ballot"
    )
    assert await mod.err("poll.close", room=ROOM, poll=poll) == "closed"
    assert len(await closed_polls(a)) == 1


async def _count(events: Any, expected: int) -> bool:
    return len(await events) == expected


@pytest.mark.parametrize("step", ["record", "event"])
async def test_a_question_close_that_failed_halfway_is_completed_with_its_first_state(
    hubs: list[Hub], monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    a, b = hubs
    mod_a, mod_b = await member(a, "mod", "moderator"), await member(b, "kim", "moderator")
    asker = await member(b, "ann")
    question = (await asker.ok("qa.ask", room=ROOM, text="Why?"))["question"]["id"]
    if step == "record":
        fail_once(monkeypatch, a.node.store, "hash_set", lambda key, *args: key == f"qa:{ROOM}")
    else:
        fail_once(monkeypatch, a.node.broker, "publish_once", lambda *args: True)

    assert await mod_a.err("qa.answer", room=ROOM, question=question) == "unavailable"
    # The first claim decides: a later dismiss completes the close as answered.
    done = await mod_b.ok("qa.dismiss", room=ROOM, question=question)
    assert done["question"]["state"] == "answered"
    assert await mod_a.err("qa.answer", room=ROOM, question=question) == "closed"
    closes = [e for e in await stored(a, "qa") if e["question"]["state"] != "open"]
    assert len(closes) == 1
    snapshot = (await (await connect(a, "eve")).ok("join", room=ROOM))["snapshot"]
    assert question not in [q["id"] for q in snapshot["questions"]]


async def test_a_question_vote_is_one_step_counted_once(hubs: list[Hub]) -> None:
    a, b = hubs
    asker, voter = await member(a, "ann"), await member(b, "bob")
    question = (await asker.ok("qa.ask", room=ROOM, text="Why?"))["question"]["id"]
    assert (await voter.ok("qa.vote", room=ROOM, question=question))["votes"] == 1
    assert await voter.err("qa.vote", room=ROOM, question=question) == "conflict"
    assert (await asker.ok("qa.vote", room=ROOM, question=question))["votes"] == 2
    assert (await b.node.store.set_add_counted(f"qa:{ROOM}:{question}:voters", "bob")) == (
        False,
        2,
    )
