"""Poll rules (polls.model): poll.create validation, multi normalisation, choices, ballots as
sent, the visibility matrix, records, and the tally throttle."""

from __future__ import annotations

import itertools
import unicodedata
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.errors import HubError
from polls.model import (
    MAX_DURATION,
    MAX_QUESTION,
    MIN_DURATION,
    Poll,
    PollState,
    Show,
    TallyThrottle,
    ballot_as_sent,
    closed_view,
    may_see_tally,
    may_vote,
    newest_closed,
    parse_choice,
    parse_poll,
    tally_event,
)
from polls.options import MAX_OPTION, MAX_OPTIONS, MIN_OPTIONS, OptionProfile

NOW = 1_000.0


def make(**fields: Any) -> Poll:
    base: dict[str, Any] = {"question": "Best talk?", "options": ["A", "B", "C"]}
    return parse_poll({**base, **fields}, poll_id="p1", room="main", created_by="u1", now=NOW)


def bad(field: str, **fields: Any) -> None:
    with pytest.raises(HubError) as info:
        parse_poll(fields, poll_id="p1", room="main", created_by="u1", now=NOW)
    assert info.value.code == "bad_request"
    assert info.value.msg.startswith(f"{field}: "), info.value.msg


OK = {"question": "Q?", "options": ["A", "B"]}

# -- poll.create ----------------------------------------------------------------------------------


def test_defaults() -> None:
    poll = make()
    assert poll == Poll(
        id="p1",
        room="main",
        question="Best talk?",
        options=("A", "B", "C"),
        multi=False,
        anonymous=True,
        show=Show.LIVE,
        allow_change=True,
        guests=True,
        created_by="u1",
        opened_at=NOW,
        closes_at=None,
        state=PollState.OPEN,
        closed_at=None,
    )
    assert not poll.is_multi and poll.max_choices == 1


def test_every_field_given() -> None:
    poll = make(
        multi=2,
        anonymous=False,
        show="never",
        duration=60,
        allow_change=False,
        guests=False,
        room="ignored",
        op="poll.create",
    )
    assert (poll.multi, poll.anonymous, poll.show, poll.allow_change, poll.guests) == (
        2,
        False,
        Show.NEVER,
        False,
        False,
    )
    assert poll.closes_at == NOW + 60
    assert poll.room == "main"


def test_null_fields_take_defaults() -> None:
    poll = make(
        multi=None, anonymous=None, show=None, duration=None, allow_change=None, guests=None
    )
    assert poll == make()


def test_question_and_options_are_trimmed() -> None:
    poll = make(question="  Why?  ", options=[" yes", "no "])
    assert poll.question == "Why?"
    assert poll.options == ("yes", "no")


@pytest.mark.parametrize("question", ["x", "x" * MAX_QUESTION, " " + "x" * MAX_QUESTION + " "])
def test_question_length_bounds_accepted(question: str) -> None:
    assert make(question=question).question == question.strip()


@pytest.mark.parametrize(
    "question",
    [
        None,
        3,
        ["q"],
        "",
        "   ",
        "x" * (MAX_QUESTION + 1),
        "a\nb",
        "a\tb",
        "a\x00b",
        "a\x7fb",
        "a\x85b",
    ],
)
def test_bad_questions(question: object) -> None:
    bad("question", question=question, options=["A", "B"])


def test_question_and_options_are_required() -> None:
    bad("question", options=["A", "B"])
    bad("options", question="Q?")


@pytest.mark.parametrize("count", [MIN_OPTIONS, MAX_OPTIONS])
def test_option_count_bounds_accepted(count: int) -> None:
    assert len(make(options=[f"o{i}" for i in range(count)]).options) == count


@pytest.mark.parametrize(
    "options",
    [
        None,
        "AB",
        {"A": 1, "B": 2},
        [],
        ["only"],
        [f"o{i}" for i in range(MAX_OPTIONS + 1)],
    ],
)
def test_bad_option_lists(options: object) -> None:
    bad("options", question="Q?", options=options)


@pytest.mark.parametrize(
    "options",
    [
        ["A", ""],
        ["A", "  "],
        ["A", 2],
        ["A", None],
        ["A", "x" * (MAX_OPTION + 1)],
        ["A", "line\nbreak"],
        ["A", "A"],
        ["A", " A "],
    ],
)
def test_bad_options_name_their_index(options: list[object]) -> None:
    bad("options[1]", question="Q?", options=options)


def test_options_are_case_sensitive_and_may_reach_the_limit() -> None:
    assert make(options=["a", "A", "x" * MAX_OPTION]).options == ("a", "A", "x" * MAX_OPTION)


@pytest.mark.parametrize(
    ("multi", "expected"),
    [
        (False, False),
        (True, True),
        (1, False),  # one option per ballot is single choice
        (0, True),
        (2, 2),
        (3, 3),
        (4, True),  # as many as there are options: no limit
        (5, True),
        (10**9, True),
    ],
)
def test_multi_normalisation(multi: object, expected: bool | int) -> None:
    poll = make(options=["A", "B", "C", "D"], multi=multi)
    assert poll.multi == expected and type(poll.multi) is type(expected)


@pytest.mark.parametrize("multi", [-1, 2.0, 1.5, "2", "true", [2]])
def test_bad_multi(multi: object) -> None:
    bad("multi", **OK, multi=multi)


@given(st.integers(min_value=0, max_value=50), st.integers(min_value=MIN_OPTIONS, max_value=20))
def test_multi_is_never_one_nor_beyond_the_options(multi: int, count: int) -> None:
    poll = make(options=[f"o{i}" for i in range(count)], multi=multi)
    assert poll.multi is False or poll.multi is True or 2 <= poll.multi < count
    assert 1 <= poll.max_choices <= count
    if multi >= 2:
        assert poll.max_choices == min(multi, count)


@pytest.mark.parametrize("field", ["anonymous", "allow_change", "guests"])
@pytest.mark.parametrize("value", [0, 1, "yes", "true", [True]])
def test_flags_must_be_booleans(field: str, value: object) -> None:
    bad(field, **OK, **{field: value})


@pytest.mark.parametrize("show", ["live", "closed", "never"])
def test_show_values(show: str) -> None:
    assert make(show=show).show == Show(show)


@pytest.mark.parametrize("show", ["LIVE", "always", "", 1, True])
def test_bad_show(show: object) -> None:
    bad("show", **OK, show=show)


@pytest.mark.parametrize("duration", [MIN_DURATION, MAX_DURATION, 5.5, 60])
def test_duration_bounds_accepted(duration: float) -> None:
    poll = make(duration=duration)
    assert poll.closes_at == NOW + duration
    assert isinstance(poll.closes_at, float)


@pytest.mark.parametrize(
    "duration",
    [
        MIN_DURATION - 1,
        4.999,
        MAX_DURATION + 1,
        MAX_DURATION + 0.5,
        0,
        -10,
        True,
        "60",
        float("nan"),
        float("inf"),
    ],
)
def test_bad_duration(duration: object) -> None:
    bad("duration", **OK, duration=duration)


def test_the_first_wrong_field_is_named() -> None:
    bad("question", question="", options=[], show="x")
    bad("options", question="Q?", options=[], show="x")


# -- state ----------------------------------------------------------------------------------------


def test_describe_without_and_with_duration() -> None:
    assert make().describe() == {
        "id": "p1",
        "question": "Best talk?",
        "options": ["A", "B", "C"],
        "multi": False,
        "anonymous": True,
        "show": "live",
        "allow_change": True,
        "guests": True,
        "state": "open",
    }
    described = (
        make(duration=30, multi=2, show="closed", allow_change=False, guests=False)
        .closed(NOW + 1)
        .describe()
    )
    assert described["closes_at"] == NOW + 30
    assert (described["allow_change"], described["guests"]) == (False, False)
    assert (described["multi"], described["show"], described["state"]) == (2, "closed", "closed")
    assert type(described["show"]) is str and type(described["state"]) is str


def test_closed_copies_and_due() -> None:
    poll = make(duration=10)
    assert not poll.due(NOW + 9.99)
    assert poll.due(NOW + 10) and poll.due(NOW + 11)
    closed = poll.closed(NOW + 10.5)
    assert (closed.state, closed.closed_at) == (PollState.CLOSED, NOW + 10.5)
    assert poll.state is PollState.OPEN  # the original is untouched
    assert not closed.due(NOW + 20)
    assert not make().due(NOW + MAX_DURATION * 10)  # no duration: never due


polls_strategy = st.builds(
    Poll,
    id=st.text(min_size=1, max_size=10),
    room=st.text(min_size=1, max_size=10),
    question=st.text(min_size=1, max_size=MAX_QUESTION),
    options=st.lists(
        st.text(min_size=1, max_size=MAX_OPTION), min_size=2, max_size=20, unique=True
    ).map(tuple),
    multi=st.one_of(st.booleans(), st.integers(min_value=2, max_value=19)),
    anonymous=st.booleans(),
    show=st.sampled_from(Show),
    allow_change=st.booleans(),
    guests=st.booleans(),
    created_by=st.text(max_size=10),
    opened_at=st.floats(allow_nan=False, allow_infinity=False),
    closes_at=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    state=st.sampled_from(PollState),
    closed_at=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    counts=st.none() | st.lists(st.integers(min_value=0, max_value=10**6), max_size=20).map(tuple),
    voters=st.none() | st.integers(min_value=0, max_value=10**6),
)


@given(polls_strategy)
def test_record_round_trip(poll: Poll) -> None:
    record = poll.to_record()
    assert Poll.from_record(record) == poll
    restored = Poll.from_record(record)
    assert type(restored.multi) is type(poll.multi)
    assert all(type(v) in (str, bool, int, float, list, type(None)) for v in record.values())


def test_options_with_profiles_survive_the_record_and_show_beside_the_texts() -> None:
    poll = make(
        options=[
            "A",
            {"text": "B", "organisation": "Grid Co", "country": "de"},
            {"text": "C", "description": "Line one\nline two", "image": "https://x.org/c.png"},
        ]
    )
    assert Poll.from_record(poll.to_record()) == poll
    described = poll.describe()
    assert described["options"] == ["A", "B", "C"]
    assert described["profiles"] == [
        {},
        {"organisation": "Grid Co", "country": "DE"},
        {"description": "Line one\nline two", "image": "https://x.org/c.png"},
    ]
    assert (
        closed_view(poll.closed(NOW + 1, [1, 0, 0], 1), False)["profiles"]
        == (described["profiles"])
    )
    assert poll.profile_of(1) == OptionProfile(organisation="Grid Co", country="DE")


def test_a_poll_without_profiles_has_no_profiles_key() -> None:
    for options in (["A", "B"], ["A", {"text": "B"}], [{"text": "A", "country": None}, "B"]):
        poll = make(options=options)
        assert poll.profiles == () and "profiles" not in poll.describe()
        assert poll.options == ("A", "B")
        assert poll.profile_of(0) == OptionProfile()


def test_records_of_polls_closed_before_the_tally_was_kept_still_load() -> None:
    record = make().closed(NOW + 5).to_record()
    del record["counts"], record["voters"], record["profiles"]
    poll = Poll.from_record(record)
    assert (poll.state, poll.counts, poll.voters) == (PollState.CLOSED, None, None)


def test_closing_keeps_the_final_tally() -> None:
    closed = make().closed(NOW + 5, [3, 0, 1], 4)
    assert (closed.counts, closed.voters, closed.closed_at) == ((3, 0, 1), 4, NOW + 5)
    assert make().closed(NOW + 5).counts is None


def test_newest_closed_polls_oldest_first() -> None:
    def poll(poll_id: str, closed_at: float | None) -> Poll:
        made = replace(make(), id=poll_id)
        return made.closed(closed_at) if closed_at is not None else made

    polls = [poll("e", 5.0), poll("open", None), poll("a", 1.0), poll("c", 3.0), poll("b", 3.0)]
    assert [p.id for p in newest_closed(polls, 10)] == ["a", "b", "c", "e"]
    assert [p.id for p in newest_closed(polls, 2)] == ["c", "e"]
    assert newest_closed(polls, 0) == []


@pytest.mark.parametrize(
    ("show", "moderator", "with_counts"),
    [
        ("live", False, True),
        ("closed", False, True),
        ("never", False, False),
        ("never", True, True),
    ],
)
def test_closed_view_shows_counts_as_the_closing_event_and_poll_get(
    show: str, moderator: bool, with_counts: bool
) -> None:
    closed = make(show=show).closed(NOW + 5, [2, 1, 0], 3)
    view = closed_view(closed, moderator)
    expected = closed.describe()
    if with_counts:
        expected |= {"counts": [2, 1, 0], "voters": 3}
    assert view == expected
    # Without a known final tally the view has none to show.
    assert closed_view(make(show=show).closed(NOW + 5), moderator) == closed.describe()


def test_record_from_integer_times() -> None:
    record = make(duration=10).to_record() | {"opened_at": 1000, "closes_at": 1010}
    poll = Poll.from_record(record)
    assert (poll.opened_at, poll.closes_at) == (1000.0, 1010.0)
    assert isinstance(poll.opened_at, float) and isinstance(poll.closes_at, float)


# -- poll.vote ------------------------------------------------------------------------------------


def test_single_choice() -> None:
    poll = make()
    assert parse_choice(poll, 0) == [0]
    assert parse_choice(poll, 2) == [2]


@pytest.mark.parametrize("choice", [-1, 3, True, False, 1.0, "1", None, [1], [], (1,)])
def test_bad_single_choice(choice: object) -> None:
    with pytest.raises(HubError) as info:
        parse_choice(make(), choice)
    assert info.value.code == "bad_request" and info.value.msg.startswith("choice: ")


def test_multi_choice_is_sorted() -> None:
    poll = make(multi=True)
    assert parse_choice(poll, [2, 0]) == [0, 2]
    assert parse_choice(poll, [0, 1, 2]) == [0, 1, 2]
    assert parse_choice(poll, [1]) == [1]


@pytest.mark.parametrize(
    "choice", [1, [], [0, 0], [3], [-1], [True], [0, "1"], [1.0], None, "0,1", {0: 1}]
)
def test_bad_multi_choice(choice: object) -> None:
    with pytest.raises(HubError) as info:
        parse_choice(make(multi=True), choice)
    assert info.value.code == "bad_request" and info.value.msg.startswith("choice: ")


def test_multi_choice_limit() -> None:
    poll = make(options=["A", "B", "C", "D"], multi=2)
    assert parse_choice(poll, [3, 1]) == [1, 3]
    with pytest.raises(HubError, match="at most 2"):
        parse_choice(poll, [0, 1, 2])


@given(
    st.integers(min_value=MIN_OPTIONS, max_value=MAX_OPTIONS),
    st.one_of(st.booleans(), st.integers(min_value=0, max_value=25)),
    st.lists(st.integers(min_value=-3, max_value=25), max_size=25),
)
def test_parse_choice_accepts_exactly_the_valid_ballots(
    count: int, multi: bool | int, choice: list[int]
) -> None:
    poll = make(options=[f"o{i}" for i in range(count)], multi=multi)
    valid = (
        poll.is_multi
        and 1 <= len(choice) <= poll.max_choices
        and len(set(choice)) == len(choice)
        and all(0 <= i < count for i in choice)
    )
    if valid:
        assert parse_choice(poll, choice) == sorted(choice)
    else:
        with pytest.raises(HubError):
            parse_choice(poll, choice)
    if not poll.is_multi and choice:
        index = choice[0]
        if 0 <= index < count:
            assert parse_choice(poll, index) == [index]
            assert ballot_as_sent(poll, parse_choice(poll, index)) == index


def test_ballot_as_sent() -> None:
    single, multi = make(), make(multi=True)
    assert ballot_as_sent(single, None) is None
    assert ballot_as_sent(multi, None) is None
    assert ballot_as_sent(single, [2]) == 2
    assert ballot_as_sent(multi, [0, 2]) == [0, 2]
    assert ballot_as_sent(multi, [1]) == [1]
    assert ballot_as_sent(make(multi=2), [1]) == [1]


# -- who may do what ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("show", "state", "moderator", "expected"),
    [
        (
            show,
            state,
            moderator,
            moderator or show == "live" or (show, state) == ("closed", "closed"),
        )
        for show, state, moderator in itertools.product(
            ["live", "closed", "never"], ["open", "closed"], [True, False]
        )
    ],
)
def test_visibility_matrix(show: str, state: str, moderator: bool, expected: bool) -> None:
    poll = make(show=show)
    if state == "closed":
        poll = poll.closed(NOW + 1)
    assert may_see_tally(poll, moderator) is expected


def test_visibility_matrix_spelled_out() -> None:
    open_closed, never = make(show="closed"), make(show="never")
    assert may_see_tally(make(), False)
    assert not may_see_tally(open_closed, False)
    assert may_see_tally(open_closed.closed(NOW), False)
    assert not may_see_tally(never.closed(NOW), False)
    assert may_see_tally(never, True)


@pytest.mark.parametrize(
    ("guests", "is_guest", "expected"),
    [(True, True, True), (True, False, True), (False, True, False), (False, False, True)],
)
def test_may_vote(guests: bool, is_guest: bool, expected: bool) -> None:
    assert may_vote(make(guests=guests), is_guest) is expected


def test_tally_event() -> None:
    counts = [1, 0, 2]
    event = tally_event(make(), counts, 3)
    assert event == {
        "ev": "poll.tally",
        "room": "main",
        "poll": "p1",
        "counts": [1, 0, 2],
        "voters": 3,
    }
    counts.append(9)
    assert event["counts"] == [1, 0, 2]  # a copy


# -- the tally throttle ---------------------------------------------------------------------------


def test_throttle_releases_a_change_at_once() -> None:
    throttle = TallyThrottle()
    assert throttle.due(0.0) == []  # nothing owed
    throttle.owe("p", 0.0)
    assert throttle.due(0.0) == ["p"]
    assert throttle.due(0.1) == []  # nothing changed since


def test_throttle_caps_releases_per_second_and_releases_the_last_change() -> None:
    throttle = TallyThrottle(per_second=4)
    released = []
    for step in range(8):
        now = step * 0.125
        throttle.owe("p", now)
        released += [now for _ in throttle.due(now)]
    assert released == [0.0, 0.125, 0.25, 0.375]
    assert throttle.due(0.99) == []  # the window opens again one second after the first release
    assert throttle.due(1.0) == ["p"]  # the change at 0.875, released when the window allows
    assert throttle.due(1.5) == []


def test_throttle_polls_are_independent_and_forgettable() -> None:
    throttle = TallyThrottle(per_second=1)
    throttle.owe("a", 0.0)
    throttle.owe("b", 0.0)
    assert sorted(throttle.due(0.0)) == ["a", "b"]
    throttle.owe("a", 0.1)
    throttle.owe("b", 0.1)
    assert throttle.due(0.5) == []
    throttle.forget("a")
    assert throttle.due(0.99) == []
    assert throttle.due(1.0) == ["b"]  # "a" owes nothing any more
    assert throttle.due(2.0) == []


def test_throttle_rejects_a_zero_rate() -> None:
    with pytest.raises(ValueError):
        TallyThrottle(per_second=0)


@st.composite
def throttle_scripts(draw: st.DrawFn) -> list[tuple[str, str, float]]:
    """Non-decreasing timelines of ("change", poll, t) and ("due", "", t) steps."""
    steps = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["change", "due"]),
                st.sampled_from(["p", "q"]),
                st.floats(min_value=0, max_value=0.7, allow_nan=False),
            ),
            max_size=80,
        )
    )
    now, script = 0.0, []
    for kind, poll, gap in steps:
        now += gap if draw(st.booleans()) else 0.0
        script.append((kind, poll if kind == "change" else "", now))
    return script


@given(
    throttle_scripts(),
    st.integers(min_value=1, max_value=6),
    st.sampled_from([1, 2, 4, 10]),
)
def test_throttle_properties(
    script: list[tuple[str, str, float]], per_second: int, ticks_per_second: int
) -> None:
    throttle = TallyThrottle(per_second)
    releases: dict[str, list[float]] = {"p": [], "q": []}
    owed = {"p": False, "q": False}

    def release(now: float) -> None:
        for poll in throttle.due(now):
            # Nothing is released without a change since the poll's previous release.
            assert owed[poll]
            owed[poll] = False
            releases[poll].append(now)

    now = 0.0
    for kind, poll, now in script:
        if kind == "change":
            throttle.owe(poll, now)
            owed[poll] = True
        else:
            release(now)
    # Asked on a timer (as the server does) after the last step, the throttle releases every
    # owed change within a second of that step.
    end = now
    for tick in range(ticks_per_second + 1):
        release(end + tick / ticks_per_second)
    assert owed == {"p": False, "q": False}
    for times in releases.values():
        # Never more than per_second releases within any one second.
        for i, start in enumerate(times):
            assert sum(1 for t in times[i:] if t < start + 1.0) <= per_second


def _clean(text: str, limit: int) -> bool:
    stripped = text.strip()
    return 1 <= len(stripped) <= limit and not any(
        unicodedata.category(c) in ("Cc", "Cs") for c in stripped
    )


@given(st.text(max_size=MAX_QUESTION + 20))
def test_question_accepted_exactly_when_clean(question: str) -> None:
    if _clean(question, MAX_QUESTION):
        assert make(question=question).question == question.strip()
    else:
        bad("question", question=question, options=["A", "B"])


@given(st.lists(st.text(max_size=MAX_OPTION + 5), max_size=MAX_OPTIONS + 2))
def test_options_accepted_exactly_when_clean(options: list[str]) -> None:
    trimmed = [o.strip() for o in options]
    valid = (
        MIN_OPTIONS <= len(options) <= MAX_OPTIONS
        and all(_clean(o, MAX_OPTION) for o in options)
        and len(set(trimmed)) == len(trimmed)
    )
    if valid:
        assert make(options=options).options == tuple(trimmed)
    else:
        with pytest.raises(HubError) as info:
            make(options=options)
        assert info.value.msg.startswith("options")


@given(st.floats(allow_nan=True) | st.integers(min_value=-10, max_value=MAX_DURATION + 10))
def test_duration_accepted_exactly_within_bounds(duration: float) -> None:
    if MIN_DURATION <= duration <= MAX_DURATION:
        assert make(duration=duration).closes_at == NOW + duration
    else:
        bad("duration", **OK, duration=duration)
