"""Fixtures of the browser tier: the web app in Debian's Chromium, driven by Playwright's Python
package (no browser is downloaded), with fake camera and microphone.

``browser`` is one Chromium for a module; each person is a browser context of their own (their
own storage), so several people share one browser. ``web_hub`` is a hub with a secret that also
admits guests, with a panel and a workshop. ``people`` opens people (``people.open(...)``) and,
when the test ends, fails it if any page threw an uncaught error.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TIMEOUT
from tests.support.hub_process import HubProcess, mint
from tests.support.system import require_chromium

# As the probe of this machine ran it, plus fake media devices, loopback ICE for WebRTC between
# contexts of one machine, and no mDNS names for host candidates (nothing here resolves them).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]

ROOMS_TOML = """
[[rooms]]
id = "panel-1"
kind = "panel"
title = "Opening panel"

[[rooms]]
id = "workshop-1"
kind = "workshop"
title = "Cluster workshop"
"""

# Milliseconds, for Playwright's expectations.
WAIT_MS = TIMEOUT * 1000


def unique(prefix: str) -> str:
    """A unique user id or room id."""
    return f"{prefix}-{secrets.token_hex(3)}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, shared by the module's tests."""
    path = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


def write_rooms(directory: Path) -> Path:
    """The test event's rooms file."""
    path = directory / "rooms.toml"
    path.write_text(ROOMS_TOML, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def web_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """A memory-mode hub with a secret that admits guests too, shared by the module."""
    rooms = write_rooms(tmp_path_factory.mktemp("rooms"))
    # The embedded SFU offers loopback candidates, as Chromium does here.
    process = HubProcess(
        args=["--guests", "--rooms", str(rooms)], env={"HUB_MEDIA_ADDRESSES": "127.0.0.1"}
    )
    try:
        yield process.start()
    finally:
        process.stop()


class Person:
    """One person's page; ``errors`` collects what the page threw."""

    def __init__(self, page: Any, user: str, name: str) -> None:
        self.page = page
        self.user = user
        self.name = name
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        # Shown with a failing test's output: what the page warned about.
        page.on(
            "console",
            lambda message: (
                message.type in ("warning", "error")
                and print(f"[{name} console.{message.type}] {message.text}")
            ),
        )

    def expect_connected(self) -> None:
        self.expect_connected_within(WAIT_MS)

    def expect_connected_within(self, milliseconds: float) -> None:
        from playwright.sync_api import expect

        expect(self.page.get_by_role("status")).to_have_text("Connected", timeout=milliseconds)

    def enter(self, title: str) -> None:
        """Go from the lobby into the session called ``title``."""
        from playwright.sync_api import expect

        self.page.get_by_role("link", name=title).click()
        expect(self.page.get_by_role("heading", level=1, name=title)).to_be_visible(timeout=WAIT_MS)

    def tab(self, name: str) -> None:
        """Open a tab of the room's side panel."""
        self.page.get_by_role("tab", name=name).click()


class People:
    """Opens people in the module's browser, each in a context of their own."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser
        self.opened: list[Person] = []
        self._contexts: list[Any] = []

    def context(self, **options: Any) -> Any:
        context = self.browser.new_context(
            **{"viewport": {"width": 1280, "height": 900}, **options}
        )
        context.set_default_timeout(WAIT_MS)
        self._contexts.append(context)
        return context

    def open(
        self,
        hub: HubProcess,
        user: str | None = None,
        role: str = "attendee",
        name: str | None = None,
        **options: Any,
    ) -> Person:
        """A signed-in person on ``hub``'s page (a token in the link), connected."""
        user = user or unique("user")
        name = name or user
        page = self.context(**options).new_page()
        person = Person(page, user, name)
        self.opened.append(person)
        page.goto(f"{hub.http}/#token={mint(user, role, name=name)}")
        person.expect_connected()
        return person

    def guest(self, hub: HubProcess, name: str, **options: Any) -> Person:
        """A guest who typed ``name`` into the entry form."""
        page = self.context(**options).new_page()
        person = Person(page, "", name)
        self.opened.append(person)
        page.goto(f"{hub.http}/")
        page.get_by_role("textbox", name="Your name").fill(name)
        page.get_by_role("button", name="Join").click()
        person.expect_connected()
        return person

    def in_new_room(
        self, hub: HubProcess, kind: str, *who: tuple[str, str]
    ) -> tuple[str, list[Person]]:
        """A fresh room of ``kind`` with these people in it, each ``(name, role)``, entered
        from the lobby in order; returns its title and them."""
        title = f"{kind.title()} {unique('r')}"
        new_room(hub, kind, title)
        persons = [self.open(hub, role=role, name=name) for name, role in who]
        for person in persons:
            person.enter(title)
        return title, persons

    def close(self) -> None:
        for context in self._contexts:
            with contextlib.suppress(Exception):
                context.close()


@pytest.fixture
def people(browser: Any) -> Iterator[People]:
    """Open people for a test; fails it if one of their pages threw an uncaught error."""
    opened = People(browser)
    try:
        yield opened
    finally:
        errors = [f"{person.name}: {error}" for person in opened.opened for error in person.errors]
        opened.close()
    assert not errors, f"the page threw: {errors}"


def new_room(hub: HubProcess, kind: str, title: str) -> str:
    """A fresh room of ``kind`` created by an organizer over HTTP; returns its id."""
    import httpx

    room = unique(kind)
    response = httpx.post(
        f"{hub.http}/api/rooms",
        json={"room": room, "kind": kind, "title": title},
        headers={"Authorization": f"Bearer {mint(unique('org'), 'organizer')}"},
        timeout=TIMEOUT,
    )
    response.raise_for_status()
    return room


def tab_to(page: Any, target: Any, limit: int = 80) -> None:
    """Press Tab until ``target`` (a locator) has the focus, as a keyboard-only person would."""
    for _ in range(limit):
        if target.evaluate("element => element === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{target} never got the focus after {limit} presses of Tab")
