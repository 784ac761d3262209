"""The rooms file's awards (polls.awards): ``[[polls]]`` declared ahead of time with poll.create's
rules, ``[[partnerships]]``, the state of a declared poll (declared, open, closed), the poll
``poll.open`` makes of it and what a snapshot's ``awards`` shows. Pure: no sockets, no broker;
the last tests read a file as ``hub serve --rooms`` does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.app import event_awards, event_rooms
from hub.config import HubConfig
from hub.errors import HubError
from polls.awards import (
    MAX_DECLARED_POLLS,
    MAX_MEMBER,
    MAX_MEMBERS,
    MAX_PARTNERSHIP_TEXT,
    MAX_PARTNERSHIP_TITLE,
    MAX_PARTNERSHIPS,
    Awards,
    AwardState,
    DeclaredPoll,
    Partnership,
    award_state,
    load_awards_file,
    parse_awards,
    parse_declared_poll,
    parse_partnership,
)
from polls.model import PollState, Show, parse_spec
from polls.options import OptionProfile

NOW = 10_000.0
ROOMS = ("main", "panel-1")
AWARD: dict[str, Any] = {
    "id": "manager-2026",
    "question": "Cluster manager of the year?",
    "show": "closed",
    "allow_change": False,
    "guests": False,
    "options": [
        {"text": "Zoë Müller", "organisation": "Grid Co", "country": "de"},
        "Ada Lovelace",
    ],
}


def awards(**document: Any) -> Awards:
    return parse_awards(document, ROOMS)


def refused(**document: Any) -> str:
    with pytest.raises(ValueError) as info:
        parse_awards(document, ROOMS)
    return str(info.value)


# --- [[polls]] -----------------------------------------------------------------------------------


def test_a_declared_poll_takes_poll_create_rules_and_defaults() -> None:
    declared = parse_declared_poll(AWARD, ROOMS)
    assert (declared.id, declared.room) == ("manager-2026", "main")
    spec = declared.spec
    assert spec.question == "Cluster manager of the year?"
    assert spec.options == ("Zoë Müller", "Ada Lovelace")
    assert spec.profiles == (OptionProfile(organisation="Grid Co", country="DE"), OptionProfile())
    assert (spec.multi, spec.anonymous, spec.show) == (False, True, Show.CLOSED)
    assert (spec.allow_change, spec.guests, spec.duration) == (False, False, None)

    plain = parse_declared_poll(
        {"id": "p", "room": "panel-1", "question": "Q?", "options": ["a", "b"]}, ROOMS
    )
    assert plain.room == "panel-1"
    assert plain.spec == parse_spec({"question": "Q?", "options": ["a", "b"]})
    timed = parse_declared_poll({**AWARD, "duration": 600, "multi": 2, "anonymous": False}, ROOMS)
    assert (timed.spec.duration, timed.spec.multi, timed.spec.anonymous) == (600.0, True, False)


@pytest.mark.parametrize(
    ("change", "mentions"),
    [
        ({"id": None}, "id: "),
        ({"id": "bad id"}, "id: "),
        ({"id": "x" * 65}, "id: "),
        ({"room": "nowhere"}, "room: must be the lobby (main) or a room the file declares"),
        ({"room": "Bad Room"}, "room: "),
        ({"question": None}, "question: is required"),
        ({"question": "a\nb"}, "question: "),
        ({"options": ["only"]}, "options: "),
        ({"options": ["a", {"text": "b", "country": "XX"}]}, "options[1].country: "),
        ({"options": ["a", {"text": "b", "photo": "x"}]}, "options[1].photo: is not a field"),
        ({"show": "always"}, "show: "),
        ({"duration": 1}, "duration: "),
        ({"guests": "no"}, "guests: "),
        ({"interests": ["AI"]}, "interests: is not a field of a poll"),
    ],
)
def test_a_wrong_declared_poll_is_named(change: dict[str, Any], mentions: str) -> None:
    entry = {**AWARD, **change}
    entry = {key: value for key, value in entry.items() if value is not None}
    message = refused(polls=[{"id": "first", "question": "Q?", "options": ["a", "b"]}, entry])
    assert message.startswith("polls[1]: "), message
    assert mentions in message, message


def test_declared_polls_have_unique_ids_and_a_bound() -> None:
    assert refused(polls=[AWARD, {**AWARD, "room": "panel-1"}]) == (
        "polls[1]: id manager-2026 is used twice"
    )
    many = [{**AWARD, "id": f"p{i}"} for i in range(MAX_DECLARED_POLLS + 1)]
    assert refused(polls=many) == f"at most {MAX_DECLARED_POLLS} polls"
    assert len(awards(polls=many[:-1]).polls) == MAX_DECLARED_POLLS
    assert "array of tables" in refused(polls={"id": "p"})
    assert refused(polls=["p"]) == "polls[0]: must be a table"


# --- [[partnerships]] ----------------------------------------------------------------------------


def test_a_partnership_has_a_title_members_and_optionally_a_text_and_a_link() -> None:
    full = parse_partnership(
        {
            "title": " Hydrogen valleys ",
            "members": [" North Cluster ", "South Cluster"],
            "text": " Two clusters,\none grid. ",
            "link": "https://example.org/h2",
        }
    )
    assert full == Partnership(
        "Hydrogen valleys",
        ("North Cluster", "South Cluster"),
        "Two clusters,\none grid.",
        "https://example.org/h2",
    )
    assert full.describe() == {
        "title": "Hydrogen valleys",
        "members": ["North Cluster", "South Cluster"],
        "text": "Two clusters,\none grid.",
        "link": "https://example.org/h2",
    }
    bare = parse_partnership({"title": "T", "members": ["One"]})
    assert bare.describe() == {"title": "T", "members": ["One"]}


@pytest.mark.parametrize(
    ("entry", "mentions"),
    [
        ({"members": ["A"]}, "title: is required"),
        ({"title": "", "members": ["A"]}, "title: "),
        ({"title": "t" * (MAX_PARTNERSHIP_TITLE + 1), "members": ["A"]}, "title: "),
        ({"title": "T"}, "members: is required"),
        ({"title": "T", "members": []}, "members: "),
        ({"title": "T", "members": "A"}, "members: "),
        ({"title": "T", "members": ["A"] * (MAX_MEMBERS + 1)}, "members: "),
        ({"title": "T", "members": ["A", ""]}, "members[1]: "),
        ({"title": "T", "members": ["A", "m" * (MAX_MEMBER + 1)]}, "members[1]: "),
        ({"title": "T", "members": ["A", "a\nb"]}, "members[1]: "),
        ({"title": "T", "members": ["A"], "text": ""}, "text: "),
        ({"title": "T", "members": ["A"], "text": "a\x07"}, "text: "),
        ({"title": "T", "members": ["A"], "text": "x" * (MAX_PARTNERSHIP_TEXT + 1)}, "text: "),
        ({"title": "T", "members": ["A"], "link": "javascript:x"}, "link: "),
        ({"title": "T", "members": ["A"], "link": "https://u:p@x.org"}, "link: "),
        ({"title": "T", "members": ["A"], "logo": "x"}, "logo: is not a field of a partnership"),
    ],
)
def test_a_wrong_partnership_is_named(entry: dict[str, Any], mentions: str) -> None:
    message = refused(partnerships=[{"title": "Fine", "members": ["A"]}, entry])
    assert message.startswith("partnerships[1]: "), message
    assert mentions in message, message


def test_partnerships_have_a_bound() -> None:
    many = [{"title": f"T{i}", "members": ["A"]} for i in range(MAX_PARTNERSHIPS + 1)]
    assert refused(partnerships=many) == f"at most {MAX_PARTNERSHIPS} partnerships"
    assert len(awards(partnerships=many[:-1]).partnerships) == MAX_PARTNERSHIPS


# --- poll.open and the state of a declared poll --------------------------------------------------


def test_opening_makes_exactly_the_declared_poll() -> None:
    declared = parse_declared_poll({**AWARD, "duration": 60}, ROOMS)
    poll = declared.opened("org", NOW)
    assert (poll.id, poll.room, poll.created_by) == ("manager-2026", "main", "org")
    assert (poll.question, poll.options, poll.profiles) == (
        declared.spec.question,
        declared.spec.options,
        declared.spec.profiles,
    )
    assert (poll.show, poll.allow_change, poll.guests) == (Show.CLOSED, False, False)
    assert (poll.opened_at, poll.closes_at, poll.state) == (NOW, NOW + 60, PollState.OPEN)
    assert poll.describe()["profiles"] == [{"organisation": "Grid Co", "country": "DE"}, {}]


def test_a_declared_poll_is_declared_then_open_then_closed() -> None:
    declared = parse_declared_poll({**AWARD, "duration": 60}, ROOMS)
    assert award_state(None, NOW) is AwardState.DECLARED
    poll = declared.opened("org", NOW)
    assert award_state(poll, NOW + 59) is AwardState.OPEN
    assert award_state(poll, NOW + 60) is AwardState.CLOSED  # its time is up
    assert award_state(poll.closed(NOW + 1), NOW + 2) is AwardState.CLOSED


def test_a_declared_poll_is_found_only_in_its_room() -> None:
    found = awards(polls=[AWARD, {**AWARD, "id": "panel-poll", "room": "panel-1"}])
    assert found.declared("main", "manager-2026").id == "manager-2026"
    for room, poll_id in (("panel-1", "manager-2026"), ("main", "panel-poll"), ("main", "x")):
        with pytest.raises(HubError) as info:
            found.declared(room, poll_id)
        assert info.value.code == "not_found"


def test_the_snapshot_view_lists_the_rooms_declared_polls_and_the_lobbys_partnerships() -> None:
    found = awards(
        polls=[
            AWARD,
            {"id": "second", "question": "Q?", "options": ["a", "b"]},
            {"id": "panel-poll", "room": "panel-1", "question": "P?", "options": ["x", "y"]},
        ],
        partnerships=[{"title": "T", "members": ["A", "B"], "link": "https://x.org"}],
    )
    opened = found.declared("main", "manager-2026").opened("org", NOW)
    other_room_poll = found.declared("panel-1", "panel-poll").opened("org", NOW)
    assert found.view("main", [opened, other_room_poll], NOW) == {
        "polls": [
            {
                "id": "manager-2026",
                "question": "Cluster manager of the year?",
                "options": ["Zoë Müller", "Ada Lovelace"],
                "profiles": [{"organisation": "Grid Co", "country": "DE"}, {}],
                "state": "open",
            },
            {"id": "second", "question": "Q?", "options": ["a", "b"], "state": "declared"},
        ],
        "partnerships": [{"title": "T", "members": ["A", "B"], "link": "https://x.org"}],
    }
    assert found.view("panel-1", [other_room_poll.closed(NOW)], NOW) == {
        "polls": [{"id": "panel-poll", "question": "P?", "options": ["x", "y"], "state": "closed"}],
        "partnerships": [],
    }
    assert (found.shown_in("main"), found.shown_in("panel-1"), found.shown_in("panel-2")) == (
        True,
        True,
        False,
    )
    assert Awards().view("main", [], NOW) == {"polls": [], "partnerships": []}
    assert Awards().shown_in("main")


def test_an_empty_file_declares_no_awards() -> None:
    assert awards() == Awards()
    assert isinstance(awards(polls=[AWARD]).polls[0], DeclaredPoll)


# --- the rooms file ------------------------------------------------------------------------------

ROOMS_FILE = """
interests = ["Energy"]

[[rooms]]
id = "panel-1"
kind = "panel"
title = "Panel"

[[tables]]
id = "coffee"
title = "Coffee"

[[polls]]
id = "manager-2026"
question = "Cluster manager of the year?"
show = "closed"
allow_change = false
guests = false

[[polls.options]]
text = "Zoë Müller"
organisation = "Grid Co"
country = "DE"
description = \"\"\"
Ten years of cluster work.
Two lines.\"\"\"
image = "https://example.org/zoe.jpg"

[[polls.options]]
text = "Ada Lovelace"

[[polls]]
id = "at-the-table"
room = "coffee"
question = "Tea?"
options = ["yes", { text = "no", country = "GB" }]

[[partnerships]]
title = "Hydrogen valleys"
members = ["North Cluster", "South Cluster"]
link = "https://example.org/h2"
"""


def test_the_rooms_file_declares_polls_and_partnerships(tmp_path: Path) -> None:
    path = tmp_path / "rooms.toml"
    path.write_text(ROOMS_FILE, encoding="utf-8")
    config = HubConfig(rooms_file=str(path))
    found = event_awards(config)
    assert found == event_awards(config, event_rooms(config))
    assert [(poll.id, poll.room) for poll in found.polls] == [
        ("manager-2026", "main"),
        ("at-the-table", "coffee"),
    ]
    award = found.polls[0].spec
    assert award.profiles[0].description == "Ten years of cluster work.\nTwo lines."
    assert found.polls[1].spec.profiles == (OptionProfile(), OptionProfile(country="GB"))
    assert [p.title for p in found.partnerships] == ["Hydrogen valleys"]
    assert event_awards(HubConfig()) == Awards()


def test_a_wrong_entry_stops_the_hub_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "rooms.toml"
    path.write_text(ROOMS_FILE.replace('country = "GB"', 'country = "England"'), encoding="utf-8")
    with pytest.raises(ValueError) as info:
        event_rooms(HubConfig(rooms_file=str(path)))
    assert str(info.value) == f"{path}: polls[1]: options[1].country: " + (
        "must be an ISO 3166-1 alpha-2 country code (like DE or BR)"
    )
    path.write_text(ROOMS_FILE.replace('room = "coffee"', 'room = "panel-9"'), encoding="utf-8")
    with pytest.raises(ValueError, match=r"polls\[1\]: room: "):
        load_awards_file(path, ["main", "panel-1", "coffee"])
