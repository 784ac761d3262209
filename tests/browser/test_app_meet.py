""" "Meet someone" in the web app: two people press the button, land in their meeting with its
countdown, extend it together, leave, and exchange contact cards."""

from __future__ import annotations

import re
from typing import Any

from tests.browser.actions import expect
from tests.browser.conftest import WAIT_MS, People, Person
from tests.support.hub_process import HubProcess


def press_meet(person: Person, interests: str = "") -> None:
    page = person.page
    if interests:
        page.get_by_role("textbox", name="Interests (optional)").fill(interests)
    page.get_by_role("button", name="Meet someone").click()


def meeting_bar(person: Person) -> Any:
    return person.page.get_by_role("region", name="Your meeting")


def test_two_people_meet_extend_leave_and_exchange_cards(
    web_hub: HubProcess, people: People
) -> None:
    ada = people.open(web_hub, name="Ada")
    bob = people.open(web_hub, name="Bob")
    press_meet(ada, "design, python")
    expect(ada.page.get_by_text("Waiting for a partner…")).to_be_visible(timeout=WAIT_MS)
    expect(ada.page.get_by_role("button", name="Cancel")).to_be_visible()
    press_meet(bob)
    for person, other in ((ada, "Bob"), (bob, "Ada")):
        page = person.page
        expect(page.get_by_role("heading", level=1, name="Meeting")).to_be_visible(timeout=WAIT_MS)
        bar = meeting_bar(person)
        expect(bar.get_by_text(f"Meeting with {other}")).to_be_visible()
        expect(bar.get_by_role("timer")).to_have_text(re.compile(r"^Ends in [0-9]:[0-5][0-9]$"))
    # A reload inside the meeting finds it again, its bar and all.
    ada.page.reload()
    ada.expect_connected()
    expect(meeting_bar(ada).get_by_text("Meeting with Bob")).to_be_visible(timeout=WAIT_MS)
    # Both ask for more time: the meeting is extended for both.
    ada.page.get_by_role("button", name="Extend 5 minutes").click()
    expect(meeting_bar(bob).get_by_text("Ada would like more time.")).to_be_visible(timeout=WAIT_MS)
    bob.page.get_by_role("button", name="Extend 5 minutes").click()
    for person in (ada, bob):
        expect(meeting_bar(person).get_by_text("Extended.")).to_be_visible(timeout=WAIT_MS)
        expect(person.page.get_by_role("timer")).to_have_text(re.compile(r"^Ends in (9|10):"))
    # Bob leaves: the meeting ends for both, back in the lobby.
    meeting_bar(bob).get_by_role("button", name="Leave").click()
    for person, other in ((ada, "Bob"), (bob, "Ada")):
        page = person.page
        expect(page.get_by_role("heading", level=1, name="Lobby")).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_text(f"You met {other}.")).to_be_visible()
    # Cards: nothing shows until both shared.
    meet_of_ada = ada.page.get_by_role("region", name="Meet someone")
    meet_of_ada.get_by_role("textbox", name="Email").fill("ada@example.org")
    meet_of_ada.get_by_role("button", name="Share my contact card").click()
    expect(ada.page.get_by_text("Your card is ready")).to_be_visible(timeout=WAIT_MS)
    meet_of_bob = bob.page.get_by_role("region", name="Meet someone")
    meet_of_bob.get_by_role("textbox", name="Organisation").fill("<b>ACME</b>")
    meet_of_bob.get_by_role("button", name="Share my contact card").click()
    cards_of_ada = ada.page.get_by_role("list").filter(has_text="Bob")
    expect(cards_of_ada.get_by_text("<b>ACME</b>")).to_be_visible(timeout=WAIT_MS)
    expect(bob.page.get_by_text("ada@example.org")).to_be_visible(timeout=WAIT_MS)


def test_cancel_leaves_the_queue(web_hub: HubProcess, people: People) -> None:
    cleo = people.open(web_hub, name="Cleo")
    press_meet(cleo)
    expect(cleo.page.get_by_text("Waiting for a partner…")).to_be_visible(timeout=WAIT_MS)
    cleo.page.get_by_role("button", name="Cancel").click()
    expect(cleo.page.get_by_role("button", name="Meet someone")).to_be_visible(timeout=WAIT_MS)
    # A reload finds the person out of the queue (match.status).
    cleo.page.reload()
    cleo.expect_connected()
    expect(cleo.page.get_by_role("button", name="Meet someone")).to_be_visible(timeout=WAIT_MS)
