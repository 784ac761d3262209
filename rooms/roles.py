"""Roles per room: the token's claims give the starting role, ``role.set`` stores a change.

The broker keeps one hash per room, ``roles:{room}``: user -> ``{role, name, set}``. ``set`` is
True for a role a moderator stored with ``role.set`` (it overrides the token), False for an entry
recorded when someone whose token makes them a speaker or more joined (so that the stage list
and the checks on a target's rank know about them without their token). Organizers are
organizers everywhere: no stored role lowers them.

A node keeps the stored roles of the rooms it follows in memory, loaded when it starts following
a room and kept current by the room's stored ``role`` events, which reach it in order. For a
room it does not follow it reads the broker, so every check is the server's, on every node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hub.auth import Identity, Role
from hub.broker import Broker
from hub.codec import pack, unpack
from hub.core_ops import STAFF_ROLES
from hub.session import Session


def roles_key(room: str) -> str:
    """The broker hash of a room's roles."""
    return f"roles:{room}"


@dataclass(frozen=True, slots=True)
class RoleEntry:
    """One user's entry in a room's roles hash."""

    user: str
    role: Role
    name: str
    set: bool

    def to_record(self) -> bytes:
        """Packed for the broker."""
        return pack({"role": self.role.label, "name": self.name, "set": self.set})

    @classmethod
    def from_record(cls, user: str, data: bytes) -> RoleEntry:
        """The inverse of :meth:`to_record`."""
        record: Mapping[str, Any] = unpack(data)
        return cls(user, Role.parse(record["role"]), str(record["name"]), bool(record["set"]))


def effective_role(identity: Identity, room: str, stored: Role | None) -> Role:
    """A user's role in ``room``: the stored one where there is one, else the token's; an
    organizer's token always wins."""
    token_role = identity.role_in(room)
    if stored is None or token_role is Role.ORGANIZER:
        return token_role
    return stored


class RoleBook:
    """Looks up and stores roles per room (see the module docstring)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        # followed room -> user -> stored role (only entries with ``set``)
        self._stored: dict[str, dict[str, Role]] = {}
        # room being loaded -> role events that arrived meanwhile, applied after the load
        self._loading: dict[str, list[tuple[str, Role]]] = {}

    def role_of(self, session: Session, room: str) -> Role:
        """The session's role in ``room`` from what this node holds: exact for rooms it follows
        (the session's own rooms), the token's elsewhere. For fan-out decisions; commands use
        :meth:`role`."""
        identity = session.identity
        if identity is None:
            return Role.ATTENDEE
        stored = self._stored.get(room)
        return effective_role(identity, room, stored.get(identity.user_id) if stored else None)

    def stored_role(self, room: str, user: str) -> Role | None:
        """``user``'s stored role in a room this node follows (None: none stored, or the room
        is not followed here)."""
        stored = self._stored.get(room)
        return stored.get(user) if stored is not None else None

    async def role(self, session: Session, room: str) -> Role:
        """The session's role in ``room``, reading the broker when this node does not follow
        the room."""
        identity = session.identity
        if identity is None:
            return Role.ATTENDEE
        if room in self._stored:
            return self.role_of(session, room)
        entry = await self.entry(room, identity.user_id)
        stored = entry.role if entry is not None and entry.set else None
        return effective_role(identity, room, stored)

    async def entry(self, room: str, user: str) -> RoleEntry | None:
        """``user``'s entry in the room's roles hash, or None."""
        data = await self.broker.hash_get(roles_key(room), user)
        return RoleEntry.from_record(user, data) if data is not None else None

    async def rank(self, room: str, user: str) -> Role:
        """What the hub knows of ``user``'s role in ``room`` without their token: a stored
        role, else the higher of their recorded entry and their event-wide staff role."""
        return (await self.ranks(room, [user]))[user]

    async def ranks(self, room: str, users: Iterable[str]) -> dict[str, Role]:
        """:meth:`rank` of many users, in two reads."""
        entries = {entry.user: entry for entry in await self.entries(room)}
        staff = {
            user: Role.parse(label.decode())
            for user, label in (await self.broker.hash_get_all(STAFF_ROLES)).items()
        }
        ranks: dict[str, Role] = {}
        for user in users:
            entry = entries.get(user)
            staff_role = staff.get(user)
            if entry is not None and entry.set:
                ranks[user] = Role.ORGANIZER if staff_role is Role.ORGANIZER else entry.role
            else:
                recorded = entry.role if entry is not None else Role.ATTENDEE
                ranks[user] = max(recorded, staff_role or Role.ATTENDEE)
        return ranks

    async def entries(self, room: str) -> list[RoleEntry]:
        """Every entry of the room's roles hash, ordered by user."""
        raw = await self.broker.hash_get_all(roles_key(room))
        return [RoleEntry.from_record(user, raw[user]) for user in sorted(raw)]

    async def load(self, room: str) -> None:
        """Hold ``room``'s stored roles on this node (it follows the room from now on); events
        that arrive while the hash is read are applied after it, in order."""
        if room in self._stored or room in self._loading:
            return
        self._loading[room] = []
        try:
            entries = await self.entries(room)
        except BaseException:
            del self._loading[room]
            raise
        stored = {entry.user: entry.role for entry in entries if entry.set}
        for user, role in self._loading.pop(room):
            stored[user] = role
        self._stored[room] = stored

    def forget(self, room: str) -> None:
        """This node no longer follows ``room``."""
        self._stored.pop(room, None)

    def on_role_event(self, event: Mapping[str, Any]) -> None:
        """Apply a stored ``role`` event of a followed room."""
        room, user = event["room"], event["user"]
        role = Role.parse(event["role"])
        pending = self._loading.get(room)
        if pending is not None:
            pending.append((user, role))
        stored = self._stored.get(room)
        if stored is not None:
            stored[user] = role

    async def record(self, room: str, identity: Identity, role: Role) -> None:
        """Note a member whose token gives them ``role`` (speaker or more) in ``room``, unless
        a stored role or an entry exists already."""
        if role < Role.SPEAKER:
            return
        entry = RoleEntry(identity.user_id, role, identity.name, set=False)
        await self.broker.hash_set(
            roles_key(room), identity.user_id, entry.to_record(), only_if_absent=True
        )

    async def store(self, room: str, user: str, role: Role, name: str) -> None:
        """Store ``user``'s role in ``room`` (``role.set``); the caller publishes the event."""
        entry = RoleEntry(user, role, name, set=True)
        await self.broker.hash_set(roles_key(room), user, entry.to_record())
