"""Poll options with profiles (polls.options): an option is a text or a map of a text and a
profile (description, organisation, country, image), each field with the hub's rule for its
kind; a wrong key or value is named with its option's index. No sockets."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.errors import HubError
from polls.options import (
    MAX_DESCRIPTION,
    MAX_IMAGE,
    MAX_OPTION,
    MAX_ORGANISATION,
    OptionProfile,
    parse_option,
    parse_options,
)

FULL = {
    "text": " Zoë Müller ",
    "description": "  Ten years of cluster work.\nTwo lines.  ",
    "organisation": " Grid Co ",
    "country": "de",
    "image": " https://example.org/zoe.jpg ",
}


def refused(value: object, field: str = "options[2]") -> tuple[str, str]:
    with pytest.raises(HubError) as info:
        parse_option(value, field)
    return info.value.code, info.value.msg


def test_a_string_is_a_text_without_a_profile() -> None:
    assert parse_option(" Ada ", "options[0]") == ("Ada", OptionProfile())
    assert OptionProfile().blank and OptionProfile().describe() == {}


def test_a_map_carries_a_profile_each_field_by_its_rule() -> None:
    text, profile = parse_option(FULL, "options[0]")
    assert text == "Zoë Müller"
    assert profile == OptionProfile(
        description="Ten years of cluster work.\nTwo lines.",
        organisation="Grid Co",
        country="DE",
        image="https://example.org/zoe.jpg",
    )
    assert profile.describe() == {
        "description": "Ten years of cluster work.\nTwo lines.",
        "organisation": "Grid Co",
        "country": "DE",
        "image": "https://example.org/zoe.jpg",
    }
    assert profile.cells() == [
        "Grid Co",
        "DE",
        "Ten years of cluster work.\nTwo lines.",
        "https://example.org/zoe.jpg",
    ]
    assert OptionProfile.from_map(profile.describe()) == profile


def test_a_map_may_give_some_fields_and_null_is_absent() -> None:
    assert parse_option({"text": "A", "country": "fr"}, "o") == ("A", OptionProfile(country="FR"))
    assert parse_option({"text": "A", "image": None, "description": None}, "o") == (
        "A",
        OptionProfile(),
    )
    assert OptionProfile(country="FR").describe() == {"country": "FR"}


def test_the_limits_are_reachable() -> None:
    _, profile = parse_option(
        {
            "text": "t" * MAX_OPTION,
            "description": "d" * MAX_DESCRIPTION,
            "organisation": "o" * MAX_ORGANISATION,
            "image": "https://x.org/" + "i" * (MAX_IMAGE - len("https://x.org/")),
        },
        "o",
    )
    assert profile.description is not None and len(profile.description) == MAX_DESCRIPTION
    assert profile.image is not None and len(profile.image) == MAX_IMAGE


@pytest.mark.parametrize(
    ("value", "field", "code"),
    [
        (5, "options[2]", "bad_request"),
        (None, "options[2]", "bad_request"),
        (["A"], "options[2]", "bad_request"),
        ({}, "options[2].text", "bad_request"),
        ({"description": "no text"}, "options[2].text", "bad_request"),
        ({"text": ""}, "options[2].text", "bad_request"),
        ({"text": "a\nb"}, "options[2].text", "bad_request"),
        ({"text": "t" * (MAX_OPTION + 1)}, "options[2].text", "bad_request"),
        ({"text": "A", "colour": "red"}, "options[2].colour", "bad_request"),
        ({"text": "A", "Country": "DE"}, "options[2].Country", "bad_request"),
        ({"text": "A", "country": "XX"}, "options[2].country", "bad_request"),
        ({"text": "A", "country": "Germany"}, "options[2].country", "bad_request"),
        ({"text": "A", "country": 49}, "options[2].country", "bad_request"),
        ({"text": "A", "organisation": ""}, "options[2].organisation", "bad_request"),
        ({"text": "A", "organisation": "a\tb"}, "options[2].organisation", "bad_request"),
        (
            {"text": "A", "organisation": "o" * (MAX_ORGANISATION + 1)},
            "options[2].organisation",
            "bad_request",
        ),
        ({"text": "A", "description": " "}, "options[2].description", "bad_request"),
        ({"text": "A", "description": "a\x00b"}, "options[2].description", "bad_request"),
        ({"text": "A", "description": "<b>\x1b[1m</b>"}, "options[2].description", "bad_request"),
        (
            {"text": "A", "description": "d" * (MAX_DESCRIPTION + 1)},
            "options[2].description",
            "too_large",  # the chat text rule: only the length wrong is too_large
        ),
        ({"text": "A", "image": "javascript:alert(1)"}, "options[2].image", "bad_request"),
        ({"text": "A", "image": "data:image/png;base64,AA"}, "options[2].image", "bad_request"),
        ({"text": "A", "image": "https://u:p@x.org/a.png"}, "options[2].image", "bad_request"),
        ({"text": "A", "image": "/static/a.png"}, "options[2].image", "bad_request"),
        (
            {"text": "A", "image": "https://x.org/" + "i" * MAX_IMAGE},
            "options[2].image",
            "bad_request",
        ),
    ],
)
def test_a_wrong_option_is_named_with_its_field(value: object, field: str, code: str) -> None:
    got_code, message = refused(value)
    assert (got_code, message.split(": ", 1)[0]) == (code, field)


def test_options_are_distinct_by_text_and_profiles_are_parallel() -> None:
    texts, profiles = parse_options(["A", {"text": "B", "country": "PL"}, {"text": "C"}])
    assert texts == ("A", "B", "C")
    assert profiles == (OptionProfile(), OptionProfile(country="PL"), OptionProfile())
    assert parse_options(["A", {"text": "B"}]) == (("A", "B"), ())
    with pytest.raises(HubError) as info:
        parse_options(["A", {"text": " A ", "country": "PL"}])
    assert info.value.msg.startswith("options[1]: ")


profile_values = st.fixed_dictionaries(
    {"text": st.text(min_size=1, max_size=5).filter(str.strip).filter(str.isprintable)},
    optional={
        "description": st.sampled_from(["A text", "Two\nlines", "", "x" * 1001]),
        "organisation": st.sampled_from(["Org", "", "a\nb"]),
        "country": st.sampled_from(["DE", "de", "XX", ""]),
        "image": st.sampled_from(["https://x.org/a.png", "ftp://x.org/a", ""]),
    },
)


@given(profile_values)
def test_a_map_is_accepted_exactly_when_every_field_is(value: dict[str, Any]) -> None:
    fine = (
        value.get("description") in (None, "A text", "Two\nlines")
        and value.get("organisation") in (None, "Org")
        and value.get("country") in (None, "DE", "de")
        and value.get("image") in (None, "https://x.org/a.png")
    )
    if fine:
        text, profile = parse_option(value, "options[0]")
        assert text == value["text"].strip()
        assert set(profile.describe()) == set(value) - {"text"}
    else:
        with pytest.raises(HubError) as info:
            parse_option(value, "options[0]")
        assert info.value.msg.startswith("options[0].")
