"""Breakout ids, kinds and ``room.create`` fields (rooms.model), and the TOML rooms file
(rooms.directory.load_rooms_file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.errors import HubError
from rooms.directory import default_rooms, load_rooms_file
from rooms.model import (
    LOBBY,
    MAX_CAPACITY,
    MAX_TITLE,
    Room,
    RoomKind,
    is_breakout_id,
    parse_room,
)

# -- ids (their pattern is hub.fields', tested in tests/unit/test_fields.py) -----------------------


@pytest.mark.parametrize(
    ("room", "reserved"),
    [
        ("panel.b1", True),
        ("panel.b12", True),
        ("a.b.b3", True),
        ("panel.b", False),
        ("panel.bx", False),
        ("panel.b1x", False),
        ("panelb1", False),
        ("panel-b1", False),
        ("panel.b1.x", False),
        ("b1", False),
    ],
)
def test_breakout_ids_are_recognised(room: str, reserved: bool) -> None:
    assert is_breakout_id(room) is reserved


# -- parse_room -----------------------------------------------------------------------------------


def test_parse_room_with_every_field() -> None:
    room = parse_room(
        {
            "room": "ws-1",
            "kind": "workshop",
            "title": "  Hands on  ",
            "parent": "main",
            "capacity": 30,
        }
    )
    assert room == Room("ws-1", RoomKind.WORKSHOP, "Hands on", "main", 30)
    assert room.describe() == {
        "id": "ws-1",
        "kind": "workshop",
        "title": "Hands on",
        "parent": "main",
    }
    assert room.has_media


def test_parse_room_defaults() -> None:
    room = parse_room({"room": "p1", "kind": "panel"})
    assert room.title == "p1"
    assert room.parent is None
    assert room.capacity is None


def test_record_round_trip() -> None:
    room = Room("b", RoomKind.BREAKOUT, "B", parent="ws", capacity=5)
    assert Room.from_record(room.to_record()) == room
    assert room.to_record()["capacity"] == 5


def test_the_lobby_has_no_media() -> None:
    assert not Room(LOBBY, RoomKind.LOBBY, "Main").has_media
    assert default_rooms() == [Room("main", RoomKind.LOBBY, "Main hall")]


@pytest.mark.parametrize("kind", list(RoomKind))
def test_every_kind_parses(kind: RoomKind) -> None:
    fields: dict[str, Any] = {"room": "r", "kind": kind.value}
    if kind is RoomKind.BREAKOUT:
        fields["parent"] = "p"
    assert parse_room(fields).kind is kind


@pytest.mark.parametrize(
    ("fields", "mentions"),
    [
        ({"kind": "panel"}, "room"),
        ({"room": "Bad", "kind": "panel"}, "room"),
        ({"room": "p"}, "kind"),
        ({"room": "p", "kind": "stage"}, "kind"),
        ({"room": "p", "kind": "PANEL"}, "kind"),
        ({"room": "p", "kind": 1}, "kind"),
        ({"room": "p", "kind": "panel", "title": ""}, "title"),
        ({"room": "p", "kind": "panel", "title": "   "}, "title"),
        ({"room": "p", "kind": "panel", "title": "t" * (MAX_TITLE + 1)}, "title"),
        ({"room": "p", "kind": "panel", "title": 5}, "title"),
        ({"room": "p", "kind": "panel", "title": None}, "title"),
        ({"room": "p", "kind": "panel", "parent": "Not valid"}, "room"),
        ({"room": "p", "kind": "panel", "parent": 3}, "room"),
        ({"room": "p", "kind": "breakout"}, "parent"),
        ({"room": "p", "kind": "panel", "capacity": 0}, "capacity"),
        ({"room": "p", "kind": "panel", "capacity": -1}, "capacity"),
        ({"room": "p", "kind": "panel", "capacity": MAX_CAPACITY + 1}, "capacity"),
        ({"room": "p", "kind": "panel", "capacity": 2.5}, "capacity"),
        ({"room": "p", "kind": "panel", "capacity": "10"}, "capacity"),
        ({"room": "p", "kind": "panel", "capacity": True}, "capacity"),
        ({"room": "p.b1", "kind": "panel"}, "breakouts"),
        ({"room": "p.b1", "kind": "breakout", "parent": "p"}, "breakouts"),
    ],
)
def test_parse_room_errors(fields: dict[str, Any], mentions: str) -> None:
    with pytest.raises(HubError) as caught:
        parse_room(fields)
    assert caught.value.code == "bad_request"
    assert mentions in caught.value.msg


def test_capacity_bounds_are_inclusive() -> None:
    assert parse_room({"room": "p", "kind": "panel", "capacity": 1}).capacity == 1
    assert (
        parse_room({"room": "p", "kind": "panel", "capacity": MAX_CAPACITY}).capacity
        == MAX_CAPACITY
    )
    assert len(parse_room({"room": "p", "kind": "panel", "title": "t" * MAX_TITLE}).title) == (
        MAX_TITLE
    )


def test_breakout_ids_are_allowed_where_breakouts_are_made() -> None:
    room = parse_room({"room": "ws.b2", "kind": "breakout", "parent": "ws"}, allow_breakout=True)
    assert room.id == "ws.b2"
    assert room.parent == "ws"


# -- the rooms file --------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rooms.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_rooms_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
[[rooms]]
id = "panel-1"
kind = "panel"
title = "Opening panel"
capacity = 1000

[[rooms]]
id = "ws"
kind = "workshop"
title = "Workshop"

[[rooms]]
id = "ws.b1"
kind = "breakout"
title = "Table one"
parent = "ws"
""",
    )
    assert load_rooms_file(path) == [
        Room("panel-1", RoomKind.PANEL, "Opening panel", None, 1000),
        Room("ws", RoomKind.WORKSHOP, "Workshop"),
        Room("ws.b1", RoomKind.BREAKOUT, "Table one", "ws"),
    ]
    assert load_rooms_file(str(path)) == load_rooms_file(path)


def test_a_file_without_rooms_declares_none(tmp_path: Path) -> None:
    assert load_rooms_file(_write(tmp_path, "# nothing here\n")) == []


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        ('rooms = "panel-1"\n', "array of tables"),
        ("rooms = [1, 2]\n", "rooms[0] must be a table"),
        ('[[rooms]]\nkind = "panel"\n', "rooms[0]"),
        (
            '[[rooms]]\nid = "ok"\nkind = "panel"\n[[rooms]]\nid = "Bad Id"\nkind = "panel"\n',
            "rooms[1]",
        ),
        ('[[rooms]]\nid = "p"\nkind = "theatre"\n', "kind"),
        ('[[rooms]]\nid = "p"\nkind = "breakout"\n', "parent"),
        ('[[rooms]]\nid = "p"\nkind = "panel"\ncapacity = 0\n', "capacity"),
        # A key of the whole event written after a room belongs, in TOML, to that room.
        (
            '[[rooms]]\nid = "p"\nkind = "panel"\ninterests = ["AI"]\n',
            "unknown key 'interests' (keys of the whole event",
        ),
        ('[[rooms]]\nid = "p"\nkind = "panel"\ntitle = ""\n', "title"),
    ],
)
def test_bad_rooms_files(tmp_path: Path, text: str, mentions: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ValueError) as caught:
        load_rooms_file(path)
    assert mentions in str(caught.value)
    assert str(path) in str(caught.value)


def test_a_file_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):  # tomllib.TOMLDecodeError is a ValueError
        load_rooms_file(_write(tmp_path, "[[rooms]\nid = \n"))


def test_a_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_rooms_file(tmp_path / "absent.toml")
