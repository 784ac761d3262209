"""Q&A (chat.qa): the rules of asking, voting, answering and dismissing, the join snapshot and the
batched ``qa.votes``, on two in-process nodes sharing one memory backend.

The periodic vote job never runs on its own here: tests call ``flush_votes`` directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from helpers import Client, connect, running

import chat.qa
from chat.qa import QaFeature, Question, open_questions
from hub.app import Hub

ROOM = "panel-1"


@pytest.fixture(autouse=True)
def quiet_votes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The vote job is registered with this interval when a hub is built: never within a test."""
    monkeypatch.setattr(chat.qa, "VOTES_INTERVAL", 3600.0)


@pytest.fixture
async def nodes() -> AsyncIterator[tuple[Hub, Hub]]:
    """Two started nodes on one memory backend, with the panel ``ROOM``."""
    async with running("n1", "n2") as (a, b):
        org = await connect(a, "org", "organizer")
        await org.ok("room.create", room=ROOM, kind="panel", title="Panel")
        yield a, b


def qa_of(hub: Hub) -> QaFeature:
    """The node's Q&A feature (the object behind its ``qa.vote`` op)."""
    command = hub.registry.get("qa.vote")
    assert command is not None
    feature = getattr(command.handler, "__self__", None)
    assert isinstance(feature, QaFeature)
    return feature


async def member(hub: Hub, user: str, role: str = "attendee", **kw: Any) -> Client:
    """A session of ``user`` in ``ROOM``, its join reply already taken."""
    client = await connect(hub, user, role, **kw)
    await client.ok("join", room=ROOM)
    client.collect()
    return client


def of(client: Client, ev: str) -> list[dict[str, Any]]:
    """The events named ``ev`` the client received since the last call (others are dropped)."""
    return [event for event in client.collect() if event.get("ev") == ev]


async def ask(client: Client, text: str = "Why?") -> str:
    reply = await client.ok("qa.ask", room=ROOM, text=text)
    question_id: str = reply["question"]["id"]
    return question_id


async def flush(*hubs: Hub) -> None:
    for hub in hubs:
        await qa_of(hub).flush_votes()


# --- pure parts -----------------------------------------------------------------------------------


def _question(order: int, state: chat.qa.State = "open") -> Question:
    return Question(f"q{order}", "u", "U", f"text {order}", state, order)


def test_open_questions_go_by_votes_then_ask_order_and_leave_closed_ones_out() -> None:
    counted = [
        (_question(1), 2),
        (_question(2), 5),
        (_question(3, "answered"), 9),
        (_question(4), 2),
        (_question(5, "dismissed"), 7),
        (_question(6), 0),
    ]
    listed = open_questions(counted)
    assert [(q["id"], q["votes"]) for q in listed] == [("q2", 5), ("q1", 2), ("q4", 2), ("q6", 0)]
    assert listed[0] == {
        "id": "q2",
        "user": "u",
        "name": "U",
        "text": "text 2",
        "votes": 5,
        "state": "open",
    }


def test_a_question_record_round_trips() -> None:
    question = _question(3, "answered")
    assert Question.from_record(question.to_record()) == question
    assert "order" not in question.wire(1)


# --- asking ---------------------------------------------------------------------------------------


async def test_a_question_is_stored_and_seen_on_both_nodes(nodes: tuple[Hub, Hub]) -> None:
    a, b = nodes
    asker = await member(a, "ada")
    other = await member(b, "bob")
    reply = await asker.ok("qa.ask", room=ROOM, text="  How does it scale?\n ")
    question = reply["question"]
    assert set(question) == {"id", "user", "name", "text", "votes", "state"}
    assert question["text"] == "How does it scale?"
    assert (question["user"], question["name"], question["votes"]) == ("ada", "ada", 0)
    assert question["state"] == "open"
    expected = {"ev": "qa", "room": ROOM, "seq": reply["seq"], "question": question}
    assert of(asker, "qa") == [expected]
    assert of(other, "qa") == [expected]
    second = await other.ok("qa.ask", room=ROOM, text="And the cost?")
    assert second["seq"] == reply["seq"] + 1
    assert second["question"]["id"] != question["id"]


async def test_asking_needs_the_room_and_a_proper_text(nodes: tuple[Hub, Hub]) -> None:
    a, _ = nodes
    outsider = await connect(a, "eve")
    assert await outsider.err("qa.ask", room=ROOM, text="hi") == "forbidden"
    assert await outsider.err("qa.ask", room="Not A Room", text="hi") == "bad_request"
    asker = await member(a, "ada")
    assert await asker.err("qa.ask", room=ROOM, text="   ") == "bad_request"
    assert await asker.err("qa.ask", room=ROOM, text=7) == "bad_request"
    assert await asker.err("qa.ask", room=ROOM, text="bell\x07") == "bad_request"
    assert await asker.err("qa.ask", room=ROOM, text="x" * 501) == "too_large"
    assert (await asker.ok("qa.ask", room=ROOM, text="x" * 500))["question"]["text"] == "x" * 500
    await asker.ok("leave", room=ROOM)
    assert await asker.err("qa.ask", room=ROOM, text="hi") == "forbidden"


# --- voting ---------------------------------------------------------------------------------------


async def test_a_user_counts_once_whichever_node_and_session(nodes: tuple[Hub, Hub]) -> None:
    a, b = nodes
    question = await ask(await member(a, "ada"))
    bob_a, bob_b = await member(a, "bob"), await member(b, "bob")
    carol = await member(b, "carol")
    assert await bob_a.ok("qa.vote", room=ROOM, question=question) == {"votes": 1}
    assert await bob_b.err("qa.vote", room=ROOM, question=question) == "conflict"
    assert await bob_a.err("qa.vote", room=ROOM, question=question) == "conflict"
    assert await carol.ok("qa.vote", room=ROOM, question=question) == {"votes": 2}
    assert (await qa_of(b).open_questions(ROOM))[0]["votes"] == 2


async def test_concurrent_double_votes_count_each_user_once(nodes: tuple[Hub, Hub]) -> None:
    a, b = nodes
    question = await ask(await member(a, "ada"))
    users = [f"u{i}" for i in range(10)]
    sessions = [await member(hub, user) for user in users for hub in (a, b)]
    replies = await asyncio.gather(
        *(s.call("qa.vote", room=ROOM, question=question) for s in sessions)
    )
    oks = [r["ok"]["votes"] for r in replies if "ok" in r]
    assert sorted(oks) == list(range(1, 11))
    assert [r["err"]["code"] for r in replies if "err" in r] == ["conflict"] * 10
    assert (await qa_of(a).open_questions(ROOM))[0]["votes"] == 10


async def test_voting_rules(nodes: tuple[Hub, Hub]) -> None:
    a, _ = nodes
    asker = await member(a, "ada")
    question = await ask(asker)
    # Voting for one's own question is allowed.
    assert await asker.ok("qa.vote", room=ROOM, question=question) == {"votes": 1}
    assert await asker.err("qa.vote", room=ROOM, question="nope") == "not_found"
    assert await asker.err("qa.vote", room=ROOM, question="no/such") == "bad_request"
    assert await asker.err("qa.vote", room=ROOM, question=3) == "bad_request"
    assert await asker.err("qa.vote", room=ROOM) == "bad_request"
    outsider = await connect(a, "eve")
    assert await outsider.err("qa.vote", room=ROOM, question=question) == "forbidden"


# --- answering and dismissing ---------------------------------------------------------------------


async def test_a_moderator_answers_and_everyone_sees_it(nodes: tuple[Hub, Hub]) -> None:
    a, b = nodes
    asker = await member(a, "ada")
    question = await ask(asker, "When?")
    await asker.ok("qa.vote", room=ROOM, question=question)
    asker.collect()
    watcher = await member(b, "bob")
    # A moderator needs no join to answer (like announce).
    mod = await connect(b, "mod", "moderator")
    reply = await mod.ok("qa.answer", room=ROOM, question=question)
    answered = {
        "id": question,
        "user": "ada",
        "name": "ada",
        "text": "When?",
        "votes": 1,
        "state": "answered",
    }
    assert reply["question"] == answered
    expected = [{"ev": "qa", "room": ROOM, "seq": reply["seq"], "question": answered}]
    assert of(asker, "qa") == expected
    assert of(watcher, "qa") == expected
    # No longer open: closed, whatever comes next.
    assert await mod.err("qa.answer", room=ROOM, question=question) == "closed"
    assert await mod.err("qa.dismiss", room=ROOM, question=question) == "closed"
    assert await watcher.err("qa.vote", room=ROOM, question=question) == "closed"
    assert of(watcher, "qa") == []


async def test_dismissing_and_who_may_close(nodes: tuple[Hub, Hub]) -> None:
    a, b = nodes
    asker = await member(a, "ada")
    question = await ask(asker)
    assert await asker.err("qa.dismiss", room=ROOM, question=question) == "forbidden"
    speaker = await member(b, "sam", "speaker")
    assert await speaker.err("qa.answer", room=ROOM, question=question) == "forbidden"
    # A moderator of this room only (a room claim in the token) may.
    room_mod = await connect(b, "rita", rooms={ROOM: "moderator"})
    assert await room_mod.err("qa.dismiss", room=ROOM, question="nope") == "not_found"
    assert await room_mod.err("qa.dismiss", room="no-room", question=question) == "not_found"
    reply = await room_mod.ok("qa.dismiss", room=ROOM, question=question)
    assert reply["question"]["state"] == "dismissed"
    assert [e["question"]["state"] for e in of(asker, "qa")] == ["open", "dismissed"]


async def test_two_moderators_closing_at_once_on_two_nodes_close_it_once(
    nodes: tuple[Hub, Hub],
) -> None:
    a, b = nodes
    asker = await member(a, "ada")
    question = await ask(asker)
    asker.collect()
    mod_a, mod_b = await connect(a, "m1", "moderator"), await connect(b, "m2", "moderator")
    replies = await asyncio.gather(
        mod_a.call("qa.answer", room=ROOM, question=question),
        mod_b.call("qa.dismiss", room=ROOM, question=question),
    )
    assert sorted("ok" if "ok" in r else r["err"]["code"] for r in replies) == ["closed", "ok"]
    assert len(of(asker, "qa")) == 1


# --- bounds ---------------------------------------------------------------------------------------


class Ticking:
    """Stands in for the ``time`` module of chat.qa: wall time moves 1 s per reading."""

    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def time(self) -> float:
        self.now += 1.0
        return self.now


async def test_a_room_holds_a_bounded_number_of_open_questions(
    nodes: tuple[Hub, Hub], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chat.qa, "OPEN_MAX", 3)
    a, b = nodes
    askers = [await member(a, "ada"), await member(b, "bob")]
    asked = [await ask(askers[i % 2], f"q{i}") for i in range(3)]
    for asker in askers:
        assert await asker.err("qa.ask", room=ROOM, text="one more") == "conflict"
    # An answered or dismissed question frees its place, on any node.
    mod = await connect(b, "mod", "moderator")
    await mod.ok("qa.answer", room=ROOM, question=asked[0])
    fourth = await ask(askers[0], "q3")
    assert await askers[1].err("qa.ask", room=ROOM, text="q4") == "conflict"
    snapshot = await askers[1].ok("join", room=ROOM)
    assert [q["id"] for q in snapshot["snapshot"]["questions"]] == [*asked[1:], fourth]


async def test_concurrent_asks_never_pass_the_bound(
    nodes: tuple[Hub, Hub], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chat.qa, "OPEN_MAX", 5)
    a, b = nodes
    askers = [await member(hub, f"u{i}") for i, hub in enumerate((a, b) * 4)]
    replies = await asyncio.gather(
        *(asker.call("qa.ask", room=ROOM, text="me first") for asker in askers)
    )
    assert sorted("ok" if "ok" in r else r["err"]["code"] for r in replies) == [
        *["conflict"] * 3,
        *["ok"] * 5,
    ]
    assert len(await qa_of(a).open_questions(ROOM)) == 5


async def test_closed_questions_beyond_the_kept_ones_are_forgotten_earliest_closed_first(
    nodes: tuple[Hub, Hub], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chat.qa, "CLOSED_KEPT", 2)
    monkeypatch.setattr(chat.qa, "time", Ticking())
    a, b = nodes
    asker = await member(a, "ada")
    voter = await member(b, "bob")
    mod = await connect(b, "mod", "moderator")
    asked = [await ask(asker, f"q{i}") for i in range(5)]
    for question in asked:
        await voter.ok("qa.vote", room=ROOM, question=question)
    # Closed in another order than asked: the earliest closed go first.
    for question in (asked[3], asked[0], asked[4]):
        await mod.ok("qa.dismiss", room=ROOM, question=question)
    assert await mod.err("qa.answer", room=ROOM, question=asked[3]) == "not_found"
    assert await voter.err("qa.vote", room=ROOM, question=asked[3]) == "not_found"
    assert await mod.err("qa.answer", room=ROOM, question=asked[0]) == "closed"
    await mod.ok("qa.answer", room=ROOM, question=asked[1])
    assert await mod.err("qa.answer", room=ROOM, question=asked[1]) == "closed"
    assert await mod.err("qa.answer", room=ROOM, question=asked[0]) == "not_found"
    # What a room holds: the open question, the two kept closed ones, and their voters.
    store = a.node.store
    assert set(await store.hash_get_all(f"qa:{ROOM}")) == {asked[1], asked[2], asked[4]}
    assert set(await store.hash_get_all(f"qa:{ROOM}:closed")) == {asked[1], asked[4]}
    assert await store.set_members(f"qa:{ROOM}:open") == {asked[2]}
    for gone in (asked[0], asked[3]):
        assert await store.set_size(f"qa:{ROOM}:{gone}:voters") == 0
    assert [q["id"] for q in await qa_of(b).open_questions(ROOM)] == [asked[2]]


# --- the join snapshot ----------------------------------------------------------------------------


async def test_the_snapshot_lists_open_questions_by_votes_then_ask_order(
    nodes: tuple[Hub, Hub],
) -> None:
    a, b = nodes
    asker = await member(a, "ada")
    first, second, third, fourth = [await ask(asker, f"q{i}") for i in range(4)]
    voters = [await member(b, f"v{i}") for i in range(3)]
    for voter in voters:
        await voter.ok("qa.vote", room=ROOM, question=third)
    for voter in voters[:1]:
        await voter.ok("qa.vote", room=ROOM, question=first)
        await voter.ok("qa.vote", room=ROOM, question=second)
    mod = await connect(a, "mod", "moderator")
    await mod.ok("qa.dismiss", room=ROOM, question=second)

    newcomer = await connect(b, "new")
    snapshot = (await newcomer.ok("join", room=ROOM))["snapshot"]
    listed = [(q["id"], q["votes"], q["state"]) for q in snapshot["questions"]]
    assert listed == [(third, 3, "open"), (first, 1, "open"), (fourth, 0, "open")]
    assert snapshot["questions"][0]["text"] == "q2"


async def test_a_room_without_questions_has_an_empty_list(nodes: tuple[Hub, Hub]) -> None:
    a, _ = nodes
    client = await connect(a, "ada")
    assert (await client.ok("join", room=ROOM))["snapshot"]["questions"] == []


# --- batched qa.votes -----------------------------------------------------------------------------


async def test_votes_go_out_batched_with_the_true_total_on_every_node(
    nodes: tuple[Hub, Hub],
) -> None:
    a, b = nodes
    question = await ask(await member(a, "ada"))
    on_a = [await member(a, f"a{i}") for i in range(3)]
    on_b = [await member(b, f"b{i}") for i in range(2)]
    for voter in on_a:
        await voter.ok("qa.vote", room=ROOM, question=question)
    assert all(of(m, "qa.votes") == [] for m in on_a + on_b)  # nothing before the job runs

    # Node A tells the room's nodes (its own included) which question changed, and delivers to
    # its own members; node B delivers when its own job runs.
    await flush(a)
    expected = [{"ev": "qa.votes", "room": ROOM, "question": question, "votes": 3}]
    assert all(of(m, "qa.votes") == expected for m in on_a)
    assert all(of(m, "qa.votes") == [] for m in on_b)
    await flush(b)
    assert all(of(m, "qa.votes") == expected for m in on_b)
    await flush(a, b)
    assert all(of(m, "qa.votes") == [] for m in on_a + on_b)  # once after the last change

    # Votes on both nodes within one interval: one event each, with the total from the broker.
    for voter in on_b:
        await voter.ok("qa.vote", room=ROOM, question=question)
    late = await member(a, "late")  # and one from node A
    await late.ok("qa.vote", room=ROOM, question=question)
    # One run each: A sends its change and delivers the total; then B sends its own change and
    # delivers. A heard B's change after its run, so its next run delivers again (same total).
    await flush(a, b)
    await flush(a, b)
    assert all([e["votes"] for e in of(m, "qa.votes")] == [6, 6] for m in on_a)
    assert all([e["votes"] for e in of(m, "qa.votes")] == [6] for m in on_b)
    await flush(a, b)
    assert all(of(m, "qa.votes") == [] for m in on_a + on_b)


async def test_a_node_without_members_of_the_room_sends_nothing(nodes: tuple[Hub, Hub]) -> None:
    a, b = nodes
    voter = await member(a, "ada")
    question = await ask(voter)
    await voter.ok("qa.vote", room=ROOM, question=question)
    await voter.ok("leave", room=ROOM)
    await flush(a, b)
    assert of(voter, "qa.votes") == []


async def test_marks_a_failed_run_could_not_send_wait_for_the_next(
    nodes: tuple[Hub, Hub], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = nodes
    voter = await member(a, "ada")
    question = await ask(voter)
    await voter.ok("qa.vote", room=ROOM, question=question)
    node = a.node
    real_signal = node.signal

    async def broken(topic: str, kind: str, data: Any) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(node, "signal", broken)
    with pytest.raises(ConnectionError):
        await flush(a)
    monkeypatch.setattr(node, "signal", real_signal)
    await flush(a)
    assert [e["votes"] for e in of(voter, "qa.votes")] == [1]
