"""Take the README's screenshots of the web app: the lobby, a panel and a workshop, on a desktop
screen and on a 375 px phone, from a small demo event on a private hub.

    .venv/bin/python docs/screenshots/make.py

Needs Debian's Chromium (/usr/bin/chromium). Writes docs/screenshots/*.png.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from playwright.sync_api import sync_playwright  # noqa: E402

from livehub_client import HubClient  # noqa: E402
from tests.browser.conftest import CHROMIUM_ARGS, ROOMS_TOML  # noqa: E402
from tests.support.hub_process import HubProcess, mint  # noqa: E402

OUT = Path(__file__).resolve().parent
DESKTOP = {"width": 1280, "height": 800}
# The demo event: the tests' rooms, the event's interests and two lounge tables.
DEMO_ROOMS = (
    """
interests = ["Energy", "Digital twins", "Funding", "Mobility"]
"""
    + ROOMS_TOML
    + """

[[tables]]
id = "coffee"
title = "Coffee corner"
topic = "Meet the cluster managers"
seats = 4

[[tables]]
id = "startups"
title = "Startups"
seats = 2
"""
)
# People who published a profile for the directory: (user, name, organisation, country,
# interests, bio).
PROFILES = [
    ("maria", "Maria Rossi", "Cluster Lombardia", "IT", ["Energy", "Funding"],
     "Runs an energy cluster of 140 companies."),
    ("jan", "Jan Novák", "Moravian Mobility Cluster", "CZ", ["Mobility", "Energy"],
     "Electric buses, charging and the people who build them."),
]  # fmt: skip


async def publish_profiles(url: str) -> None:
    """The demo's profiles, published as their owners would (``profile.set``)."""
    for user, name, organisation, country, interests, bio in PROFILES:
        async with HubClient(url, token=mint(user, name=name)) as client:
            await client.request(
                "profile.set", organisation=organisation, country=country,
                interests=interests, bio=bio, listed=True, contact=True,
            )  # fmt: skip


PHONE = {"width": 375, "height": 740}


def write_demo_rooms(directory: Path) -> Path:
    """The demo event's rooms file."""
    path = directory / "rooms.toml"
    path.write_text(DEMO_ROOMS, encoding="utf-8")
    return path


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        HubProcess(
            args=["--guests", "--rooms", str(write_demo_rooms(Path(tmp)))],
            env={"HUB_MEDIA_ADDRESSES": "127.0.0.1"},  # the stage's media stays on loopback
        ) as hub,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )

        def person(user: str, name: str, role: str = "attendee", viewport: Any = DESKTOP) -> Any:
            page = browser.new_context(viewport=viewport).new_page()
            page.goto(f"{hub.http}/#token={mint(user, role, name=name)}")
            page.get_by_role("status").filter(has_text="Connected").wait_for()
            return page

        def enter(page: Any, title: str) -> None:
            page.get_by_role("link", name=title).click()
            page.get_by_role("heading", level=1, name=title).wait_for()

        organizer = person("olga", "Olga Lindqvist", "organizer")
        organizer.get_by_role("textbox", name="Poll question").fill(
            "European cluster manager of the year"
        )
        organizer.get_by_role("textbox", name="Option 1", exact=True).fill("Maria Rossi")
        organizer.get_by_role("textbox", name="Option 2", exact=True).fill("Jan Novák")
        organizer.get_by_role("button", name="Add option").click()
        organizer.get_by_role("textbox", name="Option 3", exact=True).fill("Aoife Byrne")
        organizer.get_by_label("Show results").select_option("closed")
        organizer.get_by_label("Voters may change their vote").uncheck()
        organizer.get_by_label("Guests may vote").uncheck()
        organizer.get_by_role("button", name="Start poll").click()
        organizer.get_by_role("textbox", name="Announcement").fill(
            "Welcome! The opening panel starts at 10:00 in the main stage."
        )
        organizer.get_by_role("button", name="Announce").click()

        moderator = person("mona", "Mona Schmidt", "moderator")
        speaker = person("sven", "Sven Berg", "attendee")
        ada = person("ada", "Ada Lovelace")
        bob = person("bob", "Bob Martin")
        for page in (moderator, speaker, ada, bob):
            enter(page, "Opening panel")
        moderator.get_by_role("tab", name="People").click()
        moderator.get_by_role("button", name="Sven Berg").click()
        moderator.get_by_role("button", name="Invite to stage").click()
        speaker.get_by_role("button", name="Go live").click()
        moderator.get_by_role("tab", name="Polls").click()
        moderator.get_by_role("textbox", name="Poll question").fill(
            "Which topic should we take next?"
        )
        moderator.get_by_role("textbox", name="Option 1", exact=True).fill("Cross-border funding")
        moderator.get_by_role("textbox", name="Option 2", exact=True).fill("Digital twins")
        moderator.get_by_role("button", name="Start poll").click()
        for page, text in (
            (ada, "Good morning from Lyon!"),
            (bob, "Hello everyone, the sound is great."),
            (ada, "Slides: https://example.org/slides"),
        ):
            page.get_by_role("textbox", name="Message", exact=True).fill(text)
            page.get_by_role("button", name="Send", exact=True).click()
        bob.get_by_role("tab", name="Q&A").click()
        bob.get_by_role("textbox", name="Question", exact=True).fill(
            "How do small clusters join the partnership programme?"
        )
        bob.get_by_role("button", name="Ask", exact=True).click()
        ada.get_by_role("tab", name="Polls").click()
        ballot = ada.get_by_role("group", name="Which topic should we take next?")
        ballot.get_by_role("radio", name="Digital twins").check()
        ballot.get_by_role("button", name="Vote", exact=True).click()
        ada.get_by_role("button", name="Raise hand").click()

        # Playwright's sync API holds this thread's event loop: the client runs in another.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, publish_profiles(hub.url)).result()
        tom = person("tom", "Tom Weber")
        tom.get_by_role("button", name="Join table Coffee corner").click()
        tom.get_by_role("heading", level=1, name="Coffee corner").wait_for()
        lobby = person("lena", "Lena Fischer")
        lobby.get_by_label("Interest", exact=True).select_option("Energy")
        lobby.get_by_role("button", name="Search", exact=True).click()
        lobby.get_by_text("Cluster Lombardia").wait_for()
        lobby.wait_for_timeout(2500)  # the lobby's live counts arrive every 2 s
        lobby.screenshot(path=OUT / "lobby.png", full_page=True)
        ada.get_by_role("tab", name="Chat").click()
        ada.wait_for_timeout(500)
        ada.screenshot(path=OUT / "panel.png")
        phone = person("pia", "Pia Novak", viewport=PHONE)
        enter(phone, "Opening panel")
        phone.wait_for_timeout(500)
        phone.screenshot(path=OUT / "panel-phone.png")

        people = [person(f"w{i}", name) for i, name in enumerate(["Ana", "Ben", "Chloé"])]
        for page in people:
            enter(page, "Cluster workshop")
            page.get_by_role("button", name="Camera", exact=True).click()
        people[0].get_by_role("textbox", name="Message", exact=True).fill(
            "Shall we split into groups?"
        )
        people[0].get_by_role("button", name="Send", exact=True).click()
        people[0].wait_for_timeout(4000)  # video flowing between the three
        people[0].screenshot(path=OUT / "workshop.png")
        browser.close()
    print(f"screenshots written to {OUT}")


if __name__ == "__main__":
    main()
