"""The wire shapes of the rooms feature (``docs/protocol.md``: Rooms and presence, Stage,
Breakouts): the replies of its ops, the events it sends and its parts of the join snapshot.

Stored events come in two shapes: ``...Fields``, what the feature publishes
(:meth:`hub.node.Node.publish_event`), and ``...Event``, what members get: those fields plus
``ev``, ``room`` and ``seq`` (:class:`hub.wire.StoredFields`). Other features may import this
module (it is part of ``rooms``).
"""

# Annotations are evaluated here (no ``from __future__ import annotations``): on Python 3.11
# TypedDict reads ``NotRequired`` into ``__required_keys__`` only from evaluated ones.

from typing import Any, Literal, NotRequired, TypedDict

from hub.wire import StoredFields

# --- rooms ----------------------------------------------------------------------------------------


class RoomView(TypedDict):
    """A room as the contract shows it: ``{id, kind, title, parent}``."""

    id: str
    kind: str
    title: str
    parent: str | None


class RoomCreateReply(TypedDict):
    """``room.create`` -> ``{room}`` (also the HTTP ``POST /api/rooms`` answer)."""

    room: RoomView


class UserEntry(TypedDict):
    """Someone by id and display name: ``{user, name}`` (a panel's stage, the snapshot's
    ``speakers`` and ``moderators``)."""

    user: str
    name: str


class RoomListEntry(RoomView):
    """A ``room.list`` entry: the room and its member count (a panel's: :class:`PanelListEntry`)."""

    members: int


class ParentListEntry(RoomListEntry):
    """A panel's or a workshop's ``room.list`` entry, with ``in_breakouts``: how many people
    are in its breakout rooms (which the list does not show)."""

    in_breakouts: int


class PanelListEntry(ParentListEntry):
    """A panel's ``room.list`` entry, with ``stage``: who is speaker there."""

    stage: list[UserEntry]


class RoomListReply(TypedDict):
    """``room.list`` -> ``{rooms}``, ordered by id."""

    rooms: list[RoomListEntry]


class RoomsEvent(TypedDict):
    """``rooms {room, rooms}`` (ephemeral): a lobby's fresh rooms list."""

    ev: Literal["rooms"]
    room: str
    rooms: list[RoomListEntry]


class RoomsPart(TypedDict):
    """The join snapshot part ``rooms`` (lobby rooms only), as ``room.list`` shows them."""

    rooms: NotRequired[list[RoomListEntry]]


class JoinReply(TypedDict):
    """``join`` -> ``{room, role, seq, epoch, members, snapshot, missed?, recovered?}``
    (``missed`` and ``recovered`` with ``since``)."""

    room: RoomView
    role: str
    seq: int
    epoch: str
    members: int
    # Open here: every feature's snapshot parts merged (each typed in its feature's wire module).
    snapshot: dict[str, Any]
    # Stored events of any feature, passed through as the broker holds them.
    missed: NotRequired[list[dict[str, Any]]]
    recovered: NotRequired[bool | None]


# --- presence -------------------------------------------------------------------------------------


class PresenceEntry(TypedDict):
    """What the broker keeps of a member of a room (under its sid): ``{user, name, role}``."""

    user: str
    name: str
    role: str


class PresenceMember(PresenceEntry):
    """A ``presence`` reply member: ``{sid, user, name, role}``."""

    sid: str


class PresenceReply(TypedDict):
    """``presence`` -> ``{members, count, next?}`` (``next``: the cursor of the next page)."""

    members: list[PresenceMember]
    count: int
    next: NotRequired[str]


class PresenceChange(TypedDict):
    """A session in a ``presence`` event's ``joined`` or ``left``: ``{sid, user, name}``."""

    sid: str
    user: str
    name: str


class PresenceEvent(TypedDict):
    """``presence {room, count, joined?, left?}`` (ephemeral, batched; the lists only while the
    room is small)."""

    ev: Literal["presence"]
    room: str
    count: int
    joined: NotRequired[list[PresenceChange]]
    left: NotRequired[list[PresenceChange]]


# --- notices --------------------------------------------------------------------------------------


class AnnounceReply(TypedDict):
    """``announce`` -> ``{seq}`` of the stored ``notice`` (also the HTTP announce's answer)."""

    seq: int


# ``from`` is a Python keyword: these two are spelt the functional way.
NoticeFields = TypedDict("NoticeFields", {"text": str, "from": str, "key": NotRequired[str]})
NoticeFields.__doc__ = """The fields of a stored ``notice``: ``{text, from, key?}`` (``from``: the
sender's user id; ``key``: present when the hub wrote ``text``, naming it for clients that
show their own text in their person's language)."""

NoticeEvent = TypedDict(
    "NoticeEvent",
    {
        "ev": Literal["notice"],
        "room": str,
        "seq": int,
        "text": str,
        "from": str,
        "key": NotRequired[str],
    },
)
NoticeEvent.__doc__ = """``notice {room, seq, text, from, key?}`` (stored), as members get it and
the join snapshot's ``notices`` keeps it."""


class EventClosedEvent(TypedDict):
    """``event.closed {closed_at, text, key?}`` (ephemeral): the organizers closed the event;
    every connected session gets it once, whatever rooms it is in. ``key`` as in a notice."""

    ev: Literal["event.closed"]
    closed_at: float
    text: str
    key: NotRequired[str]


class EventCloseReply(TypedDict):
    """``POST /api/event/close`` -> ``{closed_at, closed}`` (``closed``: whether this request
    closed it, rather than an earlier one)."""

    closed_at: float
    closed: bool


class EventHello(TypedDict):
    """The hello reply's ``event`` once the event is over: ``{closed_at}``."""

    closed_at: float


class NoticesPart(TypedDict):
    """The join snapshot part ``notices``: the room's newest notices, oldest first."""

    notices: list[NoticeEvent]


# --- stage ----------------------------------------------------------------------------------------


class RoleSetReply(TypedDict):
    """``role.set`` -> ``{seq}`` of the stored ``role`` event."""

    seq: int


class RoleFields(TypedDict):
    """The fields of a stored ``role``: ``{user, role}``."""

    user: str
    role: str


class RoleEvent(RoleFields, StoredFields):
    """``role {room, seq, user, role}`` (stored)."""

    ev: Literal["role"]


class HandView(TypedDict):
    """A raised hand as the contract shows it: ``{user, name, ts}``."""

    user: str
    name: str
    ts: float


class HandsEvent(TypedDict):
    """``hands {room, queue}`` (ephemeral): the room's hand queue after a change."""

    ev: Literal["hands"]
    room: str
    queue: list[HandView]


class KickedEvent(TypedDict):
    """``kicked {room}``: this session was taken out of ``room``."""

    ev: Literal["kicked"]
    room: str


class StagePart(TypedDict):
    """The join snapshot parts of the stage: ``speakers``, ``moderators`` and ``hands``."""

    speakers: list[UserEntry]
    moderators: list[UserEntry]
    hands: list[HandView]


# --- breakouts ------------------------------------------------------------------------------------


class BreakoutRoomView(TypedDict):
    """A child room of a round: ``{id, title}``."""

    id: str
    title: str


class RoundView(TypedDict):
    """An open round as events and snapshots show it: ``{rooms, assign, ends_at?}`` (also the
    fields of the stored ``breakouts`` that opens it)."""

    rooms: list[BreakoutRoomView]
    assign: str
    ends_at: NotRequired[float]


class BreakoutsFields(TypedDict):
    """The fields of a stored ``breakouts``: a round (:class:`RoundView`), or ``{rooms: []}``
    once it closed."""

    rooms: list[BreakoutRoomView]
    assign: NotRequired[str]
    ends_at: NotRequired[float]


class BreakoutsEvent(BreakoutsFields, StoredFields):
    """``breakouts {room, seq, rooms, assign?, ends_at?}`` (stored, in the parent)."""

    ev: Literal["breakouts"]


class BreakoutOpenReply(RoundView):
    """``breakout.open`` -> ``{seq, rooms, assign, ends_at?, assignments}`` (``assignments``:
    user -> child id)."""

    seq: int
    assignments: dict[str, str]


class BreakoutBroadcastReply(TypedDict):
    """``breakout.broadcast`` -> ``{rooms: {child: seq}}``, the seq of each child's notice."""

    rooms: dict[str, int]


class BreakoutCloseReply(TypedDict):
    """``breakout.close`` -> ``{seq}`` of the parent's ``breakouts`` event."""

    seq: int


class BreakoutAssignedEvent(TypedDict):
    """``breakout.assigned {room, breakout, joined?}``: to each assigned user (``room`` the
    parent, ``breakout`` their child); ``joined``, the join reply of a session the hub moved
    into its child (a round opened with ``move``)."""

    ev: Literal["breakout.assigned"]
    room: str
    breakout: str
    joined: NotRequired[JoinReply]


class BreakoutClosedFields(TypedDict):
    """The fields of a stored ``breakout.closed``: ``{parent}``."""

    parent: str


class BreakoutClosedEvent(BreakoutClosedFields, StoredFields):
    """``breakout.closed {room: child, seq, parent}`` (stored, in each child)."""

    ev: Literal["breakout.closed"]


class BreakoutEndingFields(TypedDict):
    """The fields of a stored ``breakout.ending``: ``{parent, ends_at}``."""

    parent: str
    ends_at: float


class BreakoutEndingEvent(BreakoutEndingFields, StoredFields):
    """``breakout.ending {room: child, seq, parent, ends_at}`` (stored, in each child)."""

    ev: Literal["breakout.ending"]


class Assignment(TypedDict):
    """``assigned``, the caller's child, where they have one."""

    assigned: NotRequired[str]


class RoundSnapshot(RoundView, Assignment):
    """The snapshot's open round: ``{rooms, assign, ends_at?, parent, assigned?}``."""

    parent: str


class BreakoutsPart(TypedDict):
    """The join snapshot part ``breakouts`` (workshops, panels and breakouts, not lobbies): the
    parent's open round, or null."""

    breakouts: NotRequired[RoundSnapshot | None]
