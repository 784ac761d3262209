"""The web app when the organizers close the event: every page is told, and goes back to the
lobby, where the notice stays."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.browser.actions import expect
from tests.browser.conftest import TIMEOUT, WAIT_MS, People, unique
from tests.support.hub_process import HubProcess, mint


@pytest.fixture
def own_hub() -> Iterator[HubProcess]:
    """A hub of this test's own: closing the event is for good."""
    process = HubProcess(args=["--guests"])
    try:
        yield process.start()
    finally:
        process.stop()


def test_closing_the_event_tells_every_page_and_leaves_the_lobby_with_its_notice(
    own_hub: HubProcess, people: People
) -> None:
    title = f"Workshop {unique('r')}"
    room = unique("workshop")
    organizer = {"Authorization": f"Bearer {mint(unique('org'), 'organizer')}"}
    httpx.post(
        f"{own_hub.http}/api/rooms",
        json={"room": room, "kind": "workshop", "title": title},
        headers=organizer,
        timeout=TIMEOUT,
    ).raise_for_status()
    ada = people.open(own_hub, name="Ada")
    ada.enter(title)
    bob = people.open(own_hub, name="Bob")
    closed = httpx.post(
        f"{own_hub.http}/api/event/close",
        json={"text": "That was the conference. See you next year!"},
        headers=organizer,
        timeout=TIMEOUT,
    )
    assert closed.status_code == 200 and closed.json()["closed"] is True
    for person in (ada, bob):
        expect(person.page.get_by_role("heading", level=1, name="Lobby")).to_be_visible(
            timeout=WAIT_MS
        )
        expect(person.page.get_by_role("list", name="Announcements")).to_contain_text(
            "That was the conference. See you next year!", timeout=WAIT_MS
        )
        # What the event ran is over: no "Meet someone" to press, no seat to take.
        meet = person.page.get_by_role("region", name="Meet someone")
        expect(meet).to_contain_text("meeting someone is closed")
        expect(meet.get_by_role("button", name="Meet someone")).to_have_count(0)
