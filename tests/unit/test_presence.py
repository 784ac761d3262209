"""Presence batching (rooms.presence), pure and on an injected clock."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rooms.presence import SMALL_ROOM, PresenceBatch, PresenceBatcher, PresenceDue


def _entry(sid: str) -> dict[str, Any]:
    return {"sid": sid, "user": f"user-{sid}", "name": f"Name {sid}"}


def _sids(entries: list[dict[str, Any]]) -> list[str]:
    return [entry["sid"] for entry in entries]


def test_nothing_is_due_without_changes() -> None:
    batcher = PresenceBatcher(interval=1.0)
    assert batcher.due(0.0) == []


def test_the_first_change_of_a_room_is_due_at_once() -> None:
    batcher = PresenceBatcher(interval=1.0)
    batcher.joined("r", _entry("a"))
    batcher.joined("r", _entry("b"))
    batcher.left("r", _entry("z"))
    [batch] = batcher.due(100.0)
    assert batch.room == "r"
    assert _sids(batch.joined) == ["a", "b"]
    assert _sids(batch.left) == ["z"]
    assert batch.joined[0] == _entry("a")  # entries go out as given
    assert batcher.due(100.0) == []  # sent: nothing pending any more


def test_a_room_is_released_at_most_once_per_interval() -> None:
    batcher = PresenceBatcher(interval=1.0)
    batcher.joined("r", _entry("a"))
    assert len(batcher.due(10.0)) == 1
    batcher.joined("r", _entry("b"))
    assert batcher.due(10.0) == []
    assert batcher.due(10.5) == []
    batcher.joined("r", _entry("c"))
    assert batcher.due(10.99) == []
    [batch] = batcher.due(11.0)  # one interval after the last batch
    assert _sids(batch.joined) == ["b", "c"]  # nothing was lost while it waited
    assert batcher.due(11.5) == []


def test_rooms_are_batched_independently() -> None:
    batcher = PresenceBatcher(interval=1.0)
    batcher.joined("r1", _entry("a"))
    assert [b.room for b in batcher.due(0.0)] == ["r1"]
    batcher.joined("r1", _entry("b"))
    batcher.joined("r2", _entry("c"))
    assert [b.room for b in batcher.due(0.5)] == ["r2"]  # r1 must wait, r2 need not
    assert [b.room for b in batcher.due(1.0)] == ["r1"]


@given(
    times=st.lists(st.floats(min_value=0, max_value=20, allow_nan=False), max_size=40),
    interval=st.sampled_from([0.25, 1.0, 3.0]),
)
def test_never_twice_within_an_interval(times: list[float], interval: float) -> None:
    batcher = PresenceBatcher(interval=interval)
    last: float | None = None
    for i, now in enumerate(sorted(times)):
        batcher.joined("r", _entry(f"s{i}"))
        for batch in batcher.due(now):
            assert batch.room == "r"
            assert last is None or now - last >= interval
            last = now


def test_joined_then_left_in_one_batch_cancel() -> None:
    batcher = PresenceBatcher(interval=1.0)
    batcher.joined("r", _entry("a"))
    batcher.joined("r", _entry("b"))
    batcher.left("r", _entry("a"))
    [batch] = batcher.due(0.0)
    assert _sids(batch.joined) == ["b"]
    assert batch.left == []


def test_left_then_joined_again_in_one_batch_cancel() -> None:
    batcher = PresenceBatcher(interval=1.0)
    batcher.joined("r", _entry("a"))
    batcher.due(0.0)
    batcher.left("r", _entry("a"))
    batcher.joined("r", _entry("a"))
    [batch] = batcher.due(5.0)
    assert batch.joined == [] and batch.left == []


def test_a_batch_that_cancelled_out_still_goes_out_for_its_count() -> None:
    # Something changed (the count may have), so the room gets an event with just the count.
    batcher = PresenceBatcher(interval=1.0)
    batcher.joined("r", _entry("a"))
    batcher.left("r", _entry("a"))
    [batch] = batcher.due(0.0)
    assert batch.event(3) == {"ev": "presence", "room": "r", "count": 3}


def test_event_lists_only_while_the_room_is_small() -> None:
    batch = PresenceBatch("r", [_entry("a")], [_entry("b")])
    assert batch.event(SMALL_ROOM) == {
        "ev": "presence",
        "room": "r",
        "count": SMALL_ROOM,
        "joined": [_entry("a")],
        "left": [_entry("b")],
    }
    assert batch.event(SMALL_ROOM + 1) == {"ev": "presence", "room": "r", "count": SMALL_ROOM + 1}
    assert batch.event(0)["count"] == 0


def test_event_leaves_out_empty_lists() -> None:
    assert PresenceBatch("r", [_entry("a")], []).event(1) == {
        "ev": "presence",
        "room": "r",
        "count": 1,
        "joined": [_entry("a")],
    }
    assert PresenceBatch("r", [], [_entry("a")]).event(0) == {
        "ev": "presence",
        "room": "r",
        "count": 0,
        "left": [_entry("a")],
    }


def test_event_threshold_is_configurable() -> None:
    batch = PresenceBatch("r", [_entry("a")], [])
    assert "joined" in batch.event(5, small_room=5)
    assert "joined" not in batch.event(6, small_room=5)


def test_pending_lists_are_bounded() -> None:
    batcher = PresenceBatcher(interval=1.0, max_listed=10)
    for i in range(50):
        batcher.joined("r", _entry(f"j{i:02}"))
        batcher.left("r", _entry(f"l{i:02}"))
    [batch] = batcher.due(0.0)
    assert len(batch.joined) <= 10
    assert len(batch.left) <= 10


def test_the_default_bound_is_the_small_room_size() -> None:
    batcher = PresenceBatcher()
    assert batcher.max_listed == SMALL_ROOM
    for i in range(SMALL_ROOM * 2):
        batcher.joined("r", _entry(f"s{i:04}"))
    [batch] = batcher.due(0.0)
    assert len(batch.joined) <= SMALL_ROOM


def test_forget_drops_pending_changes_and_the_interval() -> None:
    batcher = PresenceBatcher(interval=1.0)
    batcher.joined("r", _entry("a"))
    batcher.due(0.0)
    batcher.joined("r", _entry("b"))
    batcher.forget("r")
    assert batcher.due(0.1) == []  # b's join was dropped
    batcher.joined("r", _entry("c"))
    [batch] = batcher.due(0.2)  # and the room no longer waits for its interval
    assert _sids(batch.joined) == ["c"]


def test_forget_of_an_unknown_room_is_harmless() -> None:
    batcher = PresenceBatcher()
    batcher.forget("nowhere")
    assert batcher.due(0.0) == []


def test_quiet_rooms_are_forgotten_so_the_batcher_stays_bounded() -> None:
    batcher = PresenceBatcher(interval=1.0)
    for i in range(100):
        batcher.joined(f"r{i}", _entry("a"))
    assert len(batcher.due(0.0)) == 100
    batcher.due(100.0)  # long after: nothing pending, every room quiet
    assert batcher._last_sent == {}
    assert batcher._pending == {}


def test_presence_due_gives_a_failed_batch_back_merged_with_what_came_meanwhile() -> None:
    batcher = PresenceBatcher(interval=1.0)
    due = PresenceDue(batcher)
    batcher.joined("r", {"sid": "a"})
    assert due.due(10.0) == [("r",)]
    due.owe(("r",), 10.0)  # the send failed before taking its batch
    batcher.joined("r", {"sid": "b"})
    assert due.due(11.0) == [("r",)]
    batch = due.take("r")
    assert batch is not None and [e["sid"] for e in batch.joined] == ["a", "b"]
    assert due.take("r") is None


def test_presence_due_drops_a_batch_nobody_took() -> None:
    batcher = PresenceBatcher(interval=1.0)
    due = PresenceDue(batcher)
    batcher.left("r", {"sid": "a"})
    assert due.due(10.0) == [("r",)]  # no member here any more: never taken
    assert due.due(11.0) == [] and len(due) == 0
