"""The web app embedded in an event site's page: a site in the hub's ``--origin`` list frames it
(``frame-ancestors``) and the person uses it there; a site that is not in the list cannot."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser.conftest import WAIT_MS, People
from tests.support.hub_process import HubProcess, free_port, mint


class _SitePage(BaseHTTPRequestHandler):
    """``GET /?src=URL``: a page of the event site with the app at ``URL`` in an iframe."""

    def do_GET(self) -> None:
        src = parse_qs(urlsplit(self.path).query).get("src", [""])[0].replace('"', "%22")
        body = (
            "<!doctype html><title>Conference</title><h1>Our conference</h1>"
            f'<iframe title="Live event" src="{src}" width="1000" height="700" '
            'allow="camera; microphone; display-capture; fullscreen"></iframe>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def sites() -> Iterator[tuple[str, str]]:
    """Two event sites on this machine, as origins: the one in the hub's allow-list, and another
    one (one server, reached by two names: ``localhost`` and ``127.0.0.2``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SitePage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        yield f"http://localhost:{port}", f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def framed_hub(sites: tuple[str, str]) -> Iterator[HubProcess]:
    """A hub whose allow-list is its own origin and the first event site's."""
    port = free_port()
    process = HubProcess(
        port=port, args=["--origin", f"http://127.0.0.1:{port}", "--origin", sites[0]]
    )
    try:
        yield process.start()
    finally:
        process.stop()


def site_page(context: Any, site: str, frame_src: str) -> tuple[Any, str]:
    """A new page and the address of ``site``'s page that embeds ``frame_src``."""
    return context.new_page(), f"{site}/?src={frame_src.replace('#', '%23')}"


def test_the_event_site_embeds_the_app(
    framed_hub: HubProcess, sites: tuple[str, str], people: People
) -> None:
    from playwright.sync_api import expect

    link = f"{framed_hub.http}/#token={mint('ada-embedded', 'attendee', name='Ada')}"
    page, address = site_page(people.context(), sites[0], link)
    page.goto(address)
    app = page.frame_locator('iframe[title="Live event"]')
    expect(app.get_by_role("status")).to_have_text("Connected", timeout=WAIT_MS)
    expect(app.get_by_role("heading", level=1)).to_be_visible()


def test_another_site_cannot_frame_it(
    framed_hub: HubProcess, sites: tuple[str, str], people: People
) -> None:
    page, address = site_page(people.context(), sites[1], f"{framed_hub.http}/")
    with page.expect_console_message(
        lambda message: "frame-ancestors" in message.text, timeout=WAIT_MS
    ) as refused:
        page.goto(address)
    assert framed_hub.http in refused.value.text
    assert page.frame_locator('iframe[title="Live event"]').get_by_role("status").count() == 0
