"""The wire of profiles and the people directory: a TypedDict per reply and event, named and
shaped as ``docs/protocol.md`` ("Profiles and the people directory") has them."""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict


class Profile(TypedDict):
    """A profile as clients get it (texts are plain text; null where not given)."""

    user: str
    name: str
    organisation: str | None
    country: str | None
    bio: str | None
    interests: list[str]
    listed: bool
    contact: bool
    hidden: bool


class ProfileReply(TypedDict):
    """``profile.set`` and ``profile.hide`` -> ``{profile}``."""

    profile: Profile


class ProfileGetReply(TypedDict):
    """``profile.get`` -> ``{profile, interests}``: the event's interests, for the form."""

    profile: Profile
    interests: list[str]


class DirectorySearchReply(TypedDict):
    """``directory.search`` -> ``{profiles, next?}``."""

    profiles: list[Profile]
    next: NotRequired[str]


ProfileHiddenEv = Literal["profile.hidden"]


class ProfileHiddenEvent(TypedDict):
    """To every session of a person whose profile a moderator hid or showed again."""

    ev: ProfileHiddenEv
    hidden: bool
