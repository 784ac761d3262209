"""The wire shapes of the chat feature (``docs/protocol.md``: Chat and questions, Chat, Direct
messages, Q&A): the replies of its ops, the events it sends and its parts of the join snapshot.

Stored events come in two shapes: ``...Fields``, what the feature publishes
(:meth:`hub.node.Node.publish_event`), and ``...Event``, what members get: those fields plus
``ev``, ``room`` and ``seq`` (:class:`hub.wire.StoredFields`).
"""

# Annotations are evaluated here (no ``from __future__ import annotations``): on Python 3.11
# TypedDict reads ``NotRequired`` into ``__required_keys__`` only from evaluated ones.

from typing import Literal, NotRequired, TypedDict

from hub.wire import StoredFields

# --- chat -----------------------------------------------------------------------------------------


class ChatFields(TypedDict):
    """The fields of a stored ``chat``: ``{id, user, name, text, ts, reply_to?}``."""

    id: str
    user: str
    name: str
    text: str
    ts: float
    reply_to: NotRequired[str]


class ChatEvent(ChatFields, StoredFields):
    """``chat {room, seq, id, user, name, text, ts, reply_to?}`` (stored), as members get it
    and ``chat.history`` returns it."""

    ev: Literal["chat"]


class ChatSendReply(TypedDict):
    """``chat.send`` -> ``{id, seq}`` (a retry with the same key: the first send's)."""

    id: str
    seq: int


class ChatHistoryReply(TypedDict):
    """``chat.history`` -> ``{messages, cap?}`` (``cap``: moderators only)."""

    messages: list[ChatEvent]
    cap: NotRequired[int]


class ChatDeleteReply(TypedDict):
    """``chat.delete`` -> ``{seq}`` of the stored ``chat.deleted``."""

    seq: int


class ChatDeletedFields(TypedDict):
    """The fields of a stored ``chat.deleted``: ``{msg}``, the deleted message's id."""

    msg: str


class ChatDeletedEvent(ChatDeletedFields, StoredFields):
    """``chat.deleted {room, seq, msg}`` (stored)."""

    ev: Literal["chat.deleted"]


# --- moderation -----------------------------------------------------------------------------------


class ChatMuteReply(TypedDict):
    """``chat.mute`` -> ``{until}`` (unix seconds; 0 when unmuted)."""

    until: int


class ChatMutedFields(TypedDict):
    """The fields of a stored ``chat.muted``: ``{user, until}``."""

    user: str
    until: int


class ChatMutedEvent(ChatMutedFields, StoredFields):
    """``chat.muted {room, seq, user, until}`` (stored)."""

    ev: Literal["chat.muted"]


class SlowmodeFields(TypedDict):
    """The fields of a stored ``room.slowmode``: ``{seconds}`` (0: off)."""

    seconds: int


class SlowmodeEvent(SlowmodeFields, StoredFields):
    """``room.slowmode {room, seq, seconds}`` (stored)."""

    ev: Literal["room.slowmode"]


class ModerationPart(TypedDict):
    """The join snapshot part of moderation: ``slowmode`` while on, ``muted_until`` while the
    caller is muted."""

    slowmode: NotRequired[int]
    muted_until: NotRequired[int]


# --- direct messages ------------------------------------------------------------------------------

# ``from`` and ``with`` are Python keywords: these two are spelt the functional way.
DmEvent = TypedDict(
    "DmEvent",
    {
        "ev": Literal["dm"],
        "id": str,
        "from": str,
        "name": str,
        "text": str,
        "ts": float,
        "n": int,
    },
)
DmEvent.__doc__ = """``dm {id, from, name, text, ts, n}``: to every session of the recipient, and
as ``dm.history`` returns it (``from``: the sender's user id)."""

Conversation = TypedDict("Conversation", {"with": str, "name": str | None, "n": int, "ts": float})
Conversation.__doc__ = """A ``dm.conversations`` entry: ``{with, name, n, ts}`` (``name``: the
other user's as last seen in a message they sent, null if none)."""


class DmSendReply(TypedDict):
    """``dm.send`` -> ``{id, ts, n}``."""

    id: str
    ts: float
    n: int


class DmHistoryReply(TypedDict):
    """``dm.history`` -> ``{messages}``, oldest first."""

    messages: list[DmEvent]


class DmConversationsReply(TypedDict):
    """``dm.conversations`` -> ``{conversations}``, newest first."""

    conversations: list[Conversation]


# --- questions ------------------------------------------------------------------------------------

QuestionState = Literal["open", "answered", "dismissed"]


class QuestionView(TypedDict):
    """A question as clients see it: ``{id, user, name, text, votes, state}``."""

    id: str
    user: str
    name: str
    text: str
    votes: int
    state: QuestionState


class QaFields(TypedDict):
    """The fields of a stored ``qa``: ``{question}``."""

    question: QuestionView


class QaEvent(QaFields, StoredFields):
    """``qa {room, seq, question}`` (stored): a question asked, answered or dismissed."""

    ev: Literal["qa"]


class QuestionReply(TypedDict):
    """``qa.ask``, ``qa.answer`` and ``qa.dismiss`` -> ``{question, seq}``, the question as the
    stored ``qa`` carries it."""

    question: QuestionView
    seq: int


class QaVoteReply(TypedDict):
    """``qa.vote`` -> ``{votes}``, the count including this vote."""

    votes: int


class QaVotesEvent(TypedDict):
    """``qa.votes {room, question, votes}`` (ephemeral, batched): a question's vote count."""

    ev: Literal["qa.votes"]
    room: str
    question: str
    votes: int


class QuestionsPart(TypedDict):
    """The join snapshot part ``questions``: the open ones, most votes first."""

    questions: list[QuestionView]
