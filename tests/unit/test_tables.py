"""The lounge tables' pure rules (networking.tables): the rooms file's ``[[tables]]``, the rooms
they are, seats and who sits where. No sockets, no broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.config import HubConfig
from networking.tables import (
    DEFAULT_SEATS,
    MAX_SEATS,
    MAX_TABLES,
    Holder,
    TableDef,
    load_tables_file,
    occupants,
    ordered,
    orphans,
    parse_tables,
    seats_of,
)
from rooms.model import Room, RoomKind


def tables(*entries: dict[str, Any], room_ids: tuple[str, ...] = ()) -> list[TableDef]:
    return parse_tables({"tables": list(entries)}, room_ids)


def refused(*entries: Any, room_ids: tuple[str, ...] = ()) -> str:
    with pytest.raises(ValueError) as raised:
        parse_tables({"tables": list(entries)}, room_ids)
    return str(raised.value)


def test_a_table_needs_an_id_and_a_title_and_seats_default_to_six() -> None:
    assert tables({"id": "t1", "title": "Rust corner"}) == [
        TableDef("t1", "Rust corner", None, DEFAULT_SEATS)
    ]
    assert DEFAULT_SEATS == 6
    assert tables({"id": "t2", "title": " Ops ", "topic": " Pager duty ", "seats": 2}) == [
        TableDef("t2", "Ops", "Pager duty", 2)
    ]


def test_no_tables_section_is_no_tables() -> None:
    assert parse_tables({"rooms": []}) == []


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ({"title": "x"}, "tables[0]: id: must be a room id"),
        ({"id": "Bad Id", "title": "x"}, "tables[0]: id: must be a room id"),
        ({"id": "t.b1", "title": "x"}, "reserved for breakouts"),
        ({"id": "t"}, "tables[0]: title: is required"),
        ({"id": "t", "title": ""}, "tables[0]: title: must not be empty"),
        ({"id": "t", "title": "a\nb"}, "tables[0]: title: must not contain control"),
        ({"id": "t", "title": "x", "topic": 3}, "tables[0]: topic: must be a string"),
        ({"id": "t", "title": "x", "seats": 0}, f"seats: must be an integer from 1 to {MAX_SEATS}"),
        ({"id": "t", "title": "x", "seats": MAX_SEATS + 1}, "seats: must be an integer"),
        ({"id": "t", "title": "x", "seats": "4"}, "seats: must be an integer"),
        ({"id": "t", "title": "x", "seats": True}, "seats: must be an integer"),
        ({"id": "t", "title": "x", "capacity": 3}, "capacity: is not a field of a table"),
        ("t", "tables[0]: must be a table"),
    ],
)
def test_a_wrong_table_is_refused_naming_the_entry(entry: Any, why: str) -> None:
    assert why in refused(entry)


def test_ids_are_unique_among_tables_and_rooms() -> None:
    assert "tables[1]: id t is used twice" in refused(
        {"id": "t", "title": "a"}, {"id": "t", "title": "b"}
    )
    assert "tables[0]: id main is used twice" in refused(
        {"id": "main", "title": "a"}, room_ids=("main",)
    )


def test_tables_must_be_an_array_and_bounded() -> None:
    with pytest.raises(ValueError, match="array of tables"):
        parse_tables({"tables": {"id": "t"}})
    many = [{"id": f"t{i}", "title": "x"} for i in range(MAX_TABLES + 1)]
    with pytest.raises(ValueError, match=f"at most {MAX_TABLES} tables"):
        parse_tables({"tables": many})


def test_the_rooms_file_declares_tables_beside_rooms(tmp_path: Path) -> None:
    from hub.app import event_rooms, event_tables

    path = tmp_path / "rooms.toml"
    path.write_text(
        '[[rooms]]\nid = "panel-1"\nkind = "panel"\ntitle = "Opening"\n\n'
        '[[tables]]\nid = "t1"\ntitle = "Rust corner"\ntopic = "FFI"\nseats = 4\n\n'
        '[[tables]]\nid = "t2"\ntitle = "Ops"\n'
    )
    assert load_tables_file(path) == [
        TableDef("t1", "Rust corner", "FFI", 4),
        TableDef("t2", "Ops"),
    ]
    config = HubConfig(rooms_file=str(path))
    rooms = event_rooms(config)
    assert [(room.id, room.kind) for room in rooms] == [
        ("main", RoomKind.LOBBY),
        ("panel-1", RoomKind.PANEL),
        ("t1", RoomKind.TABLE),
        ("t2", RoomKind.TABLE),
    ]
    assert rooms[2] == Room("t1", RoomKind.TABLE, "Rust corner")
    assert event_tables(config) == load_tables_file(path)
    path.write_text('[[rooms]]\nid = "x"\nkind = "panel"\n\n[[tables]]\nid = "x"\ntitle = "T"\n')
    with pytest.raises(ValueError, match=r"rooms\.toml: tables\[0\]: id x is used twice"):
        event_rooms(HubConfig(rooms_file=str(path)))


def test_seats_come_from_the_definition_else_the_capacity() -> None:
    room = Room("t", RoomKind.TABLE, "T")
    assert seats_of(room, TableDef("t", "T", seats=3)) == 3
    assert seats_of(room, None) == DEFAULT_SEATS
    assert seats_of(Room("t", RoomKind.TABLE, "T", capacity=8), None) == 8


def test_occupants_are_the_counted_holders_once_per_person_in_the_order_they_sat() -> None:
    holders = {
        "n.b": Holder("s2", "bo", "Bo", 2.0),
        "n.a": Holder("s1", "ada", "Ada", 1.0),
        "n.c": Holder("s3", "cy", "Cy", 3.0),  # claiming: its token is not counted yet
        "n.d": Holder("s4", "ada", "Ada", 4.0),  # a second seat of the same person
    }
    seated = occupants(holders, ["s1", "s2", "s4", "s9"])
    assert [holder.user for holder in seated] == ["ada", "bo"]
    assert orphans(["s1", "s2", "s4", "s9"], holders.values()) == {"s9"}


def test_tables_are_listed_in_the_files_order_then_by_id() -> None:
    rooms = [
        Room("a", RoomKind.TABLE, "A"),
        Room("main", RoomKind.LOBBY, "Main"),
        Room("z", RoomKind.TABLE, "Z"),
        Room("m", RoomKind.TABLE, "M"),
        Room("p", RoomKind.PANEL, "P"),
    ]
    declared = [TableDef("z", "Z"), TableDef("m", "M")]
    assert [room.id for room in ordered(rooms, declared)] == ["z", "m", "a"]


def test_a_holder_record_round_trips() -> None:
    holder = Holder("tok", "ada", "Ada", 12.5)
    assert Holder.from_record(holder.to_record()) == holder
