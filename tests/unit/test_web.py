"""The web app over HTTP, in process (no socket): ``GET /`` and ``GET /static/{path}`` from the
package's ``hub/static`` folder with their security headers, ETags and media types, nothing
outside that folder, and ``GET /api/hub``."""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator, MutableMapping
from importlib import metadata
from typing import Any

import httpx
import pytest
import starlette.responses

from hub.app import HubApp, create_app
from hub.config import HubConfig
from hub.web import (
    catalogue_languages,
    content_security_policy,
    framing_origins,
    languages_of,
    web_host,
)

SECRET = "web-test-secret-0123456789abcdef-0123456789"
HOST = "hub.example.org:8443"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob: https: http:; "
    "media-src 'self' blob: mediastream:; "
    "connect-src 'self' ws://hub.example.org:8443 wss://hub.example.org:8443; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
JS = "text/javascript; charset=utf-8"


def app(**changes: Any) -> HubApp:
    return create_app(HubConfig(**{"secret": SECRET, **changes}))


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}") as client:
        yield client


def assert_secured(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-cache"


async def test_the_page_is_index_html_with_its_security_headers(http: httpx.AsyncClient) -> None:
    page = await http.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/static/app/main.js">' in page.text
    assert page.headers["etag"]
    assert_secured(page)
    head = await http.head("/")
    assert head.status_code == 200 and head.content == b""
    assert_secured(head)


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/static/livehub.js", JS),
        ("/static/app/main.js", JS),  # a subfolder
        ("/static/app.css", "text/css; charset=utf-8"),
        ("/static/index.html", "text/html; charset=utf-8"),
    ],
)
async def test_static_files_come_from_the_package(
    http: httpx.AsyncClient, path: str, media_type: str
) -> None:
    response = await http.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert_secured(response)


async def test_a_matching_etag_gets_304_with_the_headers(http: httpx.AsyncClient) -> None:
    for path in ("/", "/static/app/main.js"):
        first = await http.get(path)
        again = await http.get(path, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == first.headers["etag"]
        assert_secured(again)
        changed = await http.get(path, headers={"If-None-Match": '"another"'})
        assert changed.status_code == 200


async def test_javascript_is_javascript_whatever_the_platform_table_says(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = mimetypes.MimeTypes()
    table.add_type("application/x-javascript", ".js")
    monkeypatch.setattr(starlette.responses, "guess_type", table.guess_type)
    response = await http.get("/static/livehub.js")
    assert response.headers["content-type"] == JS


async def asgi_get(hub_app: HubApp, path: str) -> tuple[int, dict[str, str]]:
    """GET ``path`` exactly as given (no client normalises it): status and headers."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", HOST.encode())],
        "server": ("hub.example.org", 8443),
        "client": ("127.0.0.1", 50000),
    }
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await hub_app(scope, receive, send)
    start = sent[0]
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}


@pytest.mark.parametrize(
    "path",
    [
        "/static/../app.py",
        "/static/../../pyproject.toml",
        "/static/app/../../web.py",
        "/static/app/../../../README.md",
        "/static//etc/passwd",
        "/static/%2e%2e/app.py",
        "/static/nothing-here.js",
        "/static/",
        "/static/app",
        "/static/app/",
        "/static/a\x00b",
    ],
)
async def test_nothing_outside_the_folder_is_served(path: str) -> None:
    status, headers = await asgi_get(app(), path)
    assert status == 404
    assert headers["content-security-policy"] == CSP


async def test_static_files_are_read_only(http: httpx.AsyncClient) -> None:
    response = await http.post("/static/livehub.js")
    assert response.status_code == 405
    assert_secured(response)


async def test_api_hub_says_whether_guests_are_admitted_and_the_apps_languages() -> None:
    version = metadata.version("livehub")
    languages = list(catalogue_languages())
    trial = create_app(HubConfig())  # no secret: guests by default
    for hub_app, guests in ((app(), False), (app(guests=True), True), (trial, True)):
        transport = httpx.ASGITransport(app=hub_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            reply = await client.get("/api/hub")
            # Each language listed is a catalogue the app can load.
            for language in reply.json()["languages"]:
                catalogue = await client.get(f"/static/app/text-{language}.js")
                assert catalogue.status_code == 200
        assert reply.status_code == 200
        assert reply.json() == {"guests": guests, "version": version, "languages": languages}
    assert "en" in languages and languages == sorted(languages)


def test_the_languages_are_the_catalogues_files() -> None:
    names = ["text-en.js", "text-de-AT.js", "text-fr.js", "text-.js", "texts.js", "text-fr.js~"]
    assert languages_of([*names, "text-fr_FR.js", "main.js", "text-en.json"]) == (
        "de-AT",
        "en",
        "fr",
    )


def test_websockets_reach_the_endpoint_past_any_middleware() -> None:
    hub_app = app()
    assert hub_app.http.user_middleware == []


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("localhost", "localhost"),
        ("localhost:8000", "localhost:8000"),
        ("Event.Example.ORG", "event.example.org"),
        ("a-b.example:65535", "a-b.example:65535"),
        ("127.0.0.1:8000", "127.0.0.1:8000"),
        ("[::1]", "[::1]"),
        ("[2001:db8::1]:443", "[2001:db8::1]:443"),
        ("[::ffff:192.0.2.1]:80", "[::ffff:192.0.2.1]:80"),
        (None, None),
        ("", None),
        ("evil.example; script-src *", None),
        ("evil.example wss://other.example", None),
        ("host:0", None),
        ("host:65536", None),
        ("host:", None),
        ("host:80:90", None),
        ("host:8o", None),
        ("-host.example", None),
        ("host-.example", None),
        ("a..b", None),
        (".example", None),
        ("example.", None),
        ("under_score.example", None),
        ("x" * 64 + ".example", None),
        (".".join(["a" * 63] * 4) + "b", None),  # 254 characters
        ("256.1.1.1", None),
        ("1.2.3", None),
        ("::1", None),
        ("[::1", None),
        ("[::1]x", None),
        ("[::1]:", None),
        ("[fe80::1%25eth0]", None),
        ("[not-ipv6]", None),
        ("caf\u00e9.example", None),
        ("host\r\nX-Evil: 1", None),
        ("user@host", None),
    ],
)
def test_web_host_accepts_only_well_formed_hosts(host: str | None, expected: str | None) -> None:
    assert web_host(host) == expected


def test_a_malformed_host_leaves_connect_src_to_self() -> None:
    policy = content_security_policy("evil.example; script-src *")
    assert "connect-src 'self'; object-src 'none'" in policy
    assert "evil" not in policy
    assert "connect-src 'self' ws://[::1]:8000 wss://[::1]:8000;" in content_security_policy(
        "[::1]:8000"
    )


def test_only_the_events_own_sites_may_frame_the_app() -> None:
    assert framing_origins(
        ("https://event.example.org/", "*", "http://localhost:3000", "https://x; script-src *")
    ) == ("https://event.example.org", "http://localhost:3000")
    assert content_security_policy(HOST, ()).endswith("frame-ancestors 'none'")


async def test_the_page_may_be_framed_by_the_allowed_origins() -> None:
    origins = ("https://event.example.org", "https://www.example.org", "*")
    transport = httpx.ASGITransport(app=app(origins=origins))
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}") as client:
        for path in ("/", "/static/app.css"):
            policy = (await client.get(path)).headers["content-security-policy"]
            assert policy.endswith(
                "frame-ancestors https://event.example.org https://www.example.org"
            ), policy
