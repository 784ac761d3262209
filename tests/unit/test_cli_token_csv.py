"""``hub token --csv people.csv``: a sign-in link per registrant, written only when every row
is right; and ``--until`` (hub.cli)."""

from __future__ import annotations

import csv
import io
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.auth import Role, TokenAuthority
from hub.cli import main

SECRET = "cli-csv-test-secret-0123456789abcdef-0123"
BASE = "https://event.example.org/#token="
LINK = ["--link", "https://e.example/"]
WRONG_ROLE = "'chair' is not a role (attendee, speaker, moderator, organizer)"
PEOPLE = (
    "\ufeffemail;name;role;rooms;lang\r\n"
    "ada@example.org;Ada Lovelace;speaker;panel-1=speaker;en\r\n"
    'zoe@example.org;Zoë Müller;;"workshop=moderator;panel-1=attendee";de\r\n'
    'kim@example.org;"Kim, Lee";organizer;;\r\n'
)


@pytest.fixture(autouse=True)
def no_secret_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUB_SECRET", raising=False)


def people_file(tmp_path: Path, text: str = PEOPLE) -> Path:
    path = tmp_path / "people.csv"
    path.write_bytes(text.encode())
    return path


def next_month() -> tuple[str, float]:
    """An --until a month ahead, whole minutes, and its unix time."""
    moment = (datetime.now(UTC) + timedelta(days=30)).replace(second=0, microsecond=0)
    return moment.strftime("%Y-%m-%dT%H:%MZ"), moment.timestamp()


def token_csv(path: Path, *more: str) -> int:
    return main(["token", "--csv", str(path), "--secret", SECRET, *more])


def test_csv_writes_every_row_with_a_link_that_signs_its_person_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    until, expires = next_month()
    assert (
        token_csv(people_file(tmp_path), "--link", "https://event.example.org", "--until", until)
        == 0
    )
    out, err = capsys.readouterr()
    assert out.startswith("\ufeffemail;name;role;rooms;lang;link\r\n")
    rows = list(csv.reader(io.StringIO(out.removeprefix("\ufeff"), newline=""), delimiter=";"))
    assert [row[:-1] for row in rows[1:]] == [
        ["ada@example.org", "Ada Lovelace", "speaker", "panel-1=speaker", "en"],
        ["zoe@example.org", "Zoë Müller", "", "workshop=moderator;panel-1=attendee", "de"],
        ["kim@example.org", "Kim, Lee", "organizer", "", ""],
    ]
    authority = TokenAuthority(SECRET)
    assert all(row[-1].startswith(BASE) for row in rows[1:])
    identities = [authority.verify(row[-1].removeprefix(BASE)) for row in rows[1:]]
    assert [(i.user_id, i.name, i.role, dict(i.rooms)) for i in identities] == [
        ("ada@example.org", "Ada Lovelace", Role.SPEAKER, {"panel-1": Role.SPEAKER}),
        (
            "zoe@example.org",
            "Zoë Müller",
            Role.ATTENDEE,
            {"workshop": Role.MODERATOR, "panel-1": Role.ATTENDEE},
        ),
        ("kim@example.org", "Kim, Lee", Role.ORGANIZER, {}),
    ]
    assert [identity.lang for identity in identities] == ["en", "de", None]
    assert {identity.expires_at for identity in identities} == {expires}
    assert err == f"hub: 3 sign-in links, expiring at {until[:-1]}:00Z\n"


def test_role_and_room_options_are_everyones_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = people_file(tmp_path, "user,name,role\nu1,Ada,\nu2,Bo,moderator\n")
    code = token_csv(path, *LINK, "--ttl", "0", "--role", "speaker", "--room", "lobby-2=moderator")
    assert code == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out, newline="")))
    authority = TokenAuthority(SECRET)
    identities = [authority.verify(row[-1].split("#token=")[1]) for row in rows[1:]]
    assert [(i.role, dict(i.rooms), i.expires_at) for i in identities] == [
        (Role.SPEAKER, {"lobby-2": Role.MODERATOR}, None),
        (Role.MODERATOR, {"lobby-2": Role.MODERATOR}, None),
    ]


def test_lang_is_the_language_of_rows_without_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = people_file(tmp_path, "user,name,lang\nu1,Ada,\nu2,Bo,de-AT\n")
    assert token_csv(path, *LINK, "--ttl", "0", "--lang", "fr") == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out, newline="")))
    authority = TokenAuthority(SECRET)
    assert [authority.verify(row[-1].split("#token=")[1]).lang for row in rows[1:]] == [
        "fr",
        "de-AT",
    ]
    assert token_csv(path, *LINK, "--ttl", "0", "--lang", "fr_FR") == 2
    assert "--lang: 'fr_FR' is not a language tag" in capsys.readouterr().err


def test_out_writes_a_file_only_its_owner_may_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    links = tmp_path / "links.csv"
    code = token_csv(people_file(tmp_path), *LINK, "--ttl", "86400", "--out", str(links))
    assert code == 0
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("hub: 3 sign-in links, expiring at ")
    assert stat.S_IMODE(links.stat().st_mode) == 0o600
    assert links.read_bytes().startswith(b"\xef\xbb\xbfemail;name;role;rooms;lang;link\r\n")
    assert links.read_bytes().count(b"#token=") == 3


def test_a_wrong_row_stops_everything_and_names_each_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = people_file(
        tmp_path, "user,name,role,rooms\nu1,Ada,,\nu2,,,\nU1,Ada,,\nu3,Cy,chair,\nu4,Di,,panel\n"
    )
    links = tmp_path / "links.csv"
    code = token_csv(path, *LINK, "--ttl", "600", "--out", str(links))
    assert code == 2
    out, err = capsys.readouterr()
    assert out == "" and not links.exists()
    assert err.splitlines() == [
        f"hub: {path} line 3: no name (column 'name' is empty)",
        f"hub: {path} line 4: user 'U1' is on line 2 too",
        f"hub: {path} line 5: role: {WRONG_ROLE}",
        f"hub: {path} line 6: rooms: 'panel' is not ROOM=ROLE (such as panel-1=speaker)",
    ]


def test_only_the_first_twenty_wrong_lines_are_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = people_file(tmp_path, "user,name\n" + "".join(f"u{n},\n" for n in range(25)))
    assert token_csv(path, *LINK, "--ttl", "600") == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 21 and err[-1] == f"hub: {path}: and 5 more wrong lines"


@pytest.mark.parametrize(
    ("more", "says"),
    [
        (["--ttl", "600"], "hub: --csv needs --link URL"),
        (LINK, "hub: --csv needs --ttl SECONDS or --until TIME"),
        (["--link", "e.example", "--ttl", "600"], "hub: --link takes an http(s)://host/... URL"),
        ([*LINK, "--ttl", "600", "--user", "u1"], "drop --user, --name"),
        ([*LINK, "--until", "2026-12-10T18:00"], "has no time zone"),
        ([*LINK, "--until", "2001-01-01T00:00Z"], "is past"),
        ([*LINK, "--ttl", "-5"], "--ttl takes seconds"),
        ([*LINK, "--ttl", "600", "--room", "x=host"], "hub: --room: 'x=host'"),
        ([*LINK, "--ttl", "600", "--room", "X=speaker"], "hub: --room: 'X'"),
    ],
)
def test_csv_refuses_what_is_missing_or_wrong_in_one_line(
    more: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert token_csv(people_file(tmp_path), *more) == 2
    out, err = capsys.readouterr()
    assert out == "" and says in err and err.count("\n") == 1


def test_csv_says_when_the_file_cannot_be_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.csv"
    assert token_csv(missing, *LINK, "--ttl", "600") == 2
    assert capsys.readouterr().err == f"hub: {missing}: No such file or directory\n"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["token", "--name", "Bo"], "needs --user ID and --name NAME"),
        (["token", "--user", "u1"], "needs --user ID and --name NAME"),
        (["token", "--user", "u1", "--name", "Bo", "--out", "x.csv"], "--out goes with --csv"),
    ],
)
def test_a_single_token_needs_user_and_name(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*args, "--secret", SECRET]) == 2
    assert says in capsys.readouterr().err


def test_until_sets_a_single_tokens_expiry(capsys: pytest.CaptureFixture[str]) -> None:
    until, expires = next_month()
    assert (
        main(["token", "--user", "u1", "--name", "Bo", "--secret", SECRET, "--until", until]) == 0
    )
    token = capsys.readouterr().out.strip()
    assert TokenAuthority(SECRET).verify(token).expires_at == expires


def test_a_single_token_still_lasts_an_hour_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--user", "u1", "--name", "Bo", "--secret", SECRET]) == 0
    identity = TokenAuthority(SECRET).verify(capsys.readouterr().out.strip())
    assert identity.expires_at is not None and identity.issued_at is not None
    assert identity.expires_at - identity.issued_at == 3600
