"""The lobby's people directory in Chromium: a person fills in their profile, another finds them
by interest and writes to them; what people wrote is shown as text; guests are told the
directory needs a sign-in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.actions import expect
from tests.browser.conftest import ROOMS_TOML, WAIT_MS, People, Person
from tests.conftest import TIMEOUT
from tests.support.hub_process import HubProcess, mint

INTERESTS = 'interests = ["AI", "Energy", "Climate"]\n'


def interests_hub(directory: Path) -> HubProcess:
    """A hub whose rooms file lists the event's interests, admitting guests too."""
    rooms = directory / "rooms.toml"
    rooms.write_text(INTERESTS + ROOMS_TOML, encoding="utf-8")
    return HubProcess(args=["--guests", "--rooms", str(rooms)])


@pytest.fixture(scope="module")
def directory_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """The module's hub (:func:`interests_hub`)."""
    process = interests_hub(tmp_path_factory.mktemp("rooms"))
    try:
        yield process.start()
    finally:
        process.stop()


def people_section(person: Person) -> Any:
    return person.page.get_by_role("region", name="People")


def test_a_person_publishes_a_profile_and_another_finds_them_by_interest(
    directory_hub: HubProcess, people: People
) -> None:
    name = "Ada <b>Lovelace</b>"
    bio = 'Engines & poems <img src="x" onerror="window.pwned=1">'
    ada = people.open(directory_hub, name="Ada")
    form = ada.page.get_by_role("form", name="Your profile")
    form.get_by_role("textbox", name="Name shown to others").fill(name)
    form.get_by_role("textbox", name="Organisation").fill("Analytical <i>Engines</i>")
    form.get_by_label("Country").select_option("GB")
    form.get_by_role("textbox", name="About you").fill(bio)
    form.get_by_role("checkbox", name="Energy").check()
    form.get_by_role("checkbox", name="Show me in the directory").check()
    form.get_by_role("checkbox", name="Others may contact me").check()
    form.get_by_role("button", name="Save profile").click()
    expect(ada.page.get_by_text("Your profile is saved.")).to_be_visible(timeout=WAIT_MS)

    bob = people.open(directory_hub, name="Bob")
    section = people_section(bob)
    search = section.get_by_role("search", name="Search people")
    search.get_by_label("Interest").select_option("Energy")
    results = section.get_by_role("list", name="People found")
    card = results.get_by_role("listitem").filter(has_text="Lovelace")
    expect(card).to_have_count(1, timeout=WAIT_MS)
    # Text as written, never markup: the heading holds the angle brackets, no element was made.
    expect(card.get_by_role("heading", name=name)).to_be_visible()
    expect(card).to_contain_text("Analytical <i>Engines</i> · United Kingdom")
    expect(card).to_contain_text(bio)
    expect(card).to_contain_text("Energy")
    assert card.locator("b, i, img").count() == 0
    assert bob.page.evaluate("window.pwned") is None

    # Searching by another interest or by name narrows the list.
    search.get_by_label("Interest").select_option("AI")
    expect(results.get_by_role("listitem").filter(has_text="Lovelace")).to_have_count(0)
    search.get_by_label("Interest").select_option("")
    search.get_by_role("searchbox", name="Name or organisation").fill("lovelace")
    search.get_by_role("button", name="Search", exact=True).click()
    expect(results.get_by_role("listitem")).to_have_count(1, timeout=WAIT_MS)

    # Ada accepts contact: Bob writes to her from her card.
    card.get_by_role("button", name=f"Message {name}").click()
    expect(bob.page.get_by_role("heading", name=f"Conversation with {name}")).to_be_visible(
        timeout=WAIT_MS
    )
    bob.page.get_by_role("textbox", name="Direct message").fill("Hello Ada")
    bob.page.get_by_role("button", name="Send message").click()
    conversations = ada.page.get_by_role("list", name="Conversations")
    expect(conversations.get_by_role("button", name="Bob")).to_be_visible(timeout=WAIT_MS)


def test_a_profile_not_shown_in_the_directory_is_not_found(
    directory_hub: HubProcess, people: People
) -> None:
    carol = people.open(directory_hub, name="Carol Quiet")
    form = carol.page.get_by_role("form", name="Your profile")
    form.get_by_role("checkbox", name="Climate").check()
    form.get_by_role("button", name="Save profile").click()
    expect(carol.page.get_by_text("Your profile is saved.")).to_be_visible(timeout=WAIT_MS)
    dan = people.open(directory_hub, name="Dan")
    section = people_section(dan)
    section.get_by_role("search").get_by_label("Interest").select_option("Climate")
    expect(section.get_by_text("Nobody found.")).to_be_visible(timeout=WAIT_MS)


def test_a_guest_is_told_the_directory_needs_a_sign_in(
    directory_hub: HubProcess, people: People
) -> None:
    gus = people.guest(directory_hub, "Gus")
    section = people_section(gus)
    expect(section).to_contain_text("The people directory needs a sign-in", timeout=WAIT_MS)
    expect(section.get_by_role("form")).to_have_count(0)


def test_the_directory_says_it_is_closed_once_the_event_is_over(
    tmp_path: Path, people: People
) -> None:
    hub = interests_hub(tmp_path)  # a hub of its own: closing the event is for good
    try:
        hub.start()
        ada = people.open(hub, name="Ada")
        section = people_section(ada)
        expect(section.get_by_role("form", name="Your profile")).to_be_visible(timeout=WAIT_MS)
        httpx.post(
            f"{hub.http}/api/event/close",
            headers={"Authorization": f"Bearer {mint('org', 'organizer')}"},
            timeout=TIMEOUT,
        ).raise_for_status()
        expect(section).to_contain_text("The event is over", timeout=WAIT_MS)
        expect(section.get_by_role("form")).to_have_count(0)
        # Someone who comes in later is told at once.
        late = people.open(hub, name="Late")
        expect(people_section(late)).to_contain_text("The event is over", timeout=WAIT_MS)
    finally:
        hub.stop()
