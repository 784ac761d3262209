"""The rules of profiles and the people directory, without I/O: the event's interests (from the
rooms file), what ``profile.set`` accepts, the profile record and what others see of it, and the
directory's search and paging.

A profile belongs to a person with a token of the event (guests have none). Its texts follow the
hub's text rules (:mod:`hub.fields`): the name is a display name, the organisation one line, the
bio a text, the country an ISO 3166-1 alpha-2 code; the interests come from the event's list.
Nothing here renders anything: clients show every text as text.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from hub import fields
from hub.errors import HubError
from networking.profile_wire import Profile

# The event's list of interests (the rooms file's top-level ``interests``).
MAX_EVENT_INTERESTS: Final = 100
MAX_INTEREST: Final = 40
# A profile's own fields.
MAX_ORGANISATION: Final = 100
MAX_BIO: Final = 500
MAX_PROFILE_INTERESTS: Final = 10
# directory.search: the query's length, and the page size.
MAX_QUERY: Final = 64
PAGE_DEFAULT: Final = 20
PAGE_MAX: Final = 50
# A cursor holds a sort key (a folded name and a user id): well within this.
MAX_AFTER: Final = 1000


# --- the event's interests ----------------------------------------------------------------------


def parse_interests(document: Mapping[str, Any]) -> list[str]:
    """The event's interests from a parsed rooms file: its top-level ``interests``, a list of at
    most :data:`MAX_EVENT_INTERESTS` distinct one-line strings (case-insensitively distinct) of
    1 to :data:`MAX_INTEREST` characters, trimmed, in the file's order; none when absent. Raises
    ValueError naming what is wrong."""
    value = document.get("interests", [])
    if not isinstance(value, list):
        raise ValueError("'interests' must be a list of strings")
    if len(value) > MAX_EVENT_INTERESTS:
        raise ValueError(f"'interests' must hold at most {MAX_EVENT_INTERESTS} items")
    interests: list[str] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        try:
            interest = fields.line(item, f"interests[{index}]", MAX_INTEREST)
        except HubError as error:
            raise ValueError(error.msg) from None
        if interest.casefold() in seen:
            raise ValueError(f"interests[{index}]: {interest!r} is listed twice")
        seen.add(interest.casefold())
        interests.append(interest)
    return interests


class Interests:
    """The event's interests, and the rule that names one of them (case-insensitively, as the
    list spells it)."""

    def __init__(self, interests: Sequence[str]) -> None:
        self.names: tuple[str, ...] = tuple(interests)
        self._by_fold = {name.casefold(): name for name in self.names}

    def name(self, value: object, field: str) -> str:
        """The interest ``value`` names, as the event's list spells it; else ``bad_request``
        naming it."""
        if not isinstance(value, str):
            raise fields.bad(field, "must be a string")
        name = self._by_fold.get(value.strip().casefold())
        if name is None:
            shown = value if len(value) <= MAX_INTEREST else value[:MAX_INTEREST] + "…"
            raise fields.bad(field, f"{shown!r} is not one of the event's interests")
        return name

    def choose(self, value: object, field: str) -> tuple[str, ...]:
        """A profile's interests: a list of at most :data:`MAX_PROFILE_INTERESTS` of the event's
        interests (repeats count once), in the event's order; else ``bad_request`` naming the
        first that is not one."""
        chosen = {
            self.name(item, f"{field}[{index}]")
            for index, item in enumerate(fields.items(value, field, 0, len(self.names) + 10))
        }
        if len(chosen) > MAX_PROFILE_INTERESTS:
            raise fields.bad(field, f"must hold at most {MAX_PROFILE_INTERESTS} interests")
        return tuple(name for name in self.names if name in chosen)


# --- the profile ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProfileRecord:
    """One person's profile as the store keeps it. ``name`` None means the name they signed in
    with (``signed_in_name``, refreshed at each ``profile.set``); ``listed``: shown in the
    directory and to others; ``contact``: others may write to them."""

    user: str
    signed_in_name: str
    name: str | None = None
    organisation: str | None = None
    country: str | None = None
    bio: str | None = None
    interests: tuple[str, ...] = ()
    listed: bool = False
    contact: bool = False

    @property
    def shown_name(self) -> str:
        """The name others see."""
        return self.name or self.signed_in_name

    def to_record(self) -> dict[str, Any]:
        """The map the store keeps (packed by the caller)."""
        return {
            "user": self.user,
            "signed_in_name": self.signed_in_name,
            "name": self.name,
            "organisation": self.organisation,
            "country": self.country,
            "bio": self.bio,
            "interests": list(self.interests),
            "listed": self.listed,
            "contact": self.contact,
        }

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> ProfileRecord:
        """The profile of a stored map (as :meth:`to_record` made it)."""
        return cls(
            user=data["user"],
            signed_in_name=data["signed_in_name"],
            name=data.get("name"),
            organisation=data.get("organisation"),
            country=data.get("country"),
            bio=data.get("bio"),
            interests=tuple(data.get("interests") or ()),
            listed=bool(data.get("listed")),
            contact=bool(data.get("contact")),
        )

    def view(self, *, hidden: bool) -> Profile:
        """The profile as clients get it."""
        return {
            "user": self.user,
            "name": self.shown_name,
            "organisation": self.organisation,
            "country": self.country,
            "bio": self.bio,
            "interests": list(self.interests),
            "listed": self.listed,
            "contact": self.contact,
            "hidden": hidden,
        }


def blank_profile(user: str, signed_in_name: str) -> ProfileRecord:
    """The profile of someone who never set one: their sign-in name, not listed, no contact."""
    return ProfileRecord(user, signed_in_name)


def _clearable(value: object, field: str, limit: int, *, name: bool = False) -> str | None:
    """A text field of ``profile.set``: null or blank clears it, else the text rule applies."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if name:
        return fields.display_name(value, field)
    return fields.line(value, field, limit)


def apply_changes(
    current: ProfileRecord, cmd: Mapping[str, Any], interests: Interests
) -> ProfileRecord:
    """``current`` with the fields of a ``profile.set`` applied: a field left out stays as it
    was; null or blank clears a text (a cleared name is the sign-in name again, a cleared country
    none); ``listed`` and ``contact`` are booleans. Every field is checked before anything
    changes; the first wrong one is ``bad_request`` (the bio past its length ``too_large``)."""
    changes: dict[str, Any] = {}
    if "name" in cmd:
        changes["name"] = _clearable(cmd["name"], "name", fields.MAX_NAME, name=True)
    if "organisation" in cmd:
        changes["organisation"] = _clearable(cmd["organisation"], "organisation", MAX_ORGANISATION)
    if "country" in cmd:
        raw = cmd["country"]
        blank = raw is None or (isinstance(raw, str) and not raw.strip())
        changes["country"] = None if blank else fields.country(raw)
    if "bio" in cmd:
        raw = cmd["bio"]
        blank = raw is None or (isinstance(raw, str) and not raw.strip())
        changes["bio"] = None if blank else fields.text(raw, "bio", MAX_BIO)
    if "interests" in cmd:
        raw = cmd["interests"]
        changes["interests"] = () if raw is None else interests.choose(raw, "interests")
    for flag in ("listed", "contact"):
        if flag in cmd:
            changes[flag] = fields.flag(cmd[flag], flag, getattr(current, flag))
    return replace(current, **changes)


# --- the directory -------------------------------------------------------------------------------

SortKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Query:
    """A ``directory.search``: each given filter must match (``q``, ``organisation`` folded)."""

    q: str | None = None
    organisation: str | None = None
    country: str | None = None
    interest: str | None = None
    after: SortKey | None = None
    limit: int = PAGE_DEFAULT


def _filter_text(value: object, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise fields.bad(field, "must be a string")
    text = value.strip()
    if len(text) > MAX_QUERY:
        raise fields.bad(field, f"must be at most {MAX_QUERY} characters")
    return text.casefold() or None


def parse_query(cmd: Mapping[str, Any], interests: Interests) -> Query:
    """The search a ``directory.search`` asks for: ``q`` and ``organisation`` strings of at most
    :data:`MAX_QUERY` characters (blank: no filter), ``country`` a code, ``interest`` one of the
    event's, ``after`` a cursor a previous page handed out, ``limit`` 1 to :data:`PAGE_MAX`;
    else ``bad_request`` naming the field."""
    raw_country = cmd.get("country")
    raw_interest = cmd.get("interest")
    return Query(
        q=_filter_text(cmd.get("q"), "q"),
        organisation=_filter_text(cmd.get("organisation"), "organisation"),
        country=None if raw_country in (None, "") else fields.country(raw_country),
        interest=None if raw_interest in (None, "") else interests.name(raw_interest, "interest"),
        after=parse_cursor(cmd.get("after")),
        limit=fields.optional_integer(cmd.get("limit"), "limit", 1, PAGE_MAX) or PAGE_DEFAULT,
    )


def sort_key(record: ProfileRecord) -> SortKey:
    """The directory's order: by name (case-insensitively), then by user id."""
    return (record.shown_name.casefold(), record.user)


def make_cursor(key: SortKey) -> str:
    """The ``next`` of a page: the sort key of its last profile, as a string."""
    return json.dumps(list(key), ensure_ascii=False, separators=(",", ":"))


def parse_cursor(value: object, field: str = "after") -> SortKey | None:
    """A cursor :func:`make_cursor` made, or None when absent; else ``bad_request``."""
    if value is None:
        return None
    if isinstance(value, str) and len(value) <= MAX_AFTER:
        try:
            decoded = json.loads(value)
        except ValueError:
            decoded = None
        if (
            isinstance(decoded, list)
            and len(decoded) == 2
            and all(isinstance(part, str) for part in decoded)
        ):
            return (decoded[0], decoded[1])
    raise fields.bad(field, "must be the next of a previous page")


@dataclass(frozen=True, slots=True)
class _Entry:
    key: SortKey
    organisation: str
    record: ProfileRecord


class Directory:
    """The searchable directory at one moment: the listed, not hidden profiles, in order."""

    def __init__(self, records: Iterable[ProfileRecord], hidden: Iterable[str]) -> None:
        hidden_users = set(hidden)
        entries = [
            _Entry(sort_key(record), (record.organisation or "").casefold(), record)
            for record in records
            if record.listed and record.user not in hidden_users
        ]
        entries.sort(key=lambda entry: entry.key)
        self._entries = entries
        self._keys = [entry.key for entry in entries]

    def __len__(self) -> int:
        return len(self._entries)

    def search(self, query: Query) -> tuple[list[ProfileRecord], str | None]:
        """The profiles ``query`` matches after its cursor, at most ``limit`` of them, and the
        cursor of the next page (None when there is none)."""
        start = 0 if query.after is None else bisect.bisect_right(self._keys, query.after)
        found: list[ProfileRecord] = []
        for entry in self._entries[start:]:
            if not _matches(entry, query):
                continue
            if len(found) == query.limit:
                return found, make_cursor(sort_key(found[-1]))
            found.append(entry.record)
        return found, None


def _matches(entry: _Entry, query: Query) -> bool:
    record = entry.record
    if query.country is not None and record.country != query.country:
        return False
    if query.interest is not None and query.interest not in record.interests:
        return False
    if query.organisation is not None and query.organisation not in entry.organisation:
        return False
    return query.q is None or query.q in entry.key[0] or query.q in entry.organisation
