"""The pure rules of profiles and the people directory (networking.profiles): the event's
interests, every field of profile.set, the search's filters and its paging. No sockets."""

from __future__ import annotations

from typing import Any

import pytest

from hub.errors import HubError
from networking.profiles import (
    MAX_BIO,
    MAX_EVENT_INTERESTS,
    MAX_PROFILE_INTERESTS,
    PAGE_MAX,
    Directory,
    Interests,
    ProfileRecord,
    Query,
    apply_changes,
    blank_profile,
    make_cursor,
    parse_cursor,
    parse_interests,
    parse_query,
    sort_key,
)

EVENT = Interests(["AI", "Energy", "Climate", "Open source"])


def error(call: Any, *args: Any) -> tuple[str, str]:
    with pytest.raises(HubError) as raised:
        call(*args)
    return raised.value.code, raised.value.msg


def changed(**cmd: Any) -> ProfileRecord:
    return apply_changes(blank_profile("ada", "Ada L."), cmd, EVENT)


# --- the event's interests -----------------------------------------------------------------------


def test_the_event_interests_come_from_the_rooms_file_in_its_order() -> None:
    assert parse_interests({}) == []
    assert parse_interests({"interests": [" AI ", "Energy"]}) == ["AI", "Energy"]


@pytest.mark.parametrize(
    ("interests", "message"),
    [
        ("AI", "must be a list"),
        ([f"i{n}" for n in range(MAX_EVENT_INTERESTS + 1)], "at most 100"),
        (["AI", 3], "interests[1]: must be a string"),
        (["AI", " "], "interests[1]: must not be empty"),
        (["x" * 41], "interests[0]: must be at most 40"),
        (["a\nb"], "interests[0]: must not contain control characters"),
        (["AI", "ai"], "interests[1]: 'ai' is listed twice"),
    ],
)
def test_a_wrong_interests_list_is_refused_naming_what_is_wrong(
    interests: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_interests({"interests": interests})


def test_an_interest_is_named_as_the_event_spells_it() -> None:
    assert EVENT.name(" open SOURCE", "interest") == "Open source"
    assert error(EVENT.name, "Crypto", "interest") == (
        "bad_request",
        "interest: 'Crypto' is not one of the event's interests",
    )
    assert error(EVENT.name, 5, "interest")[0] == "bad_request"


# --- profile.set ---------------------------------------------------------------------------------


def test_a_blank_profile_is_the_sign_in_name_unlisted_and_without_contact() -> None:
    profile = blank_profile("ada", "Ada L.").view(hidden=False)
    assert profile == {
        "user": "ada",
        "name": "Ada L.",
        "organisation": None,
        "country": None,
        "bio": None,
        "interests": [],
        "listed": False,
        "contact": False,
        "hidden": False,
    }


def test_profile_fields_are_trimmed_and_kept() -> None:
    record = changed(
        name="  Ada Lovelace ",
        organisation=" Analytical Engines ",
        country="gb",
        bio=" Poet of\nscience <b>hi</b> ",
        interests=["energy", "AI", "AI"],
        listed=True,
        contact=True,
    )
    view = record.view(hidden=False)
    assert view["name"] == "Ada Lovelace"
    assert view["organisation"] == "Analytical Engines"
    assert view["country"] == "GB"
    assert view["bio"] == "Poet of\nscience <b>hi</b>"  # text, not markup: kept as written
    assert view["interests"] == ["AI", "Energy"]  # the event's order, each once
    assert view["listed"] and view["contact"]


def test_left_out_fields_stay_and_null_or_blank_clears() -> None:
    record = changed(name="Ada", organisation="Org", country="FR", bio="Bio", interests=["AI"])
    same = apply_changes(record, {"listed": True}, EVENT)
    assert same.organisation == "Org" and same.country == "FR" and same.listed
    cleared = apply_changes(
        same,
        {"name": None, "organisation": " ", "country": "", "bio": None, "interests": None},
        EVENT,
    )
    assert cleared.view(hidden=False)["name"] == "Ada L."  # the sign-in name again
    assert (cleared.organisation, cleared.country, cleared.bio) == (None, None, None)
    assert cleared.interests == () and cleared.listed  # null flags keep their value
    assert apply_changes(cleared, {"listed": None}, EVENT).listed


@pytest.mark.parametrize(
    ("cmd", "code", "start"),
    [
        ({"name": 5}, "bad_request", "name:"),
        ({"name": "x" * 65}, "bad_request", "name:"),
        ({"name": "a\u202eb"}, "bad_request", "name:"),
        ({"organisation": "a\nb"}, "bad_request", "organisation:"),
        ({"organisation": "x" * 101}, "bad_request", "organisation:"),
        ({"organisation": ["x"]}, "bad_request", "organisation:"),
        ({"country": "XX"}, "bad_request", "country:"),
        ({"country": "GBR"}, "bad_request", "country:"),
        ({"country": 49}, "bad_request", "country:"),
        ({"bio": "x" * (MAX_BIO + 1)}, "too_large", "bio:"),
        ({"bio": "a\x00b"}, "bad_request", "bio:"),
        ({"interests": "AI"}, "bad_request", "interests:"),
        ({"interests": ["AI", "Crypto"]}, "bad_request", "interests[1]: 'Crypto'"),
        ({"interests": [None]}, "bad_request", "interests[0]:"),
        ({"listed": "yes"}, "bad_request", "listed:"),
        ({"contact": 1}, "bad_request", "contact:"),
    ],
)
def test_every_wrong_field_is_refused_naming_it(cmd: dict[str, Any], code: str, start: str) -> None:
    got_code, message = error(apply_changes, blank_profile("ada", "Ada"), cmd, EVENT)
    assert got_code == code and message.startswith(start), message


def test_a_profile_holds_at_most_ten_interests() -> None:
    many = Interests([f"topic {n}" for n in range(MAX_PROFILE_INTERESTS + 1)])
    chosen = list(many.names)
    assert len(apply_changes(blank_profile("a", "A"), {"interests": chosen[:-1]}, many).interests)
    code, message = error(apply_changes, blank_profile("a", "A"), {"interests": chosen}, many)
    assert code == "bad_request" and "at most 10" in message


def test_nothing_changes_when_one_field_is_wrong() -> None:
    record = changed(name="Ada", listed=True)
    with pytest.raises(HubError):
        apply_changes(record, {"name": "Bob", "country": "ZZ"}, EVENT)
    assert record.view(hidden=False)["name"] == "Ada"


def test_a_record_survives_the_store() -> None:
    record = changed(name="Ada", country="DE", interests=["Climate"], listed=True, contact=True)
    assert ProfileRecord.from_record(record.to_record()) == record


# --- the directory -------------------------------------------------------------------------------


def person(user: str, name: str, **fields: Any) -> ProfileRecord:
    return apply_changes(blank_profile(user, name), {"listed": True, **fields}, EVENT)


PEOPLE = [
    person("u1", "Zoë Ångström", organisation="CERN", country="CH", interests=["AI"]),
    person("u2", "ada", organisation="Analytical Engines", country="GB", interests=["Energy"]),
    person("u3", "Ada", organisation="Grid Co", country="DE", interests=["Energy", "AI"]),
    person("u4", "Bob", country="DE", interests=["Climate"]),
    person("u5", "Carol", organisation="cern openlab", interests=["Open source"]),
]


def names(records: list[ProfileRecord]) -> list[str]:
    return [record.user for record in records]


def test_the_directory_holds_only_listed_profiles_not_hidden() -> None:
    unlisted = apply_changes(blank_profile("u9", "Una"), {"name": "Una"}, EVENT)
    directory = Directory([*PEOPLE, unlisted], hidden={"u4"})
    found, cursor = directory.search(Query(limit=PAGE_MAX))
    assert names(found) == ["u2", "u3", "u5", "u1"]  # by name (case-insensitive), then id
    assert cursor is None and len(directory) == 4


@pytest.mark.parametrize(
    ("query", "users"),
    [
        (Query(q="ada"), ["u2", "u3"]),
        (Query(q="cern"), ["u5", "u1"]),  # q matches organisations too
        (Query(q="ångström"), ["u1"]),
        (Query(organisation="cern"), ["u5", "u1"]),
        (Query(organisation="ada"), []),  # the organisation filter is not the name
        (Query(country="DE"), ["u3", "u4"]),
        (Query(interest="Energy"), ["u2", "u3"]),
        (Query(interest="Energy", country="DE"), ["u3"]),
        (Query(q="bob", interest="AI"), []),
    ],
)
def test_each_filter_must_match(query: Query, users: list[str]) -> None:
    assert names(Directory(PEOPLE, hidden=()).search(query)[0]) == users


def test_pages_follow_each_other_without_gaps_or_repeats() -> None:
    directory = Directory(PEOPLE, hidden=())
    seen: list[str] = []
    after = None
    for _ in range(10):
        found, cursor = directory.search(Query(limit=2, after=parse_cursor(after)))
        seen.extend(names(found))
        if cursor is None:
            break
        after = cursor
    assert seen == ["u2", "u3", "u4", "u5", "u1"]


def test_a_cursor_stays_valid_when_its_profile_leaves_the_directory() -> None:
    first, cursor = Directory(PEOPLE, hidden=()).search(Query(limit=2))
    assert names(first) == ["u2", "u3"]
    later = Directory(PEOPLE, hidden={"u3"}).search(Query(after=parse_cursor(cursor)))[0]
    assert names(later) == ["u4", "u5", "u1"]


def test_a_last_full_page_has_no_next_only_when_nothing_follows() -> None:
    directory = Directory(PEOPLE, hidden=())
    assert directory.search(Query(limit=5))[1] is None
    assert directory.search(Query(q="ada", limit=2))[1] is None
    found, cursor = directory.search(Query(limit=4))
    assert cursor == make_cursor(sort_key(found[-1]))


def test_a_query_is_read_from_a_command() -> None:
    query = parse_query(
        {"q": "  Ada ", "country": "de", "interest": "energy", "limit": 5, "organisation": ""},
        EVENT,
    )
    assert query == Query(q="ada", country="DE", interest="Energy", limit=5)
    assert parse_query({}, EVENT) == Query()


@pytest.mark.parametrize(
    ("cmd", "start"),
    [
        ({"q": "x" * 65}, "q:"),
        ({"q": 3}, "q:"),
        ({"organisation": "x" * 65}, "organisation:"),
        ({"country": "XX"}, "country:"),
        ({"interest": "Crypto"}, "interest:"),
        ({"limit": 0}, "limit:"),
        ({"limit": PAGE_MAX + 1}, "limit:"),
        ({"limit": True}, "limit:"),
        ({"after": "not a cursor"}, "after:"),
        ({"after": '["a"]'}, "after:"),
        ({"after": '["a", 1]'}, "after:"),
        ({"after": "x" * 1001}, "after:"),
        ({"after": 5}, "after:"),
    ],
)
def test_a_wrong_query_is_refused_naming_the_field(cmd: dict[str, Any], start: str) -> None:
    code, message = error(parse_query, cmd, EVENT)
    assert code == "bad_request" and message.startswith(start), message
