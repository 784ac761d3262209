"""When ``hub token``'s tokens expire (hub.token_expiry): ``--ttl`` and ``--until``."""

from __future__ import annotations

import pytest

from hub.token_expiry import expiry_text, parse_until, token_ttl

DEC_10_18H = 1_796_925_600.0  # 2026-12-10T18:00:00Z


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-10T18:00Z",
        "2026-12-10T18:00:00Z",
        "2026-12-10T19:00+01:00",
        "2026-12-10 13:00-05:00",
        " 2026-12-10T18:00:00+00:00 ",
    ],
)
def test_until_names_one_instant_whatever_its_zone(text: str) -> None:
    assert parse_until(text) == DEC_10_18H


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2026-12-10T18:00", "has no time zone"),
        ("2026-12-10", "has no time zone"),
        ("tomorrow", "is not a date and time"),
        ("2026-13-10T18:00Z", "is not a date and time"),
        ("", "is not a date and time"),
    ],
)
def test_until_refuses_what_is_not_one_instant(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_until(text)


def test_the_lifetime_from_ttl_until_or_the_default() -> None:
    now = DEC_10_18H - 86_400
    assert token_ttl(ttl=600, until=None, now=now, default=3600) == 600
    assert token_ttl(ttl=0, until=None, now=now, default=3600) is None
    assert token_ttl(ttl=None, until="2026-12-10T18:00Z", now=now, default=3600) == 86_400
    assert token_ttl(ttl=None, until=None, now=now, default=3600) == 3600
    assert token_ttl(ttl=None, until=None, now=now, default=None) is None


@pytest.mark.parametrize(
    ("ttl", "until", "says"),
    [
        (-1.0, None, "--ttl takes seconds"),
        (float("inf"), None, "--ttl takes seconds"),
        (float("nan"), None, "--ttl takes seconds"),
        (None, "2026-12-10T18:00Z", "--until: '2026-12-10T18:00Z' is past"),
        (None, "2026-12-10T18:00", "--until: .* has no time zone"),
    ],
)
def test_a_lifetime_that_cannot_be_is_refused(
    ttl: float | None, until: str | None, says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        token_ttl(ttl=ttl, until=until, now=DEC_10_18H, default=3600)


def test_expiry_text() -> None:
    assert expiry_text(ttl=None, now=DEC_10_18H) == "never"
    assert expiry_text(ttl=90.5, now=DEC_10_18H) == "at 2026-12-10T18:01:30Z"
