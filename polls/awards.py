"""The event's awards as the rooms file declares them, as pure data and rules: the polls declared
ahead of time (``[[polls]]``, opened later with ``poll.open``), the year's partnerships
(``[[partnerships]]``), and what a join snapshot's ``awards`` shows of them. No I/O but reading
the rooms file::

    [[polls]]
    id = "manager-2026"               # a poll id, unique in the file
    room = "main"                     # optional: the lobby (default) or a room of the file
    question = "European cluster manager of the year?"
    show = "closed"                   # optional, as in poll.create: multi, anonymous, show,
    allow_change = false              #   allow_change, guests, duration
    guests = false

    [[polls.options]]                 # an option with a profile, or options = ["A", "B"]
    text = "Zoë Müller"
    organisation = "Grid Co"          # optional: organisation, country, description, image
    country = "DE"
    image = "https://example.org/zoe.jpg"

    [[polls.options]]
    text = "Ada Lovelace"

    [[partnerships]]
    title = "Hydrogen valleys"        # one line
    members = ["North Cluster", "South Cluster"]
    text = "..."                      # optional
    link = "https://example.org/h2"   # optional
"""

from __future__ import annotations

import enum
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from hub import fields
from hub.errors import HubError
from polls.model import Poll, PollSpec, PollState, parse_spec
from polls.wire import AwardPoll, AwardsMap, PartnershipMap
from rooms.model import LOBBY

MAX_DECLARED_POLLS: Final = 50
MAX_PARTNERSHIPS: Final = 50
MAX_PARTNERSHIP_TITLE: Final = 200
MAX_MEMBERS: Final = 20
MAX_MEMBER: Final = 100
MAX_PARTNERSHIP_TEXT: Final = 1000
MAX_LINK: Final = 2000
POLL_KEYS: Final = (
    "id",
    "room",
    "question",
    "options",
    "multi",
    "anonymous",
    "show",
    "allow_change",
    "guests",
    "duration",
)
PARTNERSHIP_KEYS: Final = ("title", "members", "text", "link")


class AwardState(enum.StrEnum):
    """Where a declared poll stands: not opened yet, open, or closed."""

    DECLARED = "declared"
    OPEN = "open"
    CLOSED = "closed"


def award_state(poll: Poll | None, now: float) -> AwardState:
    """The state of a declared poll whose opened poll is ``poll`` (None: never opened), at
    ``now``: a poll whose time is up counts as closed, as the join snapshot counts it."""
    if poll is None:
        return AwardState.DECLARED
    if poll.state is PollState.OPEN and not poll.due(now):
        return AwardState.OPEN
    return AwardState.CLOSED


@dataclass(frozen=True, slots=True)
class DeclaredPoll:
    """A poll the rooms file declares: its id, its room and what it opens with."""

    id: str
    room: str
    spec: PollSpec

    def opened(self, created_by: str, now: float) -> Poll:
        """The poll ``poll.open`` opens: exactly the declared fields, under the declared id,
        opened at ``now`` by ``created_by``."""
        return self.spec.opened(poll_id=self.id, room=self.room, created_by=created_by, now=now)

    def describe(self, state: AwardState) -> AwardPoll:
        """The poll as ``awards`` lists it: ``{id, question, options, profiles?, state}``."""
        described: AwardPoll = {
            "id": self.id,
            "question": self.spec.question,
            "options": list(self.spec.options),
            "state": state.value,
        }
        if self.spec.profiles:
            described["profiles"] = [profile.describe() for profile in self.spec.profiles]
        return described


@dataclass(frozen=True, slots=True)
class Partnership:
    """A partnership of the year: a title, its members' names, and optionally a text and a
    link."""

    title: str
    members: tuple[str, ...]
    text: str | None = None
    link: str | None = None

    def describe(self) -> PartnershipMap:
        """``{title, members, text?, link?}``."""
        described: PartnershipMap = {"title": self.title, "members": list(self.members)}
        if self.text is not None:
            described["text"] = self.text
        if self.link is not None:
            described["link"] = self.link
        return described


@dataclass(frozen=True, slots=True)
class Awards:
    """Everything the rooms file declares for the awards: its polls and its partnerships, each
    in the file's order."""

    polls: tuple[DeclaredPoll, ...] = ()
    partnerships: tuple[Partnership, ...] = ()

    def declared(self, room: str, poll_id: str) -> DeclaredPoll:
        """The poll ``poll_id`` declared for ``room``; ``not_found`` when the file declares no
        such poll for that room."""
        for poll in self.polls:
            if poll.id == poll_id and poll.room == room:
                return poll
        raise HubError("not_found", f"no declared poll {poll_id} in {room}")

    def polls_of(self, room: str) -> list[DeclaredPoll]:
        """The polls declared for ``room``, in the file's order."""
        return [poll for poll in self.polls if poll.room == room]

    def shown_in(self, room: str) -> bool:
        """Whether a join snapshot of ``room`` carries ``awards``: the lobby's always, another
        room's when the file declares polls for it."""
        return room == LOBBY or any(poll.room == room for poll in self.polls)

    def view(self, room: str, polls: Iterable[Poll], now: float) -> AwardsMap:
        """``awards`` of ``room``'s join snapshot, given the room's polls (opened ones, any
        state): the polls declared for it with their state at ``now``, and, in the lobby, the
        partnerships (elsewhere none)."""
        opened = {poll.id: poll for poll in polls}
        return {
            "polls": [
                declared.describe(award_state(opened.get(declared.id), now))
                for declared in self.polls_of(room)
            ],
            "partnerships": [p.describe() for p in self.partnerships] if room == LOBBY else [],
        }


# --- the rooms file ------------------------------------------------------------------------------


def _entry(entry: object, allowed: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise HubError("bad_request", "must be a table")
    unknown = sorted(str(key) for key in entry if key not in allowed)
    if unknown:
        raise fields.bad(unknown[0], f"is not a field of {what} ({', '.join(allowed)})")
    return entry


def parse_declared_poll(entry: object, room_ids: Iterable[str]) -> DeclaredPoll:
    """One ``[[polls]]`` entry: ``id`` (a poll id, :data:`hub.fields.ITEM_ID`), ``room`` (the
    lobby, the default, or one of ``room_ids``), and the fields of ``poll.create`` with its
    rules and defaults (:func:`polls.model.parse_spec`); no other keys. Raises ``bad_request``
    (``too_large`` for a description past its length) naming the first wrong field."""
    table = _entry(entry, POLL_KEYS, "a poll")
    poll_id = fields.item_id(table.get("id"), "id")
    room = fields.room_id(table.get("room", LOBBY), "room")
    if room != LOBBY and room not in set(room_ids):
        raise fields.bad("room", f"must be the lobby ({LOBBY}) or a room the file declares")
    return DeclaredPoll(poll_id, room, parse_spec(table))


def parse_partnership(entry: object) -> Partnership:
    """One ``[[partnerships]]`` entry: ``title`` (a :func:`hub.fields.line` of at most
    :data:`MAX_PARTNERSHIP_TITLE` characters), ``members`` (1 to :data:`MAX_MEMBERS` names,
    each a line of at most :data:`MAX_MEMBER`), ``text`` (optional, a :func:`hub.fields.text`
    of at most :data:`MAX_PARTNERSHIP_TEXT`), ``link`` (optional, a :func:`hub.fields.url` of
    at most :data:`MAX_LINK`); no other keys. Raises ``bad_request`` (``too_large`` for a text
    past its length) naming the first wrong field."""
    table = _entry(entry, PARTNERSHIP_KEYS, "a partnership")
    if "title" not in table:
        raise fields.bad("title", "is required")
    title = fields.line(table["title"], "title", MAX_PARTNERSHIP_TITLE)
    if "members" not in table:
        raise fields.bad("members", "is required")
    members = tuple(
        fields.line(member, f"members[{index}]", MAX_MEMBER)
        for index, member in enumerate(fields.items(table["members"], "members", 1, MAX_MEMBERS))
    )
    text = table.get("text")
    link = table.get("link")
    return Partnership(
        title,
        members,
        text=None if text is None else fields.text(text, "text", MAX_PARTNERSHIP_TEXT),
        link=None if link is None else fields.url(link, "link", MAX_LINK),
    )


def _entries(document: Mapping[str, Any], key: str, most: int) -> list[object]:
    entries = document.get(key, [])
    if not isinstance(entries, list):
        raise ValueError(f"'{key}' must be an array of tables ([[{key}]])")
    if len(entries) > most:
        raise ValueError(f"at most {most} {key}")
    return entries


def parse_awards(document: Mapping[str, Any], room_ids: Iterable[str] = ()) -> Awards:
    """The awards of a rooms file's parsed TOML: its ``[[polls]]`` (at most
    :data:`MAX_DECLARED_POLLS`, ids unique; each room the lobby or one of ``room_ids``) and its
    ``[[partnerships]]`` (at most :data:`MAX_PARTNERSHIPS`), in the file's order. Raises
    ValueError naming the entry that is wrong (``polls[1]: options[0].country: ...``)."""
    rooms = set(room_ids)
    polls: list[DeclaredPoll] = []
    for index, entry in enumerate(_entries(document, "polls", MAX_DECLARED_POLLS)):
        try:
            poll = parse_declared_poll(entry, rooms)
        except HubError as error:
            raise ValueError(f"polls[{index}]: {error.msg}") from None
        if any(earlier.id == poll.id for earlier in polls):
            raise ValueError(f"polls[{index}]: id {poll.id} is used twice")
        polls.append(poll)
    partnerships: list[Partnership] = []
    for index, entry in enumerate(_entries(document, "partnerships", MAX_PARTNERSHIPS)):
        try:
            partnerships.append(parse_partnership(entry))
        except HubError as error:
            raise ValueError(f"partnerships[{index}]: {error.msg}") from None
    return Awards(tuple(polls), tuple(partnerships))


def load_awards_file(path: str | Path, room_ids: Iterable[str] = ()) -> Awards:
    """The awards of the rooms file at ``path`` (see :func:`parse_awards`); ValueError (with
    the path) when an entry is wrong, OSError when the file cannot be read."""
    with open(path, "rb") as handle:
        document: dict[str, Any] = tomllib.load(handle)
    try:
        return parse_awards(document, room_ids)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
