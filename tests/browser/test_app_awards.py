"""The awards in Chromium: the lobby's Awards section with the candidates' profiles (a picture
from a local server, organisation, country, description) and the partnerships of the year before
the vote; an organizer opening the declared election from the app; one vote per person (the
ballot says so, the hub answers ``conflict`` to a second one); and the results moment reaching
two browsers on two nodes of one Redis at once, a late arrival seeing it too."""

from __future__ import annotations

import asyncio
import re
import struct
import threading
import zlib
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.browser.actions import expect, poll_group
from tests.browser.conftest import WAIT_MS, People, Person, unique
from tests.support.hub_process import HubProcess, mint
from tests.support.redis_server import RedisServer

QUESTION = "European cluster manager of the year"
ELECTION = "manager-2026"

T = TypeVar("T")


def png(width: int = 4, height: int = 4) -> bytes:
    """A small blue PNG picture."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        checksum = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", checksum)

    rows = b"".join(b"\x00" + bytes((52, 81, 209)) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class Pictures:
    """A local server of candidates' pictures (never the internet), keeping the requests'
    ``Referer`` headers."""

    def __init__(self) -> None:
        self.referers: list[str | None] = []
        pictures = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                pictures.referers.append(self.headers.get("Referer"))
                body = png()
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture(scope="module")
def pictures() -> Iterator[Pictures]:
    served = Pictures()
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()
        thread.join()


def write_awards_rooms(directory: Path, pictures: Pictures) -> Path:
    """A rooms file declaring the election (three candidates, two with profiles, one of them
    with markup in its description) and two partnerships."""
    path = directory / "awards.toml"
    path.write_text(
        f"""
[[polls]]
id = "{ELECTION}"
question = "{QUESTION}"
show = "closed"
allow_change = false
guests = false

[[polls.options]]
text = "Maria Rossi"
organisation = "Lombardy Energy Cluster"
country = "IT"
description = "Twelve years at the head of the cluster.\\nBuilt its hydrogen valley."
image = "{pictures.url}/maria.png"

[[polls.options]]
text = "Jan Novák"
organisation = "Moravian Mobility Cluster"
country = "CZ"
description = "Runs <b>Brno</b>'s mobility cluster."

[[polls.options]]
text = "Aino Virtanen"

[[partnerships]]
title = "Hydrogen valleys"
members = ["Lombardy Energy Cluster", "North Sea Hydrogen"]
text = "Two clusters, one corridor.\\nSince 2024."
link = "https://example.org/h2"

[[partnerships]]
title = "Smart textiles alliance"
members = ["Flanders Textile Cluster", "Catalan Fashion Cluster", "Saxony Materials"]
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def awards_hub(pictures: Pictures, tmp_path: Path) -> Iterator[HubProcess]:
    """A memory-mode hub of the test's own: a declared poll opens once."""
    process = HubProcess(args=["--rooms", str(write_awards_rooms(tmp_path, pictures))])
    try:
        yield process.start()
    finally:
        process.stop()


def run(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine of the Python client: Playwright's sync API runs a loop in this thread,
    so the client gets a thread of its own."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result(timeout=3 * WAIT_MS / 1000)


async def in_lobby(hub: HubProcess, token: str, op: str, **fields: Any) -> dict[str, Any]:
    """Join the lobby of ``hub`` with ``token`` and send one command there; its reply."""
    from livehub_client import HubClient

    async with HubClient(hub.url, token=token) as client:
        await client.join("main")
        return await client.request(op, room="main", **fields)


async def refused(hub: HubProcess, token: str, op: str, **fields: Any) -> str:
    """The error code of a command the hub refuses (AssertionError when it accepts it)."""
    from livehub_client import HubRequestError

    try:
        reply = await in_lobby(hub, token, op, **fields)
    except HubRequestError as error:
        return error.code
    raise AssertionError(f"{op} was accepted: {reply}")


def awards_of(person: Person) -> Any:
    return person.page.get_by_role("region", name="Awards")


def results_of(person: Person) -> Any:
    return person.page.get_by_role("region", name=re.compile(f"^Results: {QUESTION}"))


def test_the_awards_show_the_candidates_and_partnerships_and_take_one_vote_each(
    awards_hub: HubProcess, pictures: Pictures, people: People
) -> None:
    vera = people.open(awards_hub, user=unique("vera"), name="Vera")
    awards = awards_of(vera)
    expect(awards).to_contain_text("Voting opens soon", timeout=WAIT_MS)
    candidates = awards.get_by_role("list", name="Candidates")
    maria = candidates.get_by_role("listitem").filter(has_text="Maria Rossi")
    expect(maria).to_contain_text("Lombardy Energy Cluster · Italy")
    expect(maria).to_contain_text("Twelve years at the head of the cluster.")
    jan = candidates.get_by_role("listitem").filter(has_text="Jan Novák")
    expect(jan).to_contain_text("Moravian Mobility Cluster · Czechia")
    expect(jan).to_contain_text("Runs <b>Brno</b>'s mobility cluster.")  # text, not markup
    expect(jan.locator("b")).to_have_count(0)
    expect(candidates.get_by_role("listitem").filter(has_text="Aino Virtanen")).to_be_visible()
    # The picture: from its http address, at a fixed size, lazily, without a referrer.
    picture = maria.get_by_role("img", name="Maria Rossi")
    for attribute, value in (("width", "56"), ("height", "56"), ("loading", "lazy")):
        expect(picture).to_have_attribute(attribute, value)
    expect(picture).to_have_attribute("referrerpolicy", "no-referrer")
    picture.scroll_into_view_if_needed()
    vera.page.wait_for_function(
        "image => image.complete && image.naturalWidth > 0",
        arg=picture.element_handle(),
        timeout=WAIT_MS,
    )
    assert pictures.referers and set(pictures.referers) == {None}
    # Only http(s) addresses are ever shown (the hub accepts no others; the page checks again).
    shown = vera.page.evaluate(
        """async (addresses) => {
            const { webAddress } = await import("/static/app/profiles.js");
            return addresses.map(webAddress);
        }""",
        ["javascript:alert(1)", "data:image/png;base64,AA", "/me.png", "https://example.org/a"],
    )
    assert shown == [None, None, None, "https://example.org/a"]
    # The partnerships of the year.
    expect(awards.get_by_role("heading", name="Partnerships of the year")).to_be_visible()
    hydrogen = awards.get_by_role("listitem").filter(
        has=vera.page.get_by_role("heading", name="Hydrogen valleys")
    )
    members = hydrogen.get_by_role("list", name="Members of Hydrogen valleys")
    expect(members.get_by_role("listitem")).to_have_text(
        ["Lombardy Energy Cluster", "North Sea Hydrogen"]
    )
    expect(hydrogen).to_contain_text("Two clusters, one corridor.")
    link = hydrogen.get_by_role("link", name="Website: example.org")
    expect(link).to_have_attribute("href", "https://example.org/h2")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(
        awards.get_by_role("list", name="Members of Smart textiles alliance").get_by_role(
            "listitem"
        )
    ).to_have_count(3)
    # Only organizers open the vote.
    expect(awards.get_by_role("button", name=re.compile("^Open the vote"))).to_have_count(0)

    olga = people.open(awards_hub, role="organizer", name="Olga")
    awards_of(olga).get_by_role("button", name=re.compile("^Open the vote")).click()
    expect(awards).to_contain_text("Voting is open", timeout=WAIT_MS)
    ballot = poll_group(vera, QUESTION)
    expect(awards.get_by_role("group", name=QUESTION)).to_be_visible()  # there, and only there
    expect(ballot).to_contain_text("One person, one vote")
    expect(ballot.get_by_role("radio", name="Maria Rossi")).to_have_accessible_description(
        re.compile("Lombardy Energy Cluster · Italy")
    )
    ballot.get_by_role("radio", name="Jan Novák").check()
    ballot.get_by_role("button", name="Vote", exact=True).click()
    expect(ballot).to_contain_text("Your vote is in. It cannot be changed.", timeout=WAIT_MS)
    expect(ballot.get_by_role("button", name="Vote", exact=True)).to_be_disabled()
    expect(ballot.get_by_role("radio", name="Maria Rossi")).to_be_disabled()
    # A second vote forced past the page, from another connection of hers, is refused.
    token = mint(vera.user, name="Vera")
    assert run(lambda: refused(awards_hub, token, "poll.vote", poll=ELECTION, choice=0)) == (
        "conflict"
    )
    # The organizer cannot open it twice either.
    organizer = mint(unique("org"), "organizer")
    assert run(lambda: refused(awards_hub, organizer, "poll.open", poll=ELECTION)) == "conflict"


def test_a_poll_with_hidden_results_closes_with_the_vote_is_closed(
    awards_hub: HubProcess, people: People
) -> None:
    vera = people.open(awards_hub, name="Vera")
    question = f"Which city next year {unique('q')}?"
    organizer = mint(unique("org"), "organizer")
    poll = run(
        lambda: in_lobby(
            awards_hub,
            organizer,
            "poll.create",
            question=question,
            options=["Lyon", "Graz"],
            show="never",
        )
    )["poll"]
    expect(poll_group(vera, question)).to_be_visible(timeout=WAIT_MS)
    run(lambda: in_lobby(awards_hub, organizer, "poll.close", poll=poll["id"]))
    panel = vera.page.get_by_role("region", name=f"Results: {question}")
    expect(panel).to_contain_text("The vote is closed.", timeout=WAIT_MS)
    expect(panel).not_to_contain_text("Winner")
    expect(panel.locator("progress")).to_have_count(0)


@pytest.fixture
def two_nodes(
    redis_server: RedisServer, pictures: Pictures, tmp_path: Path
) -> Iterator[tuple[HubProcess, HubProcess]]:
    """Two hub processes sharing the run's private Redis (flushed), with the awards."""
    redis_server.start()
    redis_server.flush()
    rooms = write_awards_rooms(tmp_path, pictures)
    nodes = [HubProcess(redis_url=redis_server.url, args=["--rooms", str(rooms)]) for _ in range(2)]
    try:
        for node in nodes:
            node.start()
        yield nodes[0], nodes[1]
    finally:
        for node in nodes:
            node.stop()


def test_the_results_reach_two_browsers_on_two_nodes_at_once(
    two_nodes: tuple[HubProcess, HubProcess], people: People
) -> None:
    first, second = two_nodes
    ada = people.open(first, name="Ada")
    bob = people.open(second, name="Bob")
    olga = people.open(second, role="organizer", name="Olga")
    awards_of(olga).get_by_role("button", name=re.compile("^Open the vote")).click()
    for person, choice in ((ada, "Maria Rossi"), (bob, "Jan Novák")):
        ballot = poll_group(person, QUESTION)
        ballot.get_by_role("radio", name=choice).check()
        ballot.get_by_role("button", name="Vote", exact=True).click()
        expect(ballot).to_contain_text("Your vote is in", timeout=WAIT_MS)
    run(
        lambda: in_lobby(
            first, mint(unique("cleo"), name="Cleo"), "poll.vote", poll=ELECTION, choice=0
        )
    )
    # Bob is typing when the result comes: it takes nothing from him.
    search = bob.page.get_by_role("searchbox", name="Name or organisation")
    search.fill("Lomb")
    search.focus()

    closed = run(
        lambda: in_lobby(first, mint(unique("org"), "organizer"), "poll.close", poll=ELECTION)
    )
    assert closed["poll"]["state"] == "closed"
    for person in (ada, bob):
        panel = results_of(person)
        expect(panel).to_be_visible(timeout=WAIT_MS)
        expect(panel).to_have_class(re.compile(r"\bmoment\b"))
        winners = panel.get_by_role("list").first
        expect(panel).to_contain_text("Winner")
        expect(winners).to_contain_text("Maria Rossi")
        expect(winners).to_contain_text("Lombardy Energy Cluster · Italy")
        expect(winners).not_to_contain_text("Jan Novák")
        expect(panel).to_contain_text("2 votes · 66.7%")
        expect(panel).to_contain_text("1 vote · 33.3%")
        expect(panel).to_contain_text("3 people voted")
        expect(person.page.locator("#announcer")).to_have_text(
            f"The vote “{QUESTION}” is closed: Maria Rossi won."
        )
    expect(search).to_be_focused()
    expect(search).to_have_value("Lomb")
    # The Awards section shows the result too.
    expect(awards_of(ada)).to_contain_text("Results")
    expect(awards_of(ada).get_by_role("article", name=QUESTION)).to_contain_text("Maria Rossi")

    # Someone who comes later sees it without the moment, and may close it for good.
    dee = people.open(second, name="Dee")
    panel = results_of(dee)
    expect(panel).to_contain_text("Maria Rossi", timeout=WAIT_MS)
    expect(panel).not_to_have_class(re.compile(r"\bmoment\b"))
    panel.get_by_role("button", name="Close the results").click()
    expect(panel).to_be_hidden()
    dee.page.reload()
    dee.expect_connected()
    expect(awards_of(dee).get_by_role("article", name=QUESTION)).to_be_visible(timeout=WAIT_MS)
    expect(results_of(dee)).to_be_hidden()
