"""The registrants' file of ``hub token --csv`` (hub.registrants): reading and checking rows,
the problems named by line, the encodings and delimiters spreadsheets write, and the file of
links made from it. Pure functions: bytes in, rows and text out."""

from __future__ import annotations

import codecs
import csv
import io

import pytest

from hub.auth import Role, TokenAuthority
from hub.registrants import (
    Problem,
    Registrants,
    RegistrantsError,
    parse_rooms,
    read_registrants,
    token_for,
)

SECRET = "registrants-test-secret-0123456789abcdef"
NOW = 1_800_000_000.0
NO_HEADER = "is not a header row: the file must begin with one (user,name,...)"
NO_USER_COLUMN = "no column of user ids: the header needs user, id or email"


def read(text: str, **options: object) -> Registrants:
    return read_registrants(text.encode(), **options)  # type: ignore[arg-type]


def problems_of(text: str | bytes) -> list[Problem]:
    data = text.encode() if isinstance(text, str) else text
    with pytest.raises(RegistrantsError) as caught:
        read_registrants(data)
    return list(caught.value.problems)


def rows_of(output: str, delimiter: str = ",") -> list[list[str]]:
    text = output.removeprefix("\ufeff")
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


# --- reading ---------------------------------------------------------------------------------


def test_a_plain_file_gives_each_person_with_their_row() -> None:
    people = read("user,name,lang\r\nu1,Ada Lovelace,en\r\nu2,Grace Hopper,\r\n")
    assert people.header == ("user", "name", "lang")
    assert people.delimiter == "," and people.bom is False
    ada, grace = people.people
    assert (ada.line, ada.user, ada.name, ada.role, dict(ada.rooms)) == (
        2,
        "u1",
        "Ada Lovelace",
        Role.ATTENDEE,
        {},
    )
    assert ada.cells == ("u1", "Ada Lovelace", "en")
    assert (grace.line, grace.user, grace.cells) == (3, "u2", ("u2", "Grace Hopper", ""))


def test_roles_and_rooms_come_from_their_columns() -> None:
    people = read(
        "user,name,role,rooms\n"
        'u1,Ada,Speaker,"panel-1=speaker;workshop=moderator"\n'
        "u2,Bo, moderator ,panel-2 = speaker\n"
        "u3,Cy,,\n"
    )
    ada, bo, cy = people.people
    assert ada.role is Role.SPEAKER
    assert dict(ada.rooms) == {"panel-1": Role.SPEAKER, "workshop": Role.MODERATOR}
    assert bo.role is Role.MODERATOR and dict(bo.rooms) == {"panel-2": Role.SPEAKER}
    assert cy.role is Role.ATTENDEE and dict(cy.rooms) == {}


def test_the_default_role_and_rooms_fill_in_and_a_row_decides_its_own() -> None:
    people = read(
        "user,name,role,rooms\nu1,Ada,,\nu2,Bo,organizer,lounge=attendee;panel-1=moderator\n",
        role=Role.SPEAKER,
        rooms={"panel-1": Role.SPEAKER, "lounge": Role.SPEAKER},
    )
    ada, bo = people.people
    assert ada.role is Role.SPEAKER
    assert dict(ada.rooms) == {"panel-1": Role.SPEAKER, "lounge": Role.SPEAKER}
    assert bo.role is Role.ORGANIZER
    assert dict(bo.rooms) == {"panel-1": Role.MODERATOR, "lounge": Role.ATTENDEE}


@pytest.mark.parametrize(
    ("header", "user"),
    [
        ("user,id,email,name", "the-user"),
        ("email,id,name", "the-id"),
        ("email,name", "the-email"),
        (" E-Mail ,name", None),
        (" EMAIL , Name ", "the-email"),
    ],
)
def test_the_user_id_is_the_first_of_user_id_and_email(header: str, user: str | None) -> None:
    values = {"user": "the-user", "id": "the-id", "email": "the-email", "name": "Ada"}
    row = ",".join(values.get(label.strip().lower(), "x") for label in header.split(","))
    text = f"{header}\n{row}\n"
    if user is None:
        assert problems_of(text) == [Problem(1, NO_USER_COLUMN)]
    else:
        assert read(text).people[0].user == user


def test_a_bom_from_excel_is_read_and_written_again() -> None:
    data = codecs.BOM_UTF8 + "email;name\r\nzoe@example.org;Zoë Müller\r\n".encode()
    people = read_registrants(data)
    assert people.bom is True and people.header == ("email", "name")
    assert people.people[0].name == "Zoë Müller"
    assert people.with_links(["L"]).startswith("\ufeffemail;name;link\r\n")


def test_utf16_with_its_bom_is_read() -> None:
    data = "user\tname\r\nu1\tŁukasz Żółw\r\n".encode("utf-16")
    people = read_registrants(data)
    assert people.delimiter == "\t" and people.bom is True
    assert people.people[0].name == "Łukasz Żółw"


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_the_header_row_decides_the_delimiter(delimiter: str) -> None:
    # The other delimiters appear in the values: only the header row tells them apart.
    rows = [["user", "name", "company"], ["u1", "Lee, Kim", "A; B"], ["u2", "李雷", "C,D;E"]]
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter).writerows(rows)
    people = read(out.getvalue())
    assert people.delimiter == delimiter
    assert [person.cells for person in people.people] == [tuple(row) for row in rows[1:]]
    assert [person.name for person in people.people] == ["Lee, Kim", "李雷"]


def test_quotes_doubled_and_a_value_over_two_lines_keep_the_line_numbers_right() -> None:
    people = read('user,name,note\nu1,"Ada ""the first"" L.","one\ntwo"\n\nu2,Bo,\n')
    ada, bo = people.people
    assert ada.name == 'Ada "the first" L.' and ada.cells[2] == "one\ntwo"
    assert (ada.line, bo.line) == (2, 5)


def test_rows_with_nothing_in_them_are_left_out() -> None:
    people = read("user;name;lang\r\nu1;Ada;en\r\n;;\r\n\r\n  ; ;\r\nu2;Bo;\r\n;;\r\n")
    assert [(person.line, person.user) for person in people.people] == [(2, "u1"), (6, "u2")]


def test_short_rows_are_filled_and_empty_extra_cells_dropped() -> None:
    people = read("user,name,lang\nu1,Ada\nu2,Bo,en,,\n")
    assert [person.cells for person in people.people] == [("u1", "Ada", ""), ("u2", "Bo", "en")]


def test_values_are_trimmed_for_the_token_and_kept_as_read_in_the_row() -> None:
    person = read("user,name\n  u1 ,  Ada  \n").people[0]
    assert (person.user, person.name) == ("u1", "Ada")
    assert person.cells == ("  u1 ", "  Ada  ")


# --- what is wrong, by line ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "what"),
    [
        (",Ada,,", "no user id (column 'user' is empty)"),
        ("u2,  ,,", "no name (column 'name' is empty)"),
        ("u2,Ada,chair,", "role: 'chair' is not a role (attendee, speaker, moderator, organizer)"),
        (f"{'u' * 129},Ada,,", "the user id is longer than 128 characters"),
        (f"u2,{'A' * 65},,", "name: must be at most 64 characters"),
        ('u2,"Ada\nLovelace",,', "name: must not contain control characters"),
        ("u2,Ada\u202eecalevol,,", "name: must not contain control characters"),
        ("u2,Ada,,panel-1", "rooms: 'panel-1' is not ROOM=ROLE (such as panel-1=speaker)"),
        (
            "u2,Ada,,Panel-1=speaker",
            "rooms: 'Panel-1' is not a room id (lower-case letters, digits, '.', '_', '-')",
        ),
        (
            'u2,Ada,,"panel-1=speaker,panel-2=host"',
            "rooms: 'panel-2=host': 'host' is not a role (attendee, speaker, moderator, organizer)",
        ),
        ('u2,Ada,,"p=speaker;p=moderator"', "rooms: room p is named twice"),
        ("u2,Ada,,,surplus", "5 fields where the header has 4 (a delimiter in an unquoted value?)"),
    ],
)
def test_a_wrong_row_is_named_by_its_line(row: str, what: str) -> None:
    text = f"user,name,role,rooms\nu1,Bo,,\n{row}\n"
    assert problems_of(text) == [Problem(3, what)]


def test_every_wrong_row_is_named_in_the_files_order() -> None:
    text = "user,name,role\nu1,Ada,\nu2,,\nU1,Ada again,\nu3,Cy,chair\nu4,Di,\nu2,Bo,\n"
    assert problems_of(text) == [
        Problem(3, "no name (column 'name' is empty)"),
        Problem(4, "user 'U1' is on line 2 too"),
        Problem(5, "role: 'chair' is not a role (attendee, speaker, moderator, organizer)"),
        # Line 3's own problem is its name: its user id still counts as taken.
        Problem(7, "user 'u2' is on line 3 too"),
    ]
    assert str(Problem(4, "x")) == "line 4: x"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", Problem(1, NO_HEADER)),
        ("\n\nuser,name\n", Problem(1, NO_HEADER)),
        ("user,lang\nu1,en\n", Problem(1, "no column 'name' in the header")),
        ("name,lang\nAda,en\n", Problem(1, NO_USER_COLUMN)),
        ("user,name,Name\n", Problem(1, "column 'Name' appears twice")),
        ("user,name,link\n", Problem(1, "there is a 'link' column already (a file of links?)")),
        ("user,name\n", Problem(2, "no one is listed under the header row")),
        ("user,name\n,\n", Problem(2, "no one is listed under the header row")),
        ('user,name\nu1,"Ada\n', Problem(2, "is not CSV: unexpected end of data")),
        ('user,name\nu1,"Ada"x\n', Problem(2, "is not CSV: ',' expected after '\"'")),
    ],
)  # fmt: skip
def test_a_file_that_cannot_be_read_says_why(text: str, problem: Problem) -> None:
    assert problems_of(text) == [problem]


def test_text_that_is_not_utf8_is_named_by_its_line() -> None:
    data = b"user,name\nu1,Ada\n" + "u2,Zoë\n".encode("cp1252")
    assert problems_of(data) == [Problem(3, "is not UTF-8 text: save the file as CSV UTF-8")]


def test_parse_rooms() -> None:
    assert parse_rooms("") == {}
    assert parse_rooms(" ; ,") == {}
    assert parse_rooms("a=speaker, b.b1=moderator ;c=attendee") == {
        "a": Role.SPEAKER,
        "b.b1": Role.MODERATOR,
        "c": Role.ATTENDEE,
    }
    with pytest.raises(ValueError, match="is not ROOM=ROLE"):
        parse_rooms("a=speaker;b")


# --- the links' file ---------------------------------------------------------------------------


def test_each_link_carries_its_rows_identity_and_the_other_columns_stay() -> None:
    authority = TokenAuthority(SECRET)
    people = read(
        "email;name;role;rooms;lang\n"
        "ada@example.org;Ada Lovelace;speaker;panel-1=speaker;en\n"
        'zoe@example.org;Zoë Müller;;"workshop=moderator;panel-1=attendee";de\n'
        'kim@example.org;"Kim; Lee";organizer;;\n'
    )
    base = "https://event.example.org/#token="
    links = [base + token_for(person, authority, ttl=3600, now=NOW) for person in people.people]
    rows = rows_of(people.with_links(links), people.delimiter)
    assert rows[0] == ["email", "name", "role", "rooms", "lang", "link"]
    assert [row[:-1] for row in rows[1:]] == [list(person.cells) for person in people.people]
    identities = [authority.verify(row[-1].removeprefix(base), now=NOW) for row in rows[1:]]
    assert [(i.user_id, i.name, i.role, dict(i.rooms)) for i in identities] == [
        ("ada@example.org", "Ada Lovelace", Role.SPEAKER, {"panel-1": Role.SPEAKER}),
        (
            "zoe@example.org",
            "Zoë Müller",
            Role.ATTENDEE,
            {"workshop": Role.MODERATOR, "panel-1": Role.ATTENDEE},
        ),
        ("kim@example.org", "Kim; Lee", Role.ORGANIZER, {}),
    ]
    assert [identity.lang for identity in identities] == ["en", "de", None]
    assert all(identity.expires_at == NOW + 3600 for identity in identities)


def test_the_lang_column_gives_a_language_and_the_default_fills_in() -> None:
    people = read("user,name,Lang\nu1,Ada, fr-CA \nu2,Bo,\n", lang="de")
    assert [person.lang for person in people.people] == ["fr-CA", "de"]
    assert [person.lang for person in read("user,name\nu1,Ada\n").people] == [None]


def test_a_lang_that_is_no_language_tag_is_named_by_its_line() -> None:
    assert problems_of("user,name,lang\nu1,Ada,fr\nu2,Bo,français\n") == [
        Problem(3, "lang: 'français' is not a language tag (such as fr or de-AT)")
    ]


def test_a_token_without_ttl_never_expires() -> None:
    authority = TokenAuthority(SECRET)
    person = read("user,name\nu1,Ada\n").people[0]
    token = token_for(person, authority, ttl=None, now=NOW)
    assert authority.verify(token, now=NOW + 10**9).expires_at is None


def test_the_links_file_keeps_the_delimiter_and_quotes_what_needs_it() -> None:
    people = read('user;name\r\nu1;"Lee; Kim"\r\nu2;"Ada ""A"""\r\n')
    assert people.with_links(["https://e.example/#token=a", "https://e.example/#token=b"]) == (
        "user;name;link\r\n"
        'u1;"Lee; Kim";https://e.example/#token=a\r\n'
        'u2;"Ada ""A""";https://e.example/#token=b\r\n'
    )


def test_one_link_per_person_or_nothing() -> None:
    people = read("user,name\nu1,Ada\nu2,Bo\n")
    with pytest.raises(ValueError, match="1 links for 2 people"):
        people.with_links(["only-one"])
