"""The people an organizer lists in a CSV file (registrants exported from a registration tool),
each to get a sign-in link: ``hub token --csv people.csv --link URL``.

A file is a header row and one row per person. Columns (names matched without regard to case
or surrounding spaces): the person's user id, from the first of ``user``, ``id`` and ``email``
the header has; ``name`` (the display name); optional ``role`` (an event role: attendee,
speaker, moderator, organizer; empty: the default role) and ``rooms`` (roles in rooms,
``panel-1=speaker;workshop=moderator``, the items separated by ``;`` or ``,``) and ``lang`` (the
person's preferred language for the web app, a BCP 47 tag such as ``fr`` or ``de-AT``; empty:
none). Other columns are kept as they are, for the mail merge. The file is UTF-8 with or
without a byte order mark (as Excel writes it) or UTF-16 with one; its delimiter is ``,``, ``;``
or a tab, whichever the header row uses.

Everything here is pure: bytes in, rows or text out; :func:`read_registrants` checks every row
before anything is made from them, and says which line of the file is wrong and why.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from hub import fields
from hub.auth import Role, TokenAuthority, language_tag
from hub.errors import HubError

USER_COLUMNS: Final = ("user", "id", "email")  # the user id's column: the first one present
NAME_COLUMN: Final = "name"
ROLE_COLUMN: Final = "role"
ROOMS_COLUMN: Final = "rooms"
LANG_COLUMN: Final = "lang"
LINK_COLUMN: Final = "link"  # the column the sign-in links are written in
DELIMITERS: Final = ",;\t"
_ROOM_ITEM_SEPARATORS: Final = re.compile(r"[;,]")
_ROLE_NAMES: Final = ", ".join(role.label for role in Role)


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong with a file, at ``line`` (1 is the header row; a row that spans several
    lines is known by its first)."""

    line: int
    what: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.what}"


class RegistrantsError(ValueError):
    """A file no link may be made from: ``problems``, at least one, in the file's order (every
    bad row, or the one problem that stopped the reading: no header, not UTF-8 ...)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(str(problem) for problem in problems))
        self.problems = tuple(problems)


@dataclass(frozen=True, slots=True)
class Registrant:
    """One person of the file, checked: the claims of their token (``user``, ``name``,
    ``role``, ``rooms``, ``lang``) and their row as read (``cells``, one per header column)."""

    line: int
    user: str
    name: str
    role: Role
    rooms: Mapping[str, Role] = field(hash=False)
    cells: tuple[str, ...]
    lang: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "rooms", MappingProxyType(dict(self.rooms)))


@dataclass(frozen=True, slots=True)
class Registrants:
    """A checked file: its ``header``, its ``people`` (rows with nothing in them left out, the
    others in the file's order, no user twice), and how it was written (``delimiter``,
    ``bom``: whether it began with a byte order mark), which the links' file copies."""

    header: tuple[str, ...]
    people: tuple[Registrant, ...]
    delimiter: str
    bom: bool

    def with_links(self, links: Sequence[str]) -> str:
        """The file again with a last column ``link``: the header, then each person's row as
        read with ``links[i]`` for ``people[i]``; CSV with this file's delimiter, ``\\r\\n``
        line ends, and a byte order mark if the file had one (Excel then reads the names as
        UTF-8). Raises ValueError unless there is one link per person."""
        if len(links) != len(self.people):
            raise ValueError(f"{len(links)} links for {len(self.people)} people")
        out = io.StringIO()
        if self.bom:
            out.write("\ufeff")
        writer = csv.writer(out, delimiter=self.delimiter, lineterminator="\r\n")
        writer.writerow([*self.header, LINK_COLUMN])
        for person, link in zip(self.people, links, strict=True):
            writer.writerow([*person.cells, link])
        return out.getvalue()


def token_for(
    person: Registrant, authority: TokenAuthority, *, ttl: float | None, now: float
) -> str:
    """A token for ``person`` (their user id, name, role, rooms and language) signed by
    ``authority``, issued at ``now`` and valid for ``ttl`` seconds (None: no expiry)."""
    return authority.mint(
        user=person.user,
        name=person.name,
        role=person.role,
        rooms=person.rooms,
        lang=person.lang,
        ttl=ttl,
        now=now,
    )


def parse_rooms(cell: str) -> dict[str, Role]:
    """The roles in rooms a ``rooms`` cell gives: ``ROOM=ROLE`` items separated by ``;`` or
    ``,`` (spaces around them and empty items ignored; an empty cell: none). Raises ValueError
    for an item that is not ``ROOM=ROLE``, a room id or a role that is not one, or a room
    named twice."""
    rooms: dict[str, Role] = {}
    for raw in _ROOM_ITEM_SEPARATORS.split(cell):
        item = raw.strip()
        if not item:
            continue
        room, sep, role = (part.strip() for part in item.partition("="))
        if not sep:
            raise ValueError(f"{item!r} is not ROOM=ROLE (such as panel-1=speaker)")
        try:
            fields.room_id(room)
        except HubError:
            raise ValueError(
                f"{room!r} is not a room id (lower-case letters, digits, '.', '_', '-')"
            ) from None
        if room in rooms:
            raise ValueError(f"room {room} is named twice")
        try:
            rooms[room] = _role(role)
        except ValueError as error:
            raise ValueError(f"{item!r}: {error}") from None
    return rooms


def read_registrants(
    data: bytes,
    *,
    role: Role = Role.ATTENDEE,
    rooms: Mapping[str, Role] | None = None,
    lang: str | None = None,
) -> Registrants:
    """The people of a CSV file's bytes (see the module's docstring), each checked: a user id
    (1 to 128 characters, each at most once: ids are compared without regard to case, so one
    person's address written twice is found), a display name (1 to 64 characters on one line),
    a known role, well-formed rooms, a language tag. ``role`` is the role of people whose
    ``role`` cell is empty or who have no such column, and ``lang`` likewise their language;
    ``rooms`` are given to everyone, a person's own ``rooms`` cell adding to them (and deciding
    a room both name).

    Raises :class:`RegistrantsError` with every row that is wrong, or the one problem that
    keeps the file from being read (not UTF-8, no header, a header without the columns, no
    one listed).
    """
    text, bom = _decode(data)
    delimiter = _delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header = _header(reader)
    columns = _columns(header)
    people: list[Registrant] = []
    problems: list[Problem] = []
    first_line_of: dict[str, int] = {}
    line = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            problems.append(Problem(line, f"is not CSV: {error}"))
            break
        user = row[columns.user].strip() if columns.user < len(row) else ""
        # Ids are compared without regard to case: one person's address written twice,
        # Ada@x.org and ada@x.org, would otherwise get two identities and two ballots. A row
        # wrong in another way still takes its id.
        first = first_line_of.setdefault(user.casefold(), line) if user else line
        if first != line:
            problems.append(Problem(line, f"user {user!r} is on line {first} too"))
        elif any(cell.strip() for cell in row):
            try:
                people.append(_person(line, row, header, columns, role, rooms or {}, lang))
            except ValueError as error:
                problems.append(Problem(line, str(error)))
        line = reader.line_num + 1
    if problems:
        raise RegistrantsError(problems)
    if not people:
        raise RegistrantsError([Problem(2, "no one is listed under the header row")])
    return Registrants(tuple(header), tuple(people), delimiter, bom)


@dataclass(frozen=True, slots=True)
class _Columns:
    """Where the columns that make a token are: indexes into a row (None: no such column)."""

    user: int
    user_label: str
    name: int
    role: int | None
    rooms: int | None
    lang: int | None


def _decode(data: bytes) -> tuple[str, bool]:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding, bom = "utf-16", True  # Excel's "Unicode text"
    else:
        encoding, bom = "utf-8-sig", data.startswith(codecs.BOM_UTF8)
    try:
        return data.decode(encoding), bom
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise RegistrantsError(
            [Problem(line, "is not UTF-8 text: save the file as CSV UTF-8")]
        ) from None


def _delimiter(text: str) -> str:
    # The header row decides: column names hold no delimiters, whereas names and addresses in
    # the rows below may hold commas or semicolons.
    header_line = text.split("\n", 1)[0]
    try:
        return csv.Sniffer().sniff(header_line, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def _header(reader: Iterator[list[str]]) -> list[str]:
    try:
        header = next(reader)
    except StopIteration:
        header = []
    except csv.Error as error:
        raise RegistrantsError([Problem(1, f"is not CSV: {error}")]) from None
    if not any(cell.strip() for cell in header):
        raise RegistrantsError(
            [Problem(1, "is not a header row: the file must begin with one (user,name,...)")]
        )
    return header


def _columns(header: Sequence[str]) -> _Columns:
    index: dict[str, int] = {}
    for position, label in enumerate(header):
        key = label.strip().lower()
        if not key:
            continue  # an unnamed column (a spreadsheet's stray one): kept, unused
        if key in index:
            raise RegistrantsError([Problem(1, f"column {label.strip()!r} appears twice")])
        index[key] = position
    if LINK_COLUMN in index:
        raise RegistrantsError(
            [Problem(1, f"there is a {LINK_COLUMN!r} column already (a file of links?)")]
        )
    user_label = next((label for label in USER_COLUMNS if label in index), None)
    if user_label is None:
        raise RegistrantsError(
            [Problem(1, "no column of user ids: the header needs user, id or email")]
        )
    if NAME_COLUMN not in index:
        raise RegistrantsError([Problem(1, "no column 'name' in the header")])
    return _Columns(
        user=index[user_label],
        user_label=user_label,
        name=index[NAME_COLUMN],
        role=index.get(ROLE_COLUMN),
        rooms=index.get(ROOMS_COLUMN),
        lang=index.get(LANG_COLUMN),
    )


def _person(
    line: int,
    row: list[str],
    header: Sequence[str],
    columns: _Columns,
    default_role: Role,
    default_rooms: Mapping[str, Role],
    default_lang: str | None,
) -> Registrant:
    if len(row) > len(header):
        if any(cell.strip() for cell in row[len(header) :]):
            raise ValueError(
                f"{len(row)} fields where the header has {len(header)} "
                "(a delimiter in an unquoted value?)"
            )
        row = row[: len(header)]
    cells = tuple(row) + ("",) * (len(header) - len(row))

    def cell(position: int | None) -> str:
        return "" if position is None else cells[position].strip()

    user = cell(columns.user)
    if not user:
        raise ValueError(f"no user id (column {columns.user_label!r} is empty)")
    if len(user) > fields.MAX_USER_ID:
        raise ValueError(f"the user id is longer than {fields.MAX_USER_ID} characters")
    name = cell(columns.name)
    if not name:
        raise ValueError("no name (column 'name' is empty)")
    try:
        name = fields.display_name(name)
    except HubError as error:
        raise ValueError(error.msg) from None
    try:
        role = _role(cell(columns.role)) if cell(columns.role) else default_role
    except ValueError as error:
        raise ValueError(f"role: {error}") from None
    try:
        own_rooms = parse_rooms(cell(columns.rooms))
    except ValueError as error:
        raise ValueError(f"rooms: {error}") from None
    try:
        lang = language_tag(cell(columns.lang)) if cell(columns.lang) else default_lang
    except ValueError as error:
        raise ValueError(f"lang: {error}") from None
    return Registrant(line, user, name, role, {**default_rooms, **own_rooms}, cells, lang)


def _role(label: str) -> Role:
    try:
        return Role.parse(label.strip().lower())
    except ValueError:
        raise ValueError(f"{label!r} is not a role ({_ROLE_NAMES})") from None
