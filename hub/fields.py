"""The fields of commands: one rule per kind of field, the same in every command that has one.

A rule takes a field's value as the client sent it (of any type) and the field's name as the
client knows it (``"text"``, ``"options[2]"``, ``"candidate.sdpMid"``), and returns the value as
the hub keeps it, or raises ``HubError("bad_request", "<field>: <why>")`` (``too_large`` where a
rule says so). The ``optional_*`` rules, :func:`flag` and :func:`cursor` take null (None) as
absent. A limit that belongs to one field (a chat message's 2,000 characters) is its caller's;
the limits every field of a kind shares (user ids, display names, session ids, keys) are here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Final, TypeVar
from urllib.parse import urlsplit

from hub.errors import ErrorCode, HubError

MAX_USER_ID: Final = 128
MAX_NAME: Final = 64
# Session ids name a node and a session; they double as the cursors of presence pages.
MAX_SESSION_ID: Final = 200
MAX_CURSOR: Final = MAX_SESSION_ID
MAX_KEY: Final = 64
# The highest seq (or message number) a client may name in since and before: far beyond any
# history, within 64 bits.
MAX_SEQ: Final = 2**62
ROOM_ID: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,79}")
ITEM_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")

# Cc (C0 and C1 controls) and Cs (lone surrogates, which no encoder can send on).
_NOT_IN_A_LINE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# The same but newline: a message may have several lines.
_NOT_IN_A_TEXT: Final = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# Zl and Zp (line and paragraph separators), and bidi embeddings, overrides and isolates: in a
# name they would break or reorder the text around it in other people's views. Other format
# characters (the joiner inside emoji) stay allowed.
_NOT_IN_A_NAME: Final = re.compile(r"[\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")

# ISO 3166-1 alpha-2: the officially assigned codes (249).
_COUNTRY_CODES: Final = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR
    BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ
    EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW
    GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY
    KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV
    MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY
    QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG
    TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM
    ZW
"""
COUNTRIES: Final = frozenset(_COUNTRY_CODES.split())

_S = TypeVar("_S", bound=str)


def bad(field: str, why: str) -> HubError:
    """The error of a wrong field: ``bad_request`` with the message ``"<field>: <why>"``."""
    return HubError("bad_request", f"{field}: {why}")


# --- what people write ---------------------------------------------------------------------------


def _written(
    value: object, field: str, limit: int, forbidden: re.Pattern[str], too_long: ErrorCode
) -> str:
    if not isinstance(value, str):
        raise bad(field, "must be a string")
    trimmed = value.strip()
    if not trimmed:
        raise bad(field, "must not be empty")
    if len(trimmed) > limit:
        raise HubError(too_long, f"{field}: must be at most {limit} characters")
    if forbidden.search(trimmed) is not None:
        raise bad(field, "must not contain control characters")
    return trimmed


def text(value: object, field: str, limit: int) -> str:
    """A message people write (chat, direct messages, questions, notices): ``value`` trimmed,
    1 to ``limit`` characters, newlines allowed but no other control characters (Unicode Cc)
    and no lone surrogates. ``too_large`` when only the length is wrong (checked before the
    characters), else ``bad_request``."""
    return _written(value, field, limit, _NOT_IN_A_TEXT, "too_large")


def line(value: object, field: str, limit: int) -> str:
    """One line people write (a title, a poll's question or option): ``value`` trimmed, 1 to
    ``limit`` characters, no control characters (Unicode Cc: newlines and tabs included) and
    no lone surrogates; else ``bad_request``."""
    return _written(value, field, limit, _NOT_IN_A_LINE, "bad_request")


def display_name(value: object, field: str = "name") -> str:
    """A name shown to other people (a token's ``name``, a guest's ``hello``): a
    :func:`line` of at most :data:`MAX_NAME` characters that also holds no line or paragraph
    separators and no bidi embeddings, overrides or isolates; else ``bad_request``."""
    name = line(value, field, MAX_NAME)
    if _NOT_IN_A_NAME.search(name) is not None:
        raise bad(field, "must not contain control characters")
    return name


# --- what points elsewhere ----------------------------------------------------------------------


def country(value: object, field: str = "country") -> str:
    """An ISO 3166-1 alpha-2 country code (one of :data:`COUNTRIES`, any case, trimmed), in
    upper case; else ``bad_request``."""
    if isinstance(value, str) and value.strip().upper() in COUNTRIES:
        return value.strip().upper()
    raise bad(field, "must be an ISO 3166-1 alpha-2 country code (like DE or BR)")


def url(value: object, field: str, limit: int) -> str:
    """A web address people may follow or be shown (a link, an image): a :func:`line` of at
    most ``limit`` characters, trimmed, that is an absolute ``http://`` or ``https://`` URL
    with a host (and a valid port, if any), no ``user:password@`` part and no whitespace;
    else ``bad_request``. Kept as given: the hub never fetches it."""
    address = line(value, field, limit)
    if any(character.isspace() for character in address):
        raise bad(field, "must not contain spaces")
    try:
        parts = urlsplit(address)
        parts.port  # noqa: B018 -- ValueError for a port that is not one
    except ValueError:
        raise bad(field, "must be an http:// or https:// address") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad(field, "must be an http:// or https:// address with a host")
    if "@" in parts.netloc:
        raise bad(field, "must not hold a user name or password")
    return address


# --- what names things ---------------------------------------------------------------------------


def _identifier(value: object, field: str, limit: int, what: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise bad(field, f"must be {what} (1 to {limit} characters)")
    return value


def user_id(value: object, field: str = "user") -> str:
    """A user id (a token's ``sub``): any string of 1 to :data:`MAX_USER_ID` characters, taken
    as is; else ``bad_request``."""
    return _identifier(value, field, MAX_USER_ID, "a user id")


def session_id(value: object, field: str) -> str:
    """A session id (a hello's ``sid``): any string of 1 to :data:`MAX_SESSION_ID` characters,
    taken as is; else ``bad_request``."""
    return _identifier(value, field, MAX_SESSION_ID, "a session id")


def key(value: object, field: str) -> str:
    """A short client string (an idempotency key, a chat message's id): any string of 1 to
    :data:`MAX_KEY` characters, taken as is; else ``bad_request``."""
    return _identifier(value, field, MAX_KEY, "a string")


def optional_key(value: object, field: str) -> str | None:
    """A :func:`key`, or None when absent."""
    return None if value is None else key(value, field)


def room_id(value: object, field: str = "room") -> str:
    """A room id: a string matching :data:`ROOM_ID`; else ``bad_request``."""
    if not isinstance(value, str) or ROOM_ID.fullmatch(value) is None:
        raise bad(field, f"must be a room id ({ROOM_ID.pattern})")
    return value


def item_id(value: object, field: str) -> str:
    """The id of a poll or a question, as the hub made it: a string matching :data:`ITEM_ID`;
    else ``bad_request``."""
    if not isinstance(value, str) or ITEM_ID.fullmatch(value) is None:
        raise bad(field, f"must be an id matching {ITEM_ID.pattern}")
    return value


def optional_string(value: object, field: str, limit: int) -> str | None:
    """A string of at most ``limit`` characters (possibly empty), taken as is, or None when
    absent; else ``bad_request``."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise bad(field, f"must be a string of at most {limit} characters")
    return value


def cursor(value: object, field: str) -> str | None:
    """A position the hub handed out that the client sends back (a presence page's ``next``, a
    room's ``epoch``): an :func:`optional_string` of at most :data:`MAX_CURSOR` characters."""
    return optional_string(value, field, MAX_CURSOR)


def payload(value: object, field: str, limit: int, *, empty: bool = False) -> str:
    """Machine text passed on as is (SDP, an ICE candidate line): a string, non-empty unless
    ``empty``, else ``bad_request``; ``too_large`` past ``limit`` characters."""
    if not isinstance(value, str) or not (value or empty):
        raise bad(field, "must be a non-empty string" if not empty else "must be a string")
    if len(value) > limit:
        raise HubError("too_large", f"{field}: must be at most {limit} characters")
    return value


# --- numbers, flags and choices ------------------------------------------------------------------


def integer(value: object, field: str, low: int, high: int) -> int:
    """An integer from ``low`` to ``high`` (booleans are not integers here); else
    ``bad_request``."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise bad(field, f"must be an integer from {low} to {high}")
    return value


def optional_integer(value: object, field: str, low: int, high: int) -> int | None:
    """An :func:`integer` from ``low`` to ``high``, or None when absent."""
    return None if value is None else integer(value, field, low, high)


def optional_number(value: object, field: str, low: float, high: float) -> float | None:
    """A number (an integer or a finite float, not a boolean) from ``low`` to ``high`` as a
    float, or None when absent; else ``bad_request``."""
    if value is None:
        return None
    # An int compares exactly (math.isfinite would overflow on a huge one); a float must be finite.
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return float(value)
    if isinstance(value, float) and math.isfinite(value) and low <= value <= high:
        return value
    raise bad(field, f"must be a number from {_number(low)} to {_number(high)}")


def boolean(value: object, field: str) -> bool:
    """``true`` or ``false``; else ``bad_request``."""
    if not isinstance(value, bool):
        raise bad(field, "must be true or false")
    return value


def flag(value: object, field: str, default: bool) -> bool:
    """An optional :func:`boolean`: ``default`` when absent."""
    return default if value is None else boolean(value, field)


def choice(value: object, field: str, options: Iterable[_S]) -> _S:
    """The one of ``options`` (strings, e.g. the members of a string enum) that ``value``
    equals; else ``bad_request`` listing them."""
    allowed = list(options)
    if isinstance(value, str):
        for option in allowed:
            if value == option:
                return option
    raise bad(field, f"must be {_either(allowed)}")


# --- lists ---------------------------------------------------------------------------------------


def items(value: object, field: str, low: int, high: int) -> list[object]:
    """A list of ``low`` to ``high`` items, unchecked (the caller applies its rule to each);
    else ``bad_request``."""
    if not isinstance(value, list | tuple) or not low <= len(value) <= high:
        raise bad(field, f"must be a list of {low} to {high} items")
    return list(value)


def int_set(value: object, field: str, low: int, high: int, most: int) -> list[int]:
    """A non-empty list of distinct :func:`integer` from ``low`` to ``high``, at most ``most``
    of them, in any order: sorted. Else ``bad_request``."""
    if not isinstance(value, list | tuple) or not value:
        raise bad(field, "must be a non-empty list of integers")
    numbers = [integer(item, field, low, high) for item in value]
    if len(set(numbers)) != len(numbers):
        raise bad(field, "must not repeat an item")
    if len(numbers) > most:
        raise bad(field, f"must hold at most {most} items")
    return sorted(numbers)


def _either(options: Sequence[str]) -> str:
    labels = [str(option) for option in options]
    if len(labels) < 2:
        return "".join(labels)
    return f"{', '.join(labels[:-1])} or {labels[-1]}"


def _number(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)
