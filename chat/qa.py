"""Questions to a panel: ``qa.ask``, ``qa.vote``, ``qa.answer``, ``qa.dismiss``, the batched
``qa.votes`` event and the ``questions`` part of the join snapshot.

Shared state lives in the node's store, so every node sees the same questions and counts:

* ``qa:{room}`` (hash): question id -> the packed :class:`Question` record;
* ``qa:{room}:asked`` (counter): the room's ask order, exact across nodes;
* ``qa:{room}:open`` (set): the ids of the open questions, at most :data:`OPEN_MAX`: an ask
  takes a place by adding its id and counting the set in one step, and gives it back if it
  went over; a close frees it;
* ``qa:{room}:closed`` (hash): question id -> ``"<state>:<ms>"``, the state it closed with and
  when (unix milliseconds); the first moderator to set the field decides, and the steps after it
  (the record, the ``qa`` event published once) may run again, so a question closes once even
  when two nodes close it at the same time or a close fails halfway;
* ``qa:{room}:{question}:voters`` (set): who voted; a vote is one step, adding the user, and the
  count is the set's size, so each user counts once whichever node and session they vote from.

A room keeps at most :data:`OPEN_MAX` open questions (another ask is refused) and
:data:`CLOSED_KEPT` closed ones: each close that passes that forgets the questions closed
earliest (their records, voters and claims), which commands then find no more.

Vote counts go out in two steps, both from one periodic job per node (every
:data:`VOTES_INTERVAL`): the node that took votes tells the room's nodes which questions changed
(an internal signal, at most one per question per run), and each node that heard of a change
reads the count from the store and hands a ``qa.votes`` event to its own members of the room.
Reading when delivering, rather than sending a count read by the voting node, keeps what each
member sees in order: every node's reads are successive reads of one set that only grows, so
a member never sees a count drop, and the last ``qa.votes`` it gets is read after the last vote.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Final, cast

from chat.wire import (
    QaFields,
    QaVoteReply,
    QaVotesEvent,
    QuestionReply,
    QuestionsPart,
    QuestionState,
    QuestionView,
)
from hub import fields
from hub.auth import Role
from hub.coalesce import CoalescedEvent, Derived, Mark
from hub.codec import pack, unpack
from hub.dispatch import CommandContext
from hub.errors import HubError
from hub.feature import FeatureContext, RoomInfo
from hub.node import Node
from rooms.feature import RoomsFeature
from rooms.model import joined_room

log = logging.getLogger(__name__)

MAX_QUESTION = 500
# Open questions a room holds: every join snapshot lists them all.
OPEN_MAX = 1000
# Closed questions a room keeps (for qa.vote's and a close's answers); older ones are forgotten.
CLOSED_KEPT = 1000
# How often a node sends its vote changes and its members' qa.votes: at most this often per
# question, and always once after the last change. Read when the feature is installed.
VOTES_INTERVAL = 0.25

State = QuestionState
OPEN: Final = "open"
ANSWERED: Final = "answered"
DISMISSED: Final = "dismissed"

_SIGNAL: Final = "qa.votes"


@dataclass(frozen=True, slots=True)
class Question:
    """A question as the broker keeps it. ``order`` numbers the room's questions in the order
    they were asked (1, 2, ...); it breaks ties between equal vote counts and is not sent."""

    id: str
    user: str
    name: str
    text: str
    state: State
    order: int

    def to_record(self) -> dict[str, Any]:
        """The record stored in the room's question hash."""
        return {
            "id": self.id,
            "user": self.user,
            "name": self.name,
            "text": self.text,
            "state": self.state,
            "order": self.order,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Question:
        """Inverse of :meth:`to_record`."""
        return cls(
            record["id"],
            record["user"],
            record["name"],
            record["text"],
            record["state"],
            record["order"],
        )

    def wire(self, votes: int) -> QuestionView:
        """The question as clients see it (``{id, user, name, text, votes, state}``)."""
        return {
            "id": self.id,
            "user": self.user,
            "name": self.name,
            "text": self.text,
            "votes": votes,
            "state": self.state,
        }


def open_questions(counted: Iterable[tuple[Question, int]]) -> list[QuestionView]:
    """The open ones of ``(question, votes)`` pairs, as clients see them: most votes first, then
    in the order they were asked."""
    live = [(question, votes) for question, votes in counted if question.state == OPEN]
    live.sort(key=lambda pair: (-pair[1], pair[0].order))
    return [question.wire(votes) for question, votes in live]


class QaFeature:
    """Q&A in rooms (any kind; meant for panels). See the module docstring for how questions,
    votes and their events are shared between nodes."""

    def __init__(self, node: Node, rooms: RoomsFeature) -> None:
        self.node = node
        self.rooms = rooms
        self.store = node.store

    def install(self, ctx: FeatureContext) -> None:
        """Register the Q&A ops, the snapshot part, the vote signal and the periodic job."""
        ctx.command("qa.ask", self.ask)
        ctx.command("qa.vote", self.vote)
        ctx.command("qa.answer", self.answer)
        ctx.command("qa.dismiss", self.dismiss)
        ctx.on_room_snapshot(self.snapshot)
        self.votes = CoalescedEvent(ctx, _SIGNAL, self._read_votes, interval=VOTES_INTERVAL)

    # --- commands -----------------------------------------------------------------------------

    async def ask(self, ctx: CommandContext, cmd: dict[str, Any]) -> QuestionReply:
        """Ask a question in a room the caller is in: it is stored open with no votes, and the
        stored event ``qa`` goes to the room. Replies ``{question, seq}``; ``conflict`` while
        the room has :data:`OPEN_MAX` open questions."""
        room = joined_room(cmd.get("room"), ctx.session.rooms)
        text = fields.text(cmd.get("text"), "text", MAX_QUESTION)
        identity = ctx.identity
        qid = secrets.token_urlsafe(9)
        _, open_now = await self.store.set_add_counted(_open(room), qid)
        if open_now > OPEN_MAX:
            await self.store.set_remove(_open(room), qid)
            raise HubError(
                "conflict",
                f"{room} has {OPEN_MAX} open questions: ask again once some are answered",
            )
        try:
            order = await self.store.incr(f"qa:{room}:asked")
            question = Question(qid, identity.user_id, identity.name, text, OPEN, order)
            # Stored before it is announced, so whoever sees the event can vote for it at once.
            await self.store.hash_set(f"qa:{room}", question.id, pack(question.to_record()))
        except Exception:
            with contextlib.suppress(Exception):
                await self.store.set_remove(_open(room), qid)
            raise
        wire = question.wire(0)
        published: QaFields = {"question": wire}
        seq = await self.node.publish_event(room, "qa", published)
        return {"question": wire, "seq": seq}

    async def vote(self, ctx: CommandContext, cmd: dict[str, Any]) -> QaVoteReply:
        """Vote for an open question of a room the caller is in, once per user across every
        session and node (again: ``conflict``; not open: ``closed``). Replies ``{votes}``, the
        count including this vote; members hear of it through the batched ``qa.votes``."""
        room = joined_room(cmd.get("room"), ctx.session.rooms)
        question = await self._question(room, cmd)
        if question.state != OPEN:
            raise HubError("closed", f"question {question.id} is {question.state}")
        # One atomic step: the vote counts once the user is in the set (the count is its size).
        added, votes = await self.store.set_add_counted(
            _voters(room, question.id), ctx.identity.user_id
        )
        if not added:
            raise HubError("conflict", "you voted for this question already")
        self.votes.changed_here((room, question.id))
        return {"votes": votes}

    async def answer(self, ctx: CommandContext, cmd: dict[str, Any]) -> QuestionReply:
        """Mark an open question answered (moderators); see :meth:`close_question`."""
        return await self.close_question(ctx, cmd, ANSWERED)

    async def dismiss(self, ctx: CommandContext, cmd: dict[str, Any]) -> QuestionReply:
        """Dismiss an open question (moderators); see :meth:`close_question`."""
        return await self.close_question(ctx, cmd, DISMISSED)

    async def close_question(
        self, ctx: CommandContext, cmd: dict[str, Any], state: State
    ) -> QuestionReply:
        """Move an open question to ``state`` (moderators of the room; joining it is not
        needed). A question that is no longer open answers ``closed``: of two moderators closing
        it at once, on any nodes, exactly one succeeds. The stored event ``qa`` carries the
        question in its new state with its current votes. Replies ``{question, seq}``.

        The first claim of the question's close decides its state; the steps after it (the
        record, the event published once) may run again, so a close that failed halfway is
        completed by the next one, which answers as the close that published the event."""
        room = fields.room_id(cmd.get("room"))
        await self.rooms.directory.require(room)
        if await self.rooms.roles.current_role(ctx.session, room) < Role.MODERATOR:
            raise HubError("forbidden", "only moderators answer or dismiss questions")
        question = await self._question(room, cmd)
        if question.state == OPEN:
            closes = _closes(room)
            claim = f"{state}:{round(time.time() * 1000)}".encode()
            if not await self.store.hash_set(closes, question.id, claim, only_if_absent=True):
                claimed = await self.store.hash_get(closes, question.id)
                state = _claimed_state(claimed) if claimed is not None else state
            question = replace(question, state=state)
            await self.store.hash_set(f"qa:{room}", question.id, pack(question.to_record()))
        await self.store.set_remove(_open(room), question.id)
        # Also for a question already closed: its event may not be out yet (a close that
        # failed halfway), and only the close that publishes it succeeds.
        wire = question.wire(await self._votes(room, question.id))
        fields_: QaFields = {"question": wire}
        seq, published = await self.node.publish_event_once(
            room, "qa", fields_, f"{_closes(room)}:{question.id}"
        )
        if not published:
            raise HubError("closed", f"question {question.id} is not open")
        try:
            await self.forget_closed(room)
        except Exception:
            # The close is done; the next one forgets what this one could not.
            log.warning("closed questions of %s not trimmed", room, exc_info=True)
        return {"question": wire, "seq": seq}

    async def forget_closed(self, room: str) -> None:
        """Forget the closed questions beyond :data:`CLOSED_KEPT`, those closed earliest first:
        their record, voters and close claim (the claim last, so a forget cut short is taken up
        by the next one)."""
        closes = await self.store.hash_get_all(_closes(room))
        extra = len(closes) - CLOSED_KEPT
        if extra <= 0:
            return
        earliest = sorted(closes, key=lambda qid: (_claimed_at(closes[qid]), qid))[:extra]
        for qid in earliest:
            await self.store.hash_delete(f"qa:{room}", qid)
            await self.store.delete(_voters(room, qid))
            await self.store.hash_delete(_closes(room), qid)

    # --- snapshot -----------------------------------------------------------------------------

    async def snapshot(self, room: RoomInfo, role: Role) -> QuestionsPart:
        """The join snapshot's ``questions``: see :meth:`open_questions`."""
        return {"questions": await self.open_questions(room.id)}

    async def open_questions(self, room: str) -> list[QuestionView]:
        """The room's open questions with their current votes, most votes first, then in the
        order they were asked."""
        records = await self.store.hash_get_all(f"qa:{room}")
        questions = [Question.from_record(unpack(record)) for record in records.values()]
        still_open = [question for question in questions if question.state == OPEN]
        # Counted together: their reads go to the broker at once, not one after another.
        votes = await asyncio.gather(*(self._votes(room, q.id) for q in still_open))
        return open_questions(list(zip(still_open, votes, strict=True)))

    # --- batched vote counts ------------------------------------------------------------------

    async def flush_votes(self) -> None:
        """One run of the periodic job: tell the room's nodes which questions this node took
        votes for, then send ``qa.votes`` with the broker's count to this node's members of each
        room where a question changed. At most one of each per question per run; what could not
        be sent (the broker failed) is kept for the next run."""
        await self.votes.flush()

    async def _read_votes(self, mark: Mark) -> Derived:
        room, question = mark
        votes = await self._votes(room, question)
        event: QaVotesEvent = {"ev": "qa.votes", "room": room, "question": question, "votes": votes}
        return Derived(event)

    # --- helpers ------------------------------------------------------------------------------

    async def _question(self, room: str, cmd: dict[str, Any]) -> Question:
        qid = fields.item_id(cmd.get("question"), "question")
        record = await self.store.hash_get(f"qa:{room}", qid)
        if record is None:
            raise HubError("not_found", f"no question {qid} in {room}")
        return Question.from_record(unpack(record))

    async def _votes(self, room: str, question: str) -> int:
        return await self.store.set_size(_voters(room, question))


def _voters(room: str, question: str) -> str:
    return f"qa:{room}:{question}:voters"


def _closes(room: str) -> str:
    return f"qa:{room}:closed"


def _open(room: str) -> str:
    return f"qa:{room}:open"


def _claimed_state(claim: bytes) -> State:
    """The state of a close claim ``"<state>:<ms>"``."""
    return cast(State, claim.decode().partition(":")[0])


def _claimed_at(claim: bytes) -> int:
    """When a close claim was made, unix milliseconds (0 for a claim written without it)."""
    _, _, at = claim.decode().partition(":")
    return int(at) if at.isdigit() else 0
