"""docs/organizers.md's examples work: its rooms file loads as ``hub serve --rooms`` loads it
(rooms, tables, interests, the award election and the partnerships), its people.csv is read by
``hub token --csv``, and its ``hub token`` commands run."""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.app import event_awards, event_rooms, event_tables
from hub.auth import Role
from hub.cli import main
from hub.config import HubConfig
from hub.registrants import read_registrants
from networking.profile_feature import event_interests

DOC = Path(__file__).parents[2] / "docs" / "organizers.md"
SECRET = "organizers-doc-test-secret-0123456789abcdef"


def blocks(language: str) -> list[str]:
    """The doc's fenced code blocks of ``language``, in order (indented ones included)."""
    fence = re.compile(rf"^( *)```{language}\n(.*?)^\1```$", re.MULTILINE | re.DOTALL)
    return [
        "\n".join(line.removeprefix(indent) for line in body.splitlines()) + "\n"
        for indent, body in fence.findall(DOC.read_text(encoding="utf-8"))
    ]


def commands(program: str) -> list[list[str]]:
    """The doc's shell commands that run ``program``, each split into its arguments."""
    found = []
    for block in blocks("sh"):
        for command in block.replace("\\\n", " ").splitlines():
            # A command substitution, VAR=$(hub ...), runs the command inside.
            words = shlex.split(command.replace("$(", " ").rstrip(")"))
            if program in words:
                found.append(words[words.index(program) + 1 :])
    return found


def test_the_rooms_file_example_loads(tmp_path: Path) -> None:
    (example,) = blocks("toml")
    rooms_file = tmp_path / "rooms.toml"
    rooms_file.write_text(example, encoding="utf-8")
    config = HubConfig(rooms_file=str(rooms_file))
    rooms = {room.id: room for room in event_rooms(config)}
    assert {room_id: room.kind.value for room_id, room in rooms.items()} == {
        "main": "lobby",
        "opening": "panel",
        "panel-2": "panel",
        "workshop-grants": "workshop",
        "coffee": "table",
        "newcomers": "table",
    }
    assert rooms["panel-2"].capacity == 600
    assert [(table.id, table.seats) for table in event_tables(config)] == [
        ("coffee", 6),
        ("newcomers", 6),
    ]
    assert event_interests(config) == ["Energy", "Mobility", "Funding"]
    awards = event_awards(config)
    [election] = awards.polls
    assert (election.id, election.room) == ("manager-2026", "main")
    assert election.spec.options == ("Zoë Müller", "Ada Lovelace")
    assert [profile.describe() for profile in election.spec.profiles] == [
        {
            "description": "Ten years of building the grid cluster.",
            "organisation": "Grid Cluster",
            "country": "DE",
            "image": "https://event.example.org/candidates/zoe.jpg",
        },
        {"organisation": "Analytical Engines Cluster", "country": "GB"},
    ]
    assert (election.spec.show, election.spec.allow_change, election.spec.guests) == (
        "closed",
        False,
        False,
    )
    [partnership] = awards.partnerships
    assert partnership.members == ("North Sea Energy Cluster", "Alpine Hydrogen Cluster")


def test_the_award_is_opened_at_the_address_the_doc_gives() -> None:
    urls = [args[-1] for args in commands("curl") if "POST" in args and args[-1].endswith("/open")]
    assert urls == ["https://event.example.org/api/rooms/main/polls/manager-2026/open"]


def test_the_people_example_is_read_as_the_doc_says() -> None:
    (example,) = blocks("csv")
    people = read_registrants(example.encode()).people
    assert [(p.user, p.name, p.role, dict(p.rooms)) for p in people] == [
        ("ada@example.org", "Ada Lovelace", Role.SPEAKER, {"opening": Role.SPEAKER}),
        ("zoe@example.org", "Zoë Müller", Role.ATTENDEE, {"workshop-grants": Role.MODERATOR}),
        ("kim@example.org", "Kim Lee", Role.ATTENDEE, {}),
    ]
    assert [p.lang for p in people] == ["en", "de", "en"]


def test_the_hub_token_commands_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (people,) = blocks("csv")
    (tmp_path / "people.csv").write_text(people, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HUB_SECRET", SECRET)
    # The doc's dates pass one day; the commands must keep working.
    future = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%MZ")
    found = commands("hub")
    token_commands = [args for args in found if args[:1] == ["token"]]
    assert len(token_commands) == 4
    for args in token_commands:
        at = args.index("--until") + 1 if "--until" in args else None
        if at is not None:
            args[at] = future
        assert main(args) == 0, args
    assert (tmp_path / "links.csv").read_bytes().count(b"#token=") == 3
    capsys.readouterr()
