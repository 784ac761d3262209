"""A poll's options as ``poll.create`` and the rooms file give them: each a text, or a map of a
text and a profile (a description, an organisation, a country, an image) that ballots and the
lobby's awards show beside it. Pure rules, no I/O.

Options stay a list of texts wherever a poll appears; the profiles go beside them in a list of
their own, so a client that knows nothing of profiles reads the same poll as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from hub import fields
from polls.wire import OptionProfileMap

MIN_OPTIONS: Final = 2
MAX_OPTIONS: Final = 20
MAX_OPTION: Final = 100
MAX_DESCRIPTION: Final = 1000
MAX_ORGANISATION: Final = 100
MAX_IMAGE: Final = 2000
# The keys of an option given as a map, in the order the CSV export has the profile's columns
# after the text.
PROFILE_KEYS: Final = ("organisation", "country", "description", "image")
OPTION_KEYS: Final = ("text", *PROFILE_KEYS)


@dataclass(frozen=True, slots=True)
class OptionProfile:
    """What an option may say of itself besides its text (each None when not given): a
    ``description`` (plain text, several lines), an ``organisation`` (one line), a ``country``
    (an ISO 3166-1 alpha-2 code) and an ``image`` (an http(s) address clients show at a fixed
    size; the hub never fetches it)."""

    description: str | None = None
    organisation: str | None = None
    country: str | None = None
    image: str | None = None

    @property
    def blank(self) -> bool:
        """True when the option says nothing but its text."""
        return not self.describe()

    def describe(self) -> OptionProfileMap:
        """The profile as the poll map's ``profiles`` carries it: the keys it has, no others."""
        described: OptionProfileMap = {}
        self.add_to(described)
        return described

    def add_to(self, target: OptionProfileMap) -> None:
        """Set the keys this profile has on ``target`` (an export's option line)."""
        if self.description is not None:
            target["description"] = self.description
        if self.organisation is not None:
            target["organisation"] = self.organisation
        if self.country is not None:
            target["country"] = self.country
        if self.image is not None:
            target["image"] = self.image

    def cells(self) -> list[str]:
        """The profile as the CSV export's columns :data:`PROFILE_KEYS` hold it (empty where
        absent)."""
        return [getattr(self, key) or "" for key in PROFILE_KEYS]

    @classmethod
    def from_map(cls, value: Mapping[str, Any]) -> OptionProfile:
        """The inverse of :meth:`describe` (a stored record's profile)."""
        return cls(
            description=_optional_str(value.get("description")),
            organisation=_optional_str(value.get("organisation")),
            country=_optional_str(value.get("country")),
            image=_optional_str(value.get("image")),
        )


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def parse_option(item: object, field: str) -> tuple[str, OptionProfile]:
    """One option: a string (its text), or a map ``{text, description?, organisation?, country?,
    image?}``. ``text`` is a :func:`hub.fields.line` of at most :data:`MAX_OPTION` characters;
    ``description`` a :func:`hub.fields.text` of at most :data:`MAX_DESCRIPTION` (``too_large``
    past it); ``organisation`` a line of at most :data:`MAX_ORGANISATION`; ``country`` a
    :func:`hub.fields.country` code (kept in upper case); ``image`` a :func:`hub.fields.url` of
    at most :data:`MAX_IMAGE`. A key given as null is absent. Any other key, or a wrong value:
    ``bad_request`` naming it (``options[2].country``)."""
    if isinstance(item, str):
        return fields.line(item, field, MAX_OPTION), OptionProfile()
    if not isinstance(item, dict):
        raise fields.bad(field, "must be a string or a map with a text")
    unknown = sorted(str(key) for key in item if key not in OPTION_KEYS)
    if unknown:
        raise fields.bad(f"{field}.{unknown[0]}", f"is not a field of an option ({_keys()})")
    if item.get("text") is None:
        raise fields.bad(f"{field}.text", "is required")
    text = fields.line(item["text"], f"{field}.text", MAX_OPTION)
    description = item.get("description")
    organisation = item.get("organisation")
    country = item.get("country")
    image = item.get("image")
    return text, OptionProfile(
        description=None
        if description is None
        else fields.text(description, f"{field}.description", MAX_DESCRIPTION),
        organisation=None
        if organisation is None
        else fields.line(organisation, f"{field}.organisation", MAX_ORGANISATION),
        country=None if country is None else fields.country(country, f"{field}.country"),
        image=None if image is None else fields.url(image, f"{field}.image", MAX_IMAGE),
    )


def parse_options(
    value: object, field: str = "options"
) -> tuple[tuple[str, ...], tuple[OptionProfile, ...]]:
    """A poll's options: a list of :data:`MIN_OPTIONS` to :data:`MAX_OPTIONS` items, each as
    :func:`parse_option` reads it, no two with the same text (after trimming, case-sensitive).
    Returns the texts and their profiles, in order; the profiles are empty (``()``) when no
    option has one. Raises ``bad_request`` naming the first wrong item."""
    texts: list[str] = []
    profiles: list[OptionProfile] = []
    for index, item in enumerate(fields.items(value, field, MIN_OPTIONS, MAX_OPTIONS)):
        text, profile = parse_option(item, f"{field}[{index}]")
        if text in texts:
            raise fields.bad(f"{field}[{index}]", "repeats an earlier option")
        texts.append(text)
        profiles.append(profile)
    return tuple(texts), normalised(profiles)


def normalised(profiles: Sequence[OptionProfile]) -> tuple[OptionProfile, ...]:
    """``profiles`` as a poll keeps them: all of them, or none (``()``) when every one is
    blank."""
    if all(profile.blank for profile in profiles):
        return ()
    return tuple(profiles)


def _keys() -> str:
    return ", ".join(OPTION_KEYS)
