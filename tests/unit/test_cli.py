"""The ``hub`` command's parts that need no server: ``hub token``, the checks ``hub serve`` makes
before serving, and settings read from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.auth import Role, TokenAuthority
from hub.cli import main, sign_in_link
from hub.config import HubConfig, from_environment

SECRET = "cli-test-secret-0123456789abcdef-0123456789"


def test_token_prints_a_token_the_hub_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "token",
            "--user", "u42",
            "--name", "Ada",
            "--role", "moderator",
            "--room", "panel-1=speaker",
            "--ttl", "600",
            "--secret", SECRET,
        ]
    )  # fmt: skip
    assert code == 0
    identity = TokenAuthority(SECRET).verify(capsys.readouterr().out.strip())
    assert (identity.user_id, identity.name, identity.role) == ("u42", "Ada", Role.MODERATOR)
    assert identity.rooms == {"panel-1": Role.SPEAKER}
    assert identity.expires_at is not None


def test_token_lang_puts_the_language_in_the_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--user", "u1", "--name", "Bo", "--lang", "fr", "--secret", SECRET]) == 0
    assert TokenAuthority(SECRET).verify(capsys.readouterr().out.strip()).lang == "fr"


def test_token_reads_the_secret_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_SECRET", SECRET)
    assert main(["token", "--user", "u1", "--name", "Bo", "--ttl", "0"]) == 0
    identity = TokenAuthority(SECRET).verify(capsys.readouterr().out.strip())
    assert identity.role is Role.ATTENDEE and identity.expires_at is None


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("https://event.example.org", "https://event.example.org/"),
        ("https://event.example.org/", "https://event.example.org/"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/"),
        ("http://[::1]:8000/app", "http://[::1]:8000/app"),
        ("https://event.example.org/live?day=2", "https://event.example.org/live?day=2"),
        ("https://event.example.org/#/room/panel-1", "https://event.example.org/"),
        ("https://event.example.org?x=1#old=fragment", "https://event.example.org/?x=1"),
        ("HTTPS://event.example.org#", "https://event.example.org/"),
    ],
)
def test_token_link_puts_the_token_in_the_fragment(
    url: str, base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["token", "--user", "u7", "--name", "Cy", "--secret", SECRET, "--link", url])
    assert code == 0
    link = capsys.readouterr().out.strip()
    prefix = f"{base}#token="
    assert link.startswith(prefix)
    assert TokenAuthority(SECRET).verify(link.removeprefix(prefix)).user_id == "u7"


@pytest.mark.parametrize(
    "url",
    [
        "event.example.org",
        "//event.example.org/",
        "ftp://event.example.org/",
        "javascript:alert(1)",
        "http://",
        "https:///path",
        "http://event.example.org:99999/",
        "http://event.example.org:port/",
        "http://[::1/",
        "https://event.example.org/a b",
        "https://event.example.org/\n",
        "",
    ],
)
def test_token_link_refuses_what_is_not_an_http_url(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["token", "--user", "u7", "--name", "Cy", "--secret", SECRET, "--link", url])
    assert code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("hub: --link takes an http(s)://host/... URL, not ")
    assert err.count("\n") == 1


def test_sign_in_link_keeps_the_token_as_given() -> None:
    assert sign_in_link("https://e.example/x", "a.b-c_d") == "https://e.example/x#token=a.b-c_d"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["token", "--user", "u1", "--name", "Bo"], "HUB_SECRET"),
        (["token", "--user", "u1", "--name", "Bo", "--secret", "short"], "32"),
        (["token", "--user", "u1", "--name", "Bo", "--secret", SECRET, "--room", "x"], "ROOM=ROLE"),
        (["token", "--user", "u1", "--name", "Bo", "--secret", SECRET, "--lang", "fr_FR"], "tag"),
        (["serve", "--workers", "2"], "--redis"),
        (["serve", "--secret", "short"], "32"),
    ],
)
def test_bad_invocations_exit_2_with_a_reason(
    args: list[str],
    says: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HUB_SECRET", "REDIS_URL", "WEB_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    assert main(args) == 2
    assert says in capsys.readouterr().err


def test_serve_refuses_a_bad_rooms_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rooms = tmp_path / "rooms.toml"
    rooms.write_text('[[rooms]]\nid = "UPPER"\nkind = "panel"\n')
    assert main(["serve", "--secret", SECRET, "--rooms", str(rooms)]) == 2
    assert "rooms[0]" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("urls", "named"),
    [
        (["ws://janus:8188"], "'ws://janus:8188'"),
        (["janus+ws://a:8188,janus+ws://"], "'janus+ws://'"),
        (["janus+ws://a:8188", "janus+wss://b:99999"], "'janus+wss://b:99999'"),
        (["janus+http://a:8188"], "'janus+http://a:8188'"),
    ],
)
def test_serve_refuses_an_sfu_that_is_not_a_janus_url_in_one_line(
    urls: list[str],
    named: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HUB_SFU", raising=False)
    args = [arg for url in urls for arg in ("--sfu", url)]
    assert main(["serve", "--secret", SECRET, "--origin", "https://x.example", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hub: --sfu: ") and named in err
    monkeypatch.setenv("HUB_SFU", ",".join(urls))
    assert main(["serve", "--secret", SECRET, "--origin", "https://x.example"]) == 2
    assert named in capsys.readouterr().err


def test_settings_from_the_environment() -> None:
    config = from_environment(
        {
            "HUB_HOST": "0.0.0.0",
            "PORT": "9000",
            "WEB_CONCURRENCY": "3",
            "REDIS_URL": "redis://127.0.0.1:6390/0",
            "HUB_GUESTS": "yes",
            "HUB_ORIGINS": "https://a.example, https://b.example",
            "HUB_HISTORY": "50",
            "HUB_CHAT_HISTORY": "70",
            "HUB_LIMIT_QUEUE_MESSAGES": "10",
            "HUB_LIMIT_HELLO_TIMEOUT": "0.5",
            "HUB_SFU": "janus+ws://10.0.0.5:8188, janus+wss://janus.example/ws",
            "HUB_SFU_ADMIN_KEY": "admin-key",
            "HUB_SFU_ROOM_SECRET": "room-secret",
            "HUB_SFU_API_SECRET": "api-secret",
        }
    )
    assert (config.host, config.port, config.workers) == ("0.0.0.0", 9000, 3)
    assert config.broker_url == "redis://127.0.0.1:6390/0"
    assert config.guests_allowed is True
    assert config.origins == ("https://a.example", "https://b.example")
    assert (config.history_size, config.chat_history) == (50, 70)
    assert config.limits.queue_messages == 10 and config.limits.hello_timeout == 0.5
    assert config.sfu == ("janus+ws://10.0.0.5:8188", "janus+wss://janus.example/ws")
    assert (config.sfu_admin_key, config.sfu_room_secret, config.sfu_api_secret) == (
        "admin-key",
        "room-secret",
        "api-secret",
    )


def test_guests_default_to_allowed_only_on_a_trial_hub() -> None:
    assert HubConfig().guests_allowed is True
    assert HubConfig(secret=SECRET).guests_allowed is False
    assert HubConfig(secret=SECRET, guests=True).guests_allowed is True
    assert from_environment({}).broker_url == "memory://"
