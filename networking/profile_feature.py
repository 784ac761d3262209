"""Profiles and the people directory: ``profile.set``, ``profile.get``, ``directory.search`` and
``profile.hide``.

Profiles live in the store, shared by every node: a hash ``profiles`` (user -> packed record), a
set ``profiles:hidden`` of the users whose profile a moderator hid (apart from the record, so an
owner's edit and a moderator's hide never overwrite each other), and a set ``profiles:owners``
that counts profiles atomically against :data:`MAX_PROFILES`. A search reads the whole hash once
and keeps the sorted directory on the node for :data:`CACHE_SECONDS` (a burst of searches reads
it once; one read at a time); a node's own changes refresh its copy at once, other nodes' show
within that time.

Guests have no profile and see none (``forbidden``). Once the event is closed
(``rooms.event``), editing and the directory answer ``closed``; a person still reads their own
profile, and moderators may still hide one.
"""

from __future__ import annotations

import asyncio
import time
import tomllib
from dataclasses import replace
from typing import Any, Final

from hub import fields
from hub.auth import Identity, Role
from hub.codec import pack, unpack
from hub.config import HubConfig
from hub.dispatch import CommandContext
from hub.errors import HubError
from hub.feature import FeatureContext
from hub.node import Node
from networking.profile_wire import (
    DirectorySearchReply,
    ProfileGetReply,
    ProfileHiddenEvent,
    ProfileReply,
)
from networking.profiles import (
    Directory,
    Interests,
    ProfileRecord,
    apply_changes,
    blank_profile,
    parse_interests,
    parse_query,
)
from rooms.feature import RoomsFeature

PROFILES_KEY: Final = "profiles"
HIDDEN_KEY: Final = "profiles:hidden"
OWNERS_KEY: Final = "profiles:owners"
# Far above an event's people (900 to 2,000); a new profile beyond it is refused (conflict).
MAX_PROFILES: Final = 10_000
# How long a node searches one read of the profiles.
CACHE_SECONDS: Final = 2.0


def event_interests(config: HubConfig) -> list[str]:
    """The event's interests: the rooms file's top-level ``interests`` (none without a rooms
    file). Raises ValueError (or OSError) naming what is wrong."""
    if not config.rooms_file:
        return []
    with open(config.rooms_file, "rb") as handle:
        document = tomllib.load(handle)
    try:
        return parse_interests(document)
    except ValueError as error:
        raise ValueError(f"{config.rooms_file}: {error}") from None


class ProfileFeature:
    """The profile and directory ops of one node (see the module docstring)."""

    def __init__(self, node: Node, rooms: RoomsFeature, interests: list[str] | None = None) -> None:
        self.node = node
        self.event = rooms.event
        self.interests = Interests(event_interests(node.config) if interests is None else interests)
        self._directory: Directory | None = None
        self._read_at = -CACHE_SECONDS
        # Bumped by this node's own changes: a read that started before one is not kept.
        self._generation = 0
        self._reading = asyncio.Lock()

    def install(self, ctx: FeatureContext) -> None:
        """Register the profile and directory ops."""
        ctx.command("profile.set", self.set)
        ctx.command("profile.get", self.get)
        ctx.command("profile.hide", self.hide)
        ctx.command("directory.search", self.search)

    # --- commands -------------------------------------------------------------------------------

    async def set(self, ctx: CommandContext, cmd: dict[str, Any]) -> ProfileReply:
        """Change the caller's profile (the fields given; see :func:`apply_changes`) ->
        ``{profile}``."""
        identity = _person(ctx)
        self.event.require_open("profiles are")
        user = identity.user_id
        stored = await self._record(user)
        current = stored or blank_profile(user, identity.name)
        changed = apply_changes(current, cmd, self.interests)
        changed = replace(changed, signed_in_name=identity.name)
        store = self.node.store
        if stored is None:
            added, count = await store.set_add_counted(OWNERS_KEY, user)
            if added and count > MAX_PROFILES:
                await store.set_remove(OWNERS_KEY, user)
                raise HubError("conflict", f"the directory holds {MAX_PROFILES} profiles")
        await store.hash_set(PROFILES_KEY, user, pack(changed.to_record()))
        self._forget_directory()  # this node's searches see the change at once
        hidden = await store.set_contains(HIDDEN_KEY, user)
        return {"profile": changed.view(hidden=hidden)}

    async def get(self, ctx: CommandContext, cmd: dict[str, Any]) -> ProfileGetReply:
        """``{profile, interests}``: the caller's own profile (``user`` absent or theirs; a blank
        one if they never set it), or another person's when it is listed and not hidden (a
        hidden one to moderators too); ``not_found`` otherwise."""
        identity = _person(ctx)
        user = fields.user_id(cmd["user"]) if cmd.get("user") is not None else identity.user_id
        store = self.node.store
        interests = list(self.interests.names)
        if user == identity.user_id:
            record = await self._record(user)
            mine = record or blank_profile(user, identity.name)
            hidden = record is not None and await store.set_contains(HIDDEN_KEY, user)
            return {"profile": mine.view(hidden=hidden), "interests": interests}
        self.event.require_open("the directory is")
        record = await self._record(user)
        if record is None or not record.listed:
            raise HubError("not_found", f"no profile of {user}")
        hidden = await store.set_contains(HIDDEN_KEY, user)
        if hidden and identity.role < Role.MODERATOR:
            raise HubError("not_found", f"no profile of {user}")
        return {"profile": record.view(hidden=hidden), "interests": interests}

    async def search(self, ctx: CommandContext, cmd: dict[str, Any]) -> DirectorySearchReply:
        """``{profiles, next?}``: a page of the listed, not hidden profiles the query matches,
        by name then user id (see :func:`parse_query`)."""
        _person(ctx)
        self.event.require_open("the directory is")
        query = parse_query(cmd, self.interests)
        directory = await self._current_directory()
        found, cursor = directory.search(query)
        reply: DirectorySearchReply = {"profiles": [record.view(hidden=False) for record in found]}
        if cursor is not None:
            reply["next"] = cursor
        return reply

    async def hide(self, ctx: CommandContext, cmd: dict[str, Any]) -> ProfileReply:
        """Hide a profile from the directory and from others, or show it again (``hidden``
        false): moderators and organizers of the event -> ``{profile}``; the owner's sessions
        get ``profile.hidden {hidden}``."""
        identity = _person(ctx)
        if identity.role < Role.MODERATOR:
            raise HubError("forbidden", "only moderators hide profiles")
        user = fields.user_id(cmd.get("user"))
        hidden = fields.boolean(cmd.get("hidden"), "hidden")
        record = await self._record(user)
        if record is None:
            raise HubError("not_found", f"no profile of {user}")
        store = self.node.store
        changed = await (
            store.set_add(HIDDEN_KEY, user) if hidden else store.set_remove(HIDDEN_KEY, user)
        )
        self._forget_directory()
        if changed:
            event: ProfileHiddenEvent = {"ev": "profile.hidden", "hidden": hidden}
            await self.node.send_to_user(user, event)
        return {"profile": record.view(hidden=hidden)}

    # --- reading --------------------------------------------------------------------------------

    async def takes_messages(self, user: str) -> bool:
        """Whether others may start a conversation with ``user``: False only when ``user``
        published a profile without ``contact`` (direct messages ask this, see hub/app.py)."""
        record = await self._record(user)
        return record is None or record.contact

    async def _record(self, user: str) -> ProfileRecord | None:
        raw = await self.node.store.hash_get(PROFILES_KEY, user)
        return None if raw is None else ProfileRecord.from_record(unpack(raw))

    async def _current_directory(self) -> Directory:
        """The directory as read at most :data:`CACHE_SECONDS` ago (one read at a time: a burst
        of searches waits for the one read in flight)."""
        directory = self._directory
        if directory is not None and time.monotonic() - self._read_at < CACHE_SECONDS:
            return directory
        async with self._reading:
            directory = self._directory
            if directory is not None and time.monotonic() - self._read_at < CACHE_SECONDS:
                return directory
            started, generation = time.monotonic(), self._generation
            store = self.node.store
            raw = await store.hash_get_all(PROFILES_KEY)
            hidden = await store.set_members(HIDDEN_KEY)
            directory = Directory(
                (ProfileRecord.from_record(unpack(value)) for value in raw.values()), hidden
            )
            if generation == self._generation:
                self._directory, self._read_at = directory, started
            return directory

    def _forget_directory(self) -> None:
        self._directory = None
        self._generation += 1


def _person(ctx: CommandContext) -> Identity:
    """The caller, who must not be a guest (guests have no profile and see none)."""
    identity = ctx.identity
    if identity.guest:
        raise HubError("forbidden", "guests have no profile: sign in to use the directory")
    return identity
