"""Roles per room: the token's claims give the starting role, ``role.set`` stores a change.

The broker keeps two hashes per room, each user -> ``{role, name}``. ``roles:{room}`` holds the
roles moderators stored with ``role.set`` (they override the token). ``seen:{room}`` holds the
token role of every speaker or more who joined the room, rewritten at each of their joins (so
that the stage list and the checks on a target's rank know about them without their token).
Organizers are organizers everywhere: no stored role lowers them.

A node keeps the stored roles of the rooms it follows in memory, loaded when it starts following
a room, kept current by the room's stored ``role`` events, which reach it in order, and dropped
when it stops following the room (:meth:`RoleBook.forget`). Two getters read roles:
:meth:`RoleBook.current_role`, for commands, confirms a cached role above attendee against the
broker, so a change stored on another node counts at once (for a room it does not follow a node
reads the broker too), and knows the role of a user without their token; every check is the
server's, on every node. :meth:`RoleBook.cached_role`, for fan-out, reads only what this node
holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from hub.auth import Identity, Role
from hub.codec import pack, unpack
from hub.session import Session
from hub.shared_read import FreshSharedRead
from hub.store import Store
from rooms.wire import UserEntry

# The broker hash of the event-wide role of every moderator and organizer who said hello (user ->
# role label): what a node knows of someone's rank when they are connected elsewhere.
STAFF_ROLES = "staff"


def roles_key(room: str) -> str:
    """The broker hash of a room's stored roles (``role.set``)."""
    return f"roles:{room}"


def seen_key(room: str) -> str:
    """The broker hash of the token roles (speaker or more) recorded at joins of a room."""
    return f"seen:{room}"


@dataclass(frozen=True, slots=True)
class RoleEntry:
    """One user's entry in a room's roles or seen hash."""

    user: str
    role: Role
    name: str

    def to_record(self) -> bytes:
        """Packed for the broker."""
        return pack({"role": self.role.label, "name": self.name})

    @classmethod
    def from_record(cls, user: str, data: bytes) -> RoleEntry:
        """The inverse of :meth:`to_record`."""
        record: Mapping[str, Any] = unpack(data)
        return cls(user, Role.parse(record["role"]), str(record["name"]))


def on_stage(entries: Iterable[RoleEntry]) -> list[UserEntry]:
    """The ``speakers`` of a room as the join snapshot lists them, from what the room knows of
    everyone (:meth:`RoleBook.known_entries`): ``[{user, name}]`` of those whose role is
    speaker, in the entries' order."""
    return [{"user": e.user, "name": e.name} for e in entries if e.role is Role.SPEAKER]


def effective_role(identity: Identity, room: str, stored: Role | None) -> Role:
    """A user's role in ``room``: the stored one where there is one, else the token's; an
    organizer's token always wins. The rule both getters of :class:`RoleBook` apply; it reads
    nothing."""
    return _effective(identity.role_in(room), stored)


def _effective(token_role: Role, stored: Role | None) -> Role:
    if stored is None or token_role is Role.ORGANIZER:
        return token_role
    return stored


@dataclass(frozen=True, slots=True)
class Ranks:
    """What a room's roles hold for users without their token, from three reads made
    together: ``stored`` (``role.set``), ``seen`` (token roles recorded at joins) and ``staff``
    (event-wide)."""

    stored: Mapping[str, Role]
    seen: Mapping[str, Role]
    staff: Mapping[str, Role]

    def role_of(self, user: str) -> Role:
        """A stored role (an organizer stays one), else the higher of the token role recorded
        at the user's latest join of the room and their event-wide staff role."""
        staff_role = self.staff.get(user)
        stored_role = self.stored.get(user)
        if stored_role is not None:
            return Role.ORGANIZER if staff_role is Role.ORGANIZER else stored_role
        return max(self.seen.get(user, Role.ATTENDEE), staff_role or Role.ATTENDEE)


@dataclass(slots=True)
class _Load:
    """A load of one room's stored roles in progress: ``done`` resolves when it ends (however
    it ends); ``events`` are the role events that arrived meanwhile, applied after it;
    ``forgotten`` when the node stopped following the room meanwhile (nothing is kept)."""

    done: asyncio.Future[None]
    events: list[tuple[str, Role]] = field(default_factory=list)
    forgotten: bool = False


class RoleBook:
    """Looks up and stores roles per room (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        # followed room -> user -> stored role
        self._stored: dict[str, dict[str, Role]] = {}
        # room being loaded -> its load (one per room: later callers wait for it)
        self._loading: dict[str, _Load] = {}
        # room -> its stored roles by user, read once for the commands asking together (a
        # burst of joins of a room this node does not follow yet checks each joiner's role)
        self._stored_reads: FreshSharedRead[str, dict[str, RoleEntry]] = FreshSharedRead(
            self._read_stored
        )

    @overload
    def cached_role(self, who: Session, room: str) -> Role: ...

    @overload
    def cached_role(self, who: str, room: str, token_role: Role) -> Role: ...

    def cached_role(self, who: Session | str, room: str, token_role: Role | None = None) -> Role:
        """The role of ``who`` in ``room`` as this node holds it, without a read: the role
        their token gives them there (a session's own token; for a user id, ``token_role``, as
        their presence entry says) unless a role stored there replaces it (an organizer's token
        always wins). The node holds the stored roles of the rooms it follows, as far as their
        ``role`` events arrived; elsewhere this is the token's role. For fan-out; commands
        check with :meth:`current_role`."""
        if isinstance(who, Session):
            identity = who.identity
            if identity is None:
                return Role.ATTENDEE
            user, token_role = identity.user_id, identity.role_in(room)
        elif token_role is None:
            raise TypeError("the role of a user id needs the role their token gives them")
        else:
            user = who
        stored = self._stored.get(room)
        return _effective(token_role, stored.get(user) if stored is not None else None)

    async def current_role(self, who: Session | str, room: str) -> Role:
        """A role in ``room`` for a command's check, exact on any node, stored changes included
        before their event arrives here.

        A session's: its token's role there unless a stored role replaces it (an organizer's
        token always wins); an attendee of a followed room costs no read, any other role reads
        the stored one. A user id's, without their token: what the hub recorded of it (see
        :meth:`current_roles`).
        """
        if isinstance(who, str):
            return (await self.current_roles([who], room))[who]
        return (await self.session_roles([who], room))[0]

    async def session_roles(self, sessions: Sequence[Session], room: str) -> list[Role]:
        """:meth:`current_role` of each of ``sessions`` in ``room``, in order, with at most one
        read for them all (the sessions a move puts in a room, checked together)."""
        stored: dict[str, RoleEntry] | None = None
        roles: list[Role] = []
        for session in sessions:
            identity = session.identity
            if identity is None or (
                room in self._stored and self.cached_role(session, room) <= Role.ATTENDEE
            ):
                roles.append(Role.ATTENDEE)
            elif identity.role_in(room) is Role.ORGANIZER:
                roles.append(Role.ORGANIZER)  # no stored role lowers an organizer: no read
            else:
                if stored is None:
                    stored = await self._stored_reads.get(room)
                entry = stored.get(identity.user_id)
                roles.append(
                    effective_role(identity, room, entry.role if entry is not None else None)
                )
        return roles

    async def current_roles(self, users: Iterable[str], room: str) -> dict[str, Role]:
        """:meth:`current_role` of users without their token (see :meth:`ranks`)."""
        ranks = await self.ranks(room)
        return {user: ranks.role_of(user) for user in users}

    async def ranks(self, room: str) -> Ranks:
        """What tells the role in ``room`` of any user without their token, in three reads made
        together (see :class:`Ranks`)."""
        # Together, so that a busy node's pipeline carries them in one batch, not three in turn.
        stored_entries, seen_entries, staff_labels = await asyncio.gather(
            self.entries(room), self.seen_entries(room), self._store.hash_get_all(STAFF_ROLES)
        )
        return Ranks(
            {entry.user: entry.role for entry in stored_entries},
            {entry.user: entry.role for entry in seen_entries},
            {user: Role.parse(label.decode()) for user, label in staff_labels.items()},
        )

    async def entry(self, room: str, user: str) -> RoleEntry | None:
        """``user``'s stored role entry in the room, or None."""
        data = await self._store.hash_get(roles_key(room), user)
        return RoleEntry.from_record(user, data) if data is not None else None

    async def seen_entry(self, room: str, user: str) -> RoleEntry | None:
        """``user``'s token role recorded at their last join of the room as speaker or more, or
        None."""
        data = await self._store.hash_get(seen_key(room), user)
        return RoleEntry.from_record(user, data) if data is not None else None

    async def entries(self, room: str) -> list[RoleEntry]:
        """Every stored role entry of the room, ordered by user."""
        return await self._read(roles_key(room))

    async def seen_entries(self, room: str) -> list[RoleEntry]:
        """Every recorded token role entry of the room, ordered by user."""
        return await self._read(seen_key(room))

    async def known_entries(self, room: str) -> list[RoleEntry]:
        """What the room knows of everyone in either hash, ordered by user: the stored entry
        where there is one, else the recorded one."""
        seen, stored = await asyncio.gather(self.seen_entries(room), self.entries(room))
        merged = {entry.user: entry for entry in seen}
        merged.update((entry.user, entry) for entry in stored)
        return [merged[user] for user in sorted(merged)]

    async def _read_stored(self, room: str) -> dict[str, RoleEntry]:
        return {entry.user: entry for entry in await self._read(roles_key(room))}

    async def close(self) -> None:
        """The node stops: reads asked from now on fail as unavailable (see
        :class:`~hub.shared_read.FreshSharedRead`)."""
        await self._stored_reads.close()

    async def _read(self, key: str) -> list[RoleEntry]:
        raw = await self._store.hash_get_all(key)
        return [RoleEntry.from_record(user, raw[user]) for user in sorted(raw)]

    async def load(self, room: str) -> None:
        """Hold ``room``'s stored roles on this node (it follows the room from now on); events
        that arrive while the hash is read are applied after it, in order. A caller that comes
        while another loads the room waits for that load (and loads again if it failed)."""
        while room not in self._stored:
            running = self._loading.get(room)
            if running is None:
                await self._load(room)
                return
            # Waits without taking on the other caller's outcome (or cancellation).
            await asyncio.wait([running.done])

    async def _load(self, room: str) -> None:
        load = _Load(asyncio.get_running_loop().create_future())
        self._loading[room] = load
        try:
            stored = {entry.user: entry.role for entry in await self.entries(room)}
            for user, role in load.events:
                stored[user] = role
            if not load.forgotten:
                self._stored[room] = stored
        finally:
            del self._loading[room]
            load.done.set_result(None)

    def forget(self, room: str) -> None:
        """This node no longer follows ``room``: drop its stored roles, and those of a load
        still under way (a caller that follows the room again loads it afresh)."""
        self._stored.pop(room, None)
        loading = self._loading.get(room)
        if loading is not None:
            loading.forgotten = True

    def on_role_event(self, event: Mapping[str, Any]) -> None:
        """Apply a stored ``role`` event of a followed room."""
        room, user = event["room"], event["user"]
        role = Role.parse(event["role"])
        loading = self._loading.get(room)
        if loading is not None:
            loading.events.append((user, role))
        stored = self._stored.get(room)
        if stored is not None:
            stored[user] = role

    async def record(self, room: str, identity: Identity) -> None:
        """Note the token role of a member who joined ``room`` when it is speaker or more,
        replacing what an earlier join recorded (a token may carry another role now)."""
        role = identity.role_in(room)
        if role < Role.SPEAKER:
            return
        entry = RoleEntry(identity.user_id, role, identity.name)
        await self._store.hash_set(seen_key(room), identity.user_id, entry.to_record())

    async def record_many(self, room: str, identities: Iterable[Identity]) -> None:
        """:meth:`record` of each of ``identities``, in one write (none for attendees)."""
        entries = {
            identity.user_id: RoleEntry(identity.user_id, role, identity.name).to_record()
            for identity in identities
            if (role := identity.role_in(room)) >= Role.SPEAKER
        }
        if entries:
            await self._store.hash_set_many(seen_key(room), entries)

    async def record_staff(self, identity: Identity) -> None:
        """Note the event-wide role of a moderator or organizer who said hello (kept for
        :meth:`ranks` on every node)."""
        await self._store.hash_set(STAFF_ROLES, identity.user_id, identity.role.label.encode())

    async def store(self, room: str, user: str, role: Role, name: str) -> None:
        """Store ``user``'s role in ``room`` (``role.set``); the caller publishes the event."""
        entry = RoleEntry(user, role, name)
        await self._store.hash_set(roles_key(room), user, entry.to_record())
