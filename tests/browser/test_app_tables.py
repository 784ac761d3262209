"""The lobby's lounge in Chromium: the tables with their free seats, a person sitting down (and
into the table's video room), the others seeing them listed live, a full table saying so with no
join button, and a seat freed when its holder goes back to the lobby."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.browser.actions import expect
from tests.browser.conftest import WAIT_MS, People, unique
from tests.support.hub_process import HubProcess, mint

ROOMS_TOML = """
[[tables]]
id = "duo"
title = "Duo table"
topic = "Two chairs by the window"
seats = 2

[[tables]]
id = "big"
title = "Big table"
"""


@pytest.fixture(scope="module")
def lounge_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """A memory-mode hub whose rooms file declares two tables."""
    path: Path = tmp_path_factory.mktemp("tables") / "rooms.toml"
    path.write_text(ROOMS_TOML, encoding="utf-8")
    process = HubProcess(
        args=["--guests", "--rooms", str(path)], env={"HUB_MEDIA_ADDRESSES": "127.0.0.1"}
    )
    try:
        yield process.start()
    finally:
        process.stop()


def test_people_sit_at_a_table_and_the_lobby_shows_it_live(
    lounge_hub: HubProcess, people: People
) -> None:
    ada = people.open(lounge_hub, name="Ada <b>Lovelace</b>")
    bob = people.open(lounge_hub, name="Bob")
    lounge = bob.page.get_by_role("region", name="Lounge")
    duo = lounge.get_by_role("listitem").filter(
        has=bob.page.get_by_role("heading", name="Duo table")
    )
    expect(duo).to_contain_text("Two chairs by the window", timeout=WAIT_MS)
    expect(duo).to_contain_text("0 of 2 seats taken")
    expect(lounge.get_by_role("listitem").filter(has_text="Big table")).to_contain_text(
        "0 of 6 seats taken"
    )

    # Ada sits down: she is in the table's room, and Bob sees her there without reloading.
    ada.page.get_by_role("button", name="Join table Duo table").click()
    expect(ada.page.get_by_role("heading", level=1, name="Duo table")).to_be_visible(
        timeout=WAIT_MS
    )
    occupants = duo.get_by_role("list", name="At Duo table")
    expect(occupants).to_have_text("Ada <b>Lovelace</b>", timeout=WAIT_MS)  # shown as text
    expect(duo).to_contain_text("1 of 2 seats taken")

    # Cy takes the last seat: the table is full, and there is no join button for it.
    cy = people.open(lounge_hub, name="Cy")
    cy.page.get_by_role("button", name="Join table Duo table").click()
    expect(cy.page.get_by_role("heading", level=1, name="Duo table")).to_be_visible(timeout=WAIT_MS)
    expect(duo).to_contain_text("2 of 2 seats taken", timeout=WAIT_MS)
    expect(duo.get_by_text("Full", exact=True)).to_be_visible()
    expect(bob.page.get_by_role("button", name="Join table Duo table")).to_have_count(0)
    expect(bob.page.get_by_role("button", name="Join table Big table")).to_be_visible()

    # Ada goes back to the lobby: her seat is free again, for Bob to take.
    ada.page.get_by_role("button", name="← Lobby").click()
    expect(duo).to_contain_text("1 of 2 seats taken", timeout=WAIT_MS)
    expect(occupants).to_have_text("Cy")
    bob.page.get_by_role("button", name="Join table Duo table").click()
    expect(bob.page.get_by_role("heading", level=1, name="Duo table")).to_be_visible(
        timeout=WAIT_MS
    )
    ada_duo = (
        ada.page.get_by_role("region", name="Lounge")
        .get_by_role("listitem")
        .filter(has_text="Duo table")
    )
    expect(ada_duo).to_contain_text("2 of 2 seats taken", timeout=WAIT_MS)
    expect(ada_duo.get_by_role("list", name="At Duo table")).to_contain_text("Bob")


def test_closing_the_event_brings_the_table_back_to_the_lobby(
    lounge_hub: HubProcess, people: People
) -> None:
    # Runs last in this module: the event stays closed.
    dee = people.open(lounge_hub, name="Dee")
    dee.page.get_by_role("button", name="Join table Big table").click()
    expect(dee.page.get_by_role("heading", level=1, name="Big table")).to_be_visible(
        timeout=WAIT_MS
    )
    response = httpx.post(
        f"{lounge_hub.http}/api/event/close",
        headers={"Authorization": f"Bearer {mint(unique('org'), 'organizer')}"},
        timeout=WAIT_MS / 1000,
    )
    response.raise_for_status()
    expect(dee.page.get_by_role("heading", level=1, name="Lobby")).to_be_visible(timeout=WAIT_MS)
    expect(dee.page.get_by_text("the lounge tables are closed")).to_be_visible()
    lounge = dee.page.get_by_role("region", name="Lounge")
    expect(lounge).to_contain_text("The lounge is closed.")
    expect(lounge.get_by_role("listitem").filter(has_text="Big table")).to_contain_text(
        "0 of 6 seats taken", timeout=WAIT_MS
    )
    expect(lounge.get_by_role("button")).to_have_count(0)
