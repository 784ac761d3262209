"""The rules of command fields (hub.fields): text, lines and display names, ids, numbers, flags,
choices and lists."""

from __future__ import annotations

import enum
import math
import unicodedata
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub import fields
from hub.errors import HubError

# Every character, lone surrogates and controls included (st.text leaves surrogates out).
ANY_CHAR = st.characters(exclude_categories=())
# Mostly the characters the rules care about, so that examples hit them often.
TRICKY_CHAR = st.sampled_from(
    "a Z9\n\r\t\x00\x1b\x7f\x85\x9f\xa0\u2028\u2029\u200d\u200e\u202e\u2066\ud800\udfff\U0001f600"
)
TEXTS = st.text(alphabet=ANY_CHAR | TRICKY_CHAR, max_size=30)
BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def refused(rule: Callable[[], object], code: str = "bad_request") -> str:
    """Run ``rule``, which must raise ``code``; its message."""
    with pytest.raises(HubError) as info:
        rule()
    assert info.value.code == code
    return info.value.msg


def _has(text: str, categories: set[str], but: str = "") -> bool:
    return any(unicodedata.category(c) in categories and c not in but for c in text)


# -- text ----------------------------------------------------------------------------------------


@given(TEXTS, st.integers(min_value=1, max_value=20))
def test_text_is_accepted_exactly_when_clean(value: str, limit: int) -> None:
    trimmed = value.strip()
    if trimmed and len(trimmed) > limit:
        # The length is checked first: too long is too_large whatever the characters.
        refused(lambda: fields.text(value, "text", limit), "too_large")
    elif not trimmed or _has(trimmed, {"Cc", "Cs"}, but="\n"):
        assert refused(lambda: fields.text(value, "text", limit)).startswith("text: ")
    else:
        assert fields.text(value, "text", limit) == trimmed


@given(TEXTS)
def test_text_is_idempotent(value: str) -> None:
    try:
        once = fields.text(value, "text", 1000)
    except HubError:
        return
    assert fields.text(once, "text", 1000) == once


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("hi", "hi"),
        ("  two\nlines \n", "two\nlines"),
        ("x" * 10, "x" * 10),
        (" " + "x" * 10 + "\n", "x" * 10),
        ("émoji 😀 and \u200d joiners", "émoji 😀 and \u200d joiners"),
        ("bidi \u202e is text", "bidi \u202e is text"),
    ],
)
def test_text_accepted(value: str, expected: str) -> None:
    assert fields.text(value, "text", 10 if expected.startswith("x") else 100) == expected


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (None, "bad_request"),
        (5, "bad_request"),
        (["hi"], "bad_request"),
        ("", "bad_request"),
        (" \n\t ", "bad_request"),
        ("tab\there", "bad_request"),
        ("cr\r\nlf", "bad_request"),
        ("nul\x00", "bad_request"),
        ("c1\x85c2", "bad_request"),
        ("lone\ud800", "bad_request"),
        ("x" * 11, "too_large"),
        ("  " + "x" * 11 + "  ", "too_large"),
        ("\x00" * 11, "too_large"),
    ],
)
def test_text_refused(value: object, code: str) -> None:
    assert refused(lambda: fields.text(value, "body", 10), code).startswith("body: ")


# -- lines -----------------------------------------------------------------------------------------


@given(TEXTS, st.integers(min_value=1, max_value=20))
def test_line_is_accepted_exactly_when_clean(value: str, limit: int) -> None:
    trimmed = value.strip()
    if trimmed and len(trimmed) <= limit and not _has(trimmed, {"Cc", "Cs"}):
        assert fields.line(value, "title", limit) == trimmed
    else:
        # One code whatever is wrong: a line is a field like any other.
        assert refused(lambda: fields.line(value, "title", limit)).startswith("title: ")


@pytest.mark.parametrize("value", ["a\nb", "a\tb", "x" * 11, "", None, 3, "\x9f"])
def test_line_refused(value: object) -> None:
    assert refused(lambda: fields.line(value, "options[2]", 10)).startswith("options[2]: ")


# -- display names (moved with validate_display_name from tests/unit/test_auth.py) ---------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Ada", "Ada"),
        ("  Ada Lovelace\t\n", "Ada Lovelace"),
        ("x" * 64, "x" * 64),
        (" " + "x" * 64 + " ", "x" * 64),
        ("Zoë 李 O'Brien-Smith", "Zoë 李 O'Brien-Smith"),
        ("family \U0001f468\u200d\U0001f469\u200d\U0001f467", "family 👨\u200d👩\u200d👧"),
        ("a", "a"),
    ],
)
def test_display_name_accepted(raw: str, clean: str) -> None:
    assert fields.display_name(raw) == clean


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "\n\t",
        "x" * 65,
        "a\x00b",
        "a\nb",
        "a\rb",
        "bell\x07",
        "\x1b[2J",
        "c1\x85control",
        "del\x7f",
        "left\u202eright",
        "isolate\u2066x",
        "line\u2028sep",
        "para\u2029sep",
        "lone\ud800surrogate",
        None,
        42,
        b"Ada",
        ["Ada"],
    ],
)
def test_display_name_rejected(name: object) -> None:
    with pytest.raises(HubError) as info:
        fields.display_name(name)
    assert info.value.code == "bad_request"
    assert "name" in info.value.msg


@given(TEXTS)
def test_a_display_name_is_a_short_line_without_separators_or_bidi_controls(value: str) -> None:
    trimmed = value.strip()
    fit = (
        0 < len(trimmed) <= fields.MAX_NAME
        and not _has(trimmed, {"Cc", "Cs", "Zl", "Zp"})
        and not BIDI.intersection(trimmed)
    )
    if fit:
        assert fields.display_name(value) == trimmed
    else:
        refused(lambda: fields.display_name(value))


# -- identifiers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "limit"),
    [
        (fields.user_id, fields.MAX_USER_ID),
        (fields.session_id, fields.MAX_SESSION_ID),
        (fields.key, fields.MAX_KEY),
    ],
)
def test_identifiers_are_strings_up_to_their_limit(rule: Callable[..., str], limit: int) -> None:
    for value in ("u", "x" * limit, " spaces and : colons ", "\U0001f600"):
        assert rule(value, "f") == value
    for bad in ("", "x" * (limit + 1), None, 7, ["u"], b"u"):
        assert refused(lambda bad=bad: rule(bad, "f")).startswith("f: ")


def test_user_ids_are_128_characters_at_most() -> None:
    assert fields.MAX_USER_ID == 128
    assert fields.user_id("x" * 128) == "x" * 128
    assert refused(lambda: fields.user_id("x" * 129)).startswith("user: ")


def test_an_optional_key_may_be_absent() -> None:
    assert fields.optional_key(None, "key") is None
    assert fields.optional_key("k", "key") == "k"
    refused(lambda: fields.optional_key("", "key"))


# The room id tests below moved with validate_room_id from tests/unit/test_rooms_model.py.


@pytest.mark.parametrize(
    "room",
    [
        "a",
        "0",
        "main",
        "panel-1",
        "work_shop.2",
        "a.b-c_d",
        "9lives",
        "a" * 80,
        "x" + "._-" * 26 + "z",  # 80 characters, punctuation after the first
    ],
)
def test_valid_room_ids(room: str) -> None:
    assert fields.room_id(room) == room


@pytest.mark.parametrize(
    "room",
    [
        "",
        "a" * 81,
        "Main",
        "mAin",
        ".hidden",
        "-dash",
        "_under",
        "has space",
        "slash/es",
        "colon:x",
        "tab\tx",
        "main\n",
        "émile",
        "\uff41",  # a full-width letter a
        None,
        7,
        b"main",
        ["main"],
    ],
)
def test_invalid_room_ids(room: object) -> None:
    with pytest.raises(HubError) as caught:
        fields.room_id(room)
    assert caught.value.code == "bad_request"


def test_id_length_limit_is_80() -> None:
    assert fields.room_id("r" * 80)
    with pytest.raises(HubError):
        fields.room_id("r" * 81)


def test_a_room_id_error_names_the_field() -> None:
    assert refused(lambda: fields.room_id("Bad")).startswith("room: ")
    assert refused(lambda: fields.room_id(3, "parent")).startswith("parent: ")


@pytest.mark.parametrize("value", ["a", "A-z_09", "x" * 64, "kS3_-dQ9xZ0a"])
def test_item_ids_accepted(value: str) -> None:
    assert fields.item_id(value, "poll") == value


@pytest.mark.parametrize("value", ["", "x" * 65, "a b", "a.b", "é", None, 5, ["a"]])
def test_item_ids_refused(value: object) -> None:
    assert refused(lambda: fields.item_id(value, "question")).startswith("question: ")


def test_cursors() -> None:
    assert fields.cursor(None, "after") is None
    assert fields.cursor("", "after") == ""
    assert fields.cursor("n1.abc", "epoch") == "n1.abc"
    assert fields.cursor("x" * fields.MAX_CURSOR, "after") == "x" * fields.MAX_CURSOR
    for bad in ("x" * (fields.MAX_CURSOR + 1), 5, ["a"]):
        assert refused(lambda bad=bad: fields.cursor(bad, "after")).startswith("after: ")


def test_optional_strings_take_empty_and_null() -> None:
    assert fields.optional_string(None, "m", 3) is None
    assert fields.optional_string("", "m", 3) == ""
    assert fields.optional_string("abc", "m", 3) == "abc"
    for bad in ("abcd", 0, False):
        refused(lambda bad=bad: fields.optional_string(bad, "m", 3))


def test_payloads() -> None:
    assert fields.payload("v=0", "sdp", 5) == "v=0"
    assert fields.payload("", "candidate", 5, empty=True) == ""
    assert refused(lambda: fields.payload("", "sdp", 5)).startswith("sdp: ")
    assert refused(lambda: fields.payload(None, "sdp", 5)).startswith("sdp: ")
    assert refused(lambda: fields.payload(3, "c", 5, empty=True)).startswith("c: ")
    assert refused(lambda: fields.payload("x" * 6, "sdp", 5), "too_large").startswith("sdp: ")


# -- numbers -------------------------------------------------------------------------------------


@given(st.integers(min_value=-(2**70), max_value=2**70), st.integers(-5, 5), st.integers(0, 9))
def test_integers_within_bounds(value: int, low: int, width: int) -> None:
    high = low + width
    if low <= value <= high:
        assert fields.integer(value, "n", low, high) == value
        assert fields.optional_integer(value, "n", low, high) == value
    else:
        assert refused(lambda: fields.integer(value, "n", low, high)).startswith("n: ")


@pytest.mark.parametrize("value", [True, False, 1.0, "1", [1], None])
def test_only_integers_are_integers(value: object) -> None:
    refused(lambda: fields.integer(value, "limit", 0, 10))


def test_optional_integers() -> None:
    assert fields.optional_integer(None, "since", 0, 5) is None
    refused(lambda: fields.optional_integer(True, "since", 0, 5))
    refused(lambda: fields.optional_integer(6, "since", 0, 5))


@given(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=3)
)
def test_optional_numbers(value: object) -> None:
    result: Any
    if value is None:
        assert fields.optional_number(value, "duration", 5, 60) is None
    elif (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (isinstance(value, int) or math.isfinite(value))
        and 5 <= value <= 60
    ):
        result = fields.optional_number(value, "duration", 5, 60)
        assert result == value and isinstance(result, float)
    else:
        msg = refused(lambda: fields.optional_number(value, "duration", 5, 60))
        assert msg == "duration: must be a number from 5 to 60"


# -- flags and choices ---------------------------------------------------------------------------


def test_booleans() -> None:
    assert fields.boolean(True, "audio") is True
    assert fields.boolean(False, "audio") is False
    for bad in (None, 0, 1, "true", [True]):
        assert refused(lambda bad=bad: fields.boolean(bad, "audio")) == (
            "audio: must be true or false"
        )


def test_flags_take_null_as_their_default() -> None:
    assert fields.flag(None, "ban", False) is False
    assert fields.flag(None, "guests", True) is True
    assert fields.flag(False, "guests", True) is False
    refused(lambda: fields.flag("yes", "ban", False))


class Colour(enum.StrEnum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


def test_choices() -> None:
    assert fields.choice("green", "colour", Colour) is Colour.GREEN
    assert fields.choice("b", "letter", ("a", "b")) == "b"
    for bad in ("GREEN", "gree", "", None, 1, ["red"]):
        assert refused(lambda bad=bad: fields.choice(bad, "colour", Colour)) == (
            "colour: must be red, green or blue"
        )


# -- lists ---------------------------------------------------------------------------------------


def test_items() -> None:
    assert fields.items(["a", 1], "options", 2, 3) == ["a", 1]
    assert fields.items(("a", "b", "c"), "options", 2, 3) == ["a", "b", "c"]
    for bad in (["a"], ["a"] * 4, "ab", {"a": 1}, None):
        assert refused(lambda bad=bad: fields.items(bad, "options", 2, 3)).startswith("options: ")


@given(st.lists(st.integers(-2, 6) | st.booleans() | st.just(1.0), max_size=6))
def test_int_sets(value: list[object]) -> None:
    numbers = [item for item in value if isinstance(item, int) and not isinstance(item, bool)]
    fine = (
        value
        and len(numbers) == len(value)
        and all(0 <= n <= 4 for n in numbers)
        and len(set(numbers)) == len(numbers)
        and len(numbers) <= 3
    )
    if fine:
        assert fields.int_set(value, "choice", 0, 4, 3) == sorted(numbers)
    else:
        assert refused(lambda: fields.int_set(value, "choice", 0, 4, 3)).startswith("choice: ")


def test_an_int_set_is_a_list() -> None:
    for bad in (1, None, "0,1", {0: 1}):
        refused(lambda bad=bad: fields.int_set(bad, "choice", 0, 4, 3))
    assert "at most 2" in refused(lambda: fields.int_set([0, 1, 2], "choice", 0, 4, 2))


# --- countries and addresses ---------------------------------------------------------------------


def test_the_countries_are_the_249_assigned_codes() -> None:
    assert len(fields.COUNTRIES) == 249
    assert {"DE", "BR", "GB", "SS", "XK"} - fields.COUNTRIES == {"XK"}  # Kosovo is user-assigned
    assert "UK" not in fields.COUNTRIES and "EU" not in fields.COUNTRIES


@pytest.mark.parametrize(("value", "code"), [("DE", "DE"), (" fr ", "FR"), ("gB", "GB")])
def test_countries_accepted_in_any_case(value: str, code: str) -> None:
    assert fields.country(value) == code


@pytest.mark.parametrize("value", ["XX", "UK", "DEU", "", "D", None, 49, ["DE"]])
def test_countries_refused_naming_the_field(value: object) -> None:
    assert refused(lambda: fields.country(value, "options[2].country")).startswith(
        "options[2].country: "
    )


@pytest.mark.parametrize(
    "value",
    [
        "https://example.org",
        "http://example.org/a/b?c=d#e",
        "HTTPS://Example.org/photo.jpg",
        "https://example.org:8443/x",
        "https://[2001:db8::1]/x.png",
        "https://127.0.0.1/x.png",
        "https://example.org/" + "x" * (2000 - len("https://example.org/")),
    ],
)
def test_urls_accepted_as_given(value: str) -> None:
    assert fields.url(f"  {value} ", "image", 2000) == value


@pytest.mark.parametrize(
    "value",
    [
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "ftp://example.org/x",
        "//example.org/x",
        "/static/x.png",
        "example.org/x.png",
        "https://",
        "https:///x",
        "https://user:pw@example.org/x",
        "https://user@example.org/x",
        "https://example.org:99999/x",
        "https://example.org:port/x",
        "https://[::1/x",
        "https://exa mple.org/x",
        "https://example.org/a\u00a0b",
        "https://example.org/\nx",
        "https://example.org/" + "x" * 2000,
        "",
        None,
        5,
    ],
)
def test_urls_refused_naming_the_field(value: object) -> None:
    assert refused(lambda: fields.url(value, "image", 2000)).startswith("image: ")
