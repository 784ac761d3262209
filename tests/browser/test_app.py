"""The web app as people use it, in Chromium: several people in one browser, each in a context of
their own, on a real hub. Controls are found by role and accessible name, as a person or a screen
reader finds them (those names are part of the contract)."""

from __future__ import annotations

import csv
import io
import json
import re

from tests.browser.actions import chat_log, expect, poll_group, send_chat, start_poll
from tests.browser.conftest import WAIT_MS, People, Person, new_room, tab_to, unique
from tests.support.hub_process import HubProcess, mint


def test_two_people_chat_and_see_each_others_messages(web_hub: HubProcess, people: People) -> None:
    ada = people.open(web_hub, name="Ada")
    bob = people.open(web_hub, name="Bob")
    for person in (ada, bob):
        person.enter("Cluster workshop")
    send_chat(ada, "Hello from Ada")
    expect(chat_log(bob)).to_contain_text("Hello from Ada", timeout=WAIT_MS)
    send_chat(bob, "Hi Ada, Bob here")
    expect(chat_log(ada)).to_contain_text("Hi Ada, Bob here", timeout=WAIT_MS)
    # Each message once, with its author's name, on both sides.
    for person in (ada, bob):
        log = chat_log(person)
        expect(log.get_by_role("listitem").filter(has_text="Hello from Ada")).to_have_count(1)
        expect(log.get_by_role("listitem").filter(has_text="Hi Ada, Bob here")).to_contain_text(
            "Bob"
        )


def test_a_moderator_runs_a_poll_two_attendees_vote_and_the_csv_downloads(
    web_hub: HubProcess, people: People
) -> None:
    moderator = people.open(web_hub, role="moderator", name="Mona", accept_downloads=True)
    voters = [people.open(web_hub, name=name) for name in ("Vera", "Victor")]
    for person in (moderator, *voters):
        person.enter("Opening panel")
        person.tab("Polls")
    question = f"Best session {unique('q')}?"
    start_poll(moderator, question, ["Keynote", "Workshop", "Panel"])
    for person, choice in zip(voters, ["Keynote", "Panel"], strict=True):
        ballot = poll_group(person, question)
        expect(ballot).to_be_visible(timeout=WAIT_MS)
        ballot.get_by_role("radio", name=choice).check()
        ballot.get_by_role("button", name="Vote", exact=True).click()
        expect(ballot).to_contain_text("Your vote is in", timeout=WAIT_MS)
    # show "live": everyone sees the tally as it comes.
    for person in (moderator, *voters):
        card = person.page.get_by_role("article").filter(has=poll_group(person, question))
        expect(card).to_contain_text("2 people voted", timeout=WAIT_MS)
        expect(card).to_contain_text("1 vote · 50%")
    # The moderator downloads the results.
    card = moderator.page.get_by_role("article").filter(has=poll_group(moderator, question))
    with moderator.page.expect_download() as download_info:
        card.get_by_role("button", name="Download CSV").click()
    rows = list(csv.reader(io.StringIO(download_info.value.path().read_text(encoding="utf-8"))))
    no_profile = ["", "", "", ""]  # organisation, country, description, image
    assert rows == [
        ["option", "count", "organisation", "country", "description", "image"],
        ["Keynote", "1", *no_profile],
        ["Workshop", "0", *no_profile],
        ["Panel", "1", *no_profile],
        ["voters", "2", *no_profile],
    ]
    # Closing moves the poll to the results, for everyone.
    card.get_by_role("button", name="Close poll").click()
    for person in voters:
        closed = person.page.get_by_role("article", name=question)
        expect(closed).to_contain_text("Closed", timeout=WAIT_MS)
        expect(closed).to_contain_text("2 people voted")


def test_results_stay_hidden_until_a_show_closed_poll_closes(
    web_hub: HubProcess, people: People
) -> None:
    moderator = people.open(web_hub, role="moderator", name="Mona")
    voter = people.open(web_hub, name="Vera")
    for person in (moderator, voter):
        person.enter("Opening panel")
        person.tab("Polls")
    question = f"Secret ballot {unique('q')}?"
    start_poll(moderator, question, ["Yes", "No"], show="closed")
    ballot = poll_group(voter, question)
    ballot.get_by_role("radio", name="Yes").check()
    ballot.get_by_role("button", name="Vote", exact=True).click()
    card = voter.page.get_by_role("article").filter(has=ballot)
    expect(card).to_contain_text("Results will be shown when the vote closes", timeout=WAIT_MS)
    expect(card).not_to_contain_text("1 vote")
    # Moderators of the room always see the tally.
    moderator_card = moderator.page.get_by_role("article").filter(
        has=poll_group(moderator, question)
    )
    expect(moderator_card).to_contain_text("1 vote · 100%", timeout=WAIT_MS)
    moderator_card.get_by_role("button", name="Close poll").click()
    closed = voter.page.get_by_role("article", name=question)
    expect(closed).to_contain_text("1 vote · 100%", timeout=WAIT_MS)


def test_an_attendee_asks_another_upvotes_and_the_moderator_answers(
    web_hub: HubProcess, people: People
) -> None:
    asker = people.open(web_hub, name="Asha")
    supporter = people.open(web_hub, name="Sam")
    moderator = people.open(web_hub, role="moderator", name="Mona")
    for person in (asker, supporter, moderator):
        person.enter("Opening panel")
        person.tab("Q&A")
    text = f"Will the slides be shared? {unique('q')}"
    asker.page.get_by_role("textbox", name="Question", exact=True).fill(text)
    asker.page.get_by_role("button", name="Ask", exact=True).click()
    question = supporter.page.get_by_role("listitem").filter(has_text=text)
    question.get_by_role("button", name="Upvote").click()
    for person in (asker, supporter, moderator):
        item = person.page.get_by_role("listitem").filter(has_text=text)
        expect(item).to_contain_text("1 vote", timeout=WAIT_MS)
    expect(question.get_by_role("button", name="Upvote")).to_be_disabled()
    moderator.page.get_by_role("listitem").filter(has_text=text).get_by_role(
        "button", name="Mark answered"
    ).click()
    for person in (asker, supporter):
        item = person.page.get_by_role("listitem").filter(has_text=text)
        expect(item).to_contain_text("Answered", timeout=WAIT_MS)


XSS = (
    "<img src=x onerror=\"document.body.dataset.pwned='1'\">"
    "<script>document.body.dataset.pwned='1'</script>"
)


def test_markup_in_a_name_a_message_and_a_poll_option_stays_text(
    web_hub: HubProcess, people: People
) -> None:
    guest = people.guest(web_hub, f"Eve {XSS[:40]}")
    moderator = people.open(web_hub, role="moderator", name="Mona")
    dialogs: list[str] = []
    for person in (guest, moderator):
        person.page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        person.enter("Cluster workshop")
    send_chat(guest, f"look {XSS} javascript:alert(1) https://example.org/ok")
    log = chat_log(moderator)
    expect(log).to_contain_text("<script>", timeout=WAIT_MS)
    expect(log).to_contain_text("Eve <img src=x")
    # Only the http(s) address became a link.
    links = log.get_by_role("link")
    expect(links).to_have_count(1)
    expect(links).to_have_attribute("href", "https://example.org/ok")
    moderator.tab("Polls")
    guest.tab("Polls")
    start_poll(moderator, "Markup?", [XSS[:90], "<b>bold</b>"])
    ballot = poll_group(guest, "Markup?")
    expect(ballot.get_by_role("radio", name="<b>bold</b>")).to_be_visible(timeout=WAIT_MS)
    for person in (guest, moderator):
        page = person.page
        assert page.locator("main img, main script, main b").count() == 0
        assert page.evaluate("document.body.dataset.pwned") is None
    assert not dialogs


def test_the_lobby_lists_sessions_with_live_counts_and_the_stage(
    web_hub: HubProcess, people: People
) -> None:
    watcher = people.open(web_hub, name="Wanda")
    speaker = people.open(web_hub, role="attendee", name="Stella", user=unique("stella"))
    card = watcher.page.get_by_role("listitem").filter(
        has=watcher.page.get_by_role("link", name="Opening panel")
    )
    expect(card).to_be_visible(timeout=WAIT_MS)
    before = int(re.search(r"(\d+) (?:person|people)", card.inner_text()).group(1))  # type: ignore[union-attr]
    speaker.enter("Opening panel")
    expect(card).to_contain_text(f"{before + 1} ", timeout=WAIT_MS)
    moderator = people.open(web_hub, role="moderator", name="Mona")
    moderator.enter("Opening panel")
    moderator.tab("People")
    moderator.page.get_by_role("button", name=re.compile("^Stella")).click()
    moderator.page.get_by_role("button", name="Invite to stage").click()
    expect(card).to_contain_text("On stage: Stella", timeout=WAIT_MS)
    # The new speaker sees their controls.
    expect(speaker.page.get_by_role("button", name="Go live")).to_be_visible(timeout=WAIT_MS)


def test_a_reload_keeps_a_guest_in_with_the_same_identity(
    web_hub: HubProcess, people: People
) -> None:
    guest = people.guest(web_hub, "Gina")
    guest.enter("Cluster workshop")
    send_chat(guest, "before reload")
    expect(chat_log(guest)).to_contain_text("before reload", timeout=WAIT_MS)
    guest.page.reload()
    guest.expect_connected()
    expect(guest.page.get_by_role("heading", level=1, name="Cluster workshop")).to_be_visible(
        timeout=WAIT_MS
    )
    # The same person: their message is still theirs (it offers them "Delete").
    mine = chat_log(guest).get_by_role("listitem").filter(has_text="before reload")
    expect(mine.get_by_role("button", name="Delete message from Gina")).to_be_visible(
        timeout=WAIT_MS
    )


def test_two_people_in_a_workshop_see_each_others_camera(
    web_hub: HubProcess, people: People
) -> None:
    _, (ada, bob) = people.in_new_room(
        web_hub, "workshop", ("Ada", "attendee"), ("Bob", "attendee")
    )
    for person in (ada, bob):
        camera = person.page.get_by_role("button", name="Camera", exact=True)
        camera.click()
        expect(camera).to_have_attribute("aria-pressed", "true", timeout=WAIT_MS)
    # Negotiation, ICE and the first decoded frames take longest on a busy machine.
    media_ms = 3 * WAIT_MS
    for viewer, other in ((ada, bob), (bob, ada)):
        tile = viewer.page.get_by_role("figure", name=re.compile(f"^{other.name}"))
        expect(tile).to_contain_text("Camera on", timeout=WAIT_MS)
        video = tile.locator("video")
        expect(video).to_be_visible(timeout=media_ms)
        handle = video.element_handle()
        viewer.page.wait_for_function("video => video.videoWidth > 0", arg=handle, timeout=media_ms)
        viewer.page.wait_for_function(
            "video => Number(video.dataset.framesDecoded || 0) > 0", arg=handle, timeout=WAIT_MS
        )
        first = int(video.get_attribute("data-frames-decoded") or "0")
        viewer.page.wait_for_function(
            "([video, first]) => Number(video.dataset.framesDecoded) > first",
            arg=[handle, first],
            timeout=WAIT_MS,
        )
    # Turning the camera off shows the avatar to the other side.
    ada.page.get_by_role("button", name="Camera", exact=True).click()
    tile = bob.page.get_by_role("figure", name=re.compile("^Ada"))
    expect(tile).to_contain_text("Camera off", timeout=WAIT_MS)
    expect(tile.locator("video")).to_be_hidden()


def test_a_breakout_round_moves_two_attendees_in_and_back(
    web_hub: HubProcess, people: People
) -> None:
    title, (moderator, *attendees) = people.in_new_room(
        web_hub, "workshop", ("Mona", "moderator"), ("Ann", "attendee"), ("Abe", "attendee")
    )
    viewer = people.open(web_hub, name="Vic")  # stays in the lobby
    expect(
        attendees[0]
        .page.get_by_text("2 people here")
        .or_(attendees[0].page.get_by_text("3 people here"))
        .first
    ).to_be_visible(timeout=WAIT_MS)
    moderator.tab("Manage")
    moderator.page.get_by_role("spinbutton", name="Number of rooms").fill("1")
    # People are moved in by default; not offered when they choose their rooms themselves.
    move = moderator.page.get_by_role("checkbox", name="Move people into their rooms")
    expect(move).to_be_checked()
    assign = moderator.page.get_by_role("combobox", name="Who goes where")
    assign.select_option("self")
    expect(move).to_be_hidden()
    assign.select_option("random")
    expect(move).to_be_visible()
    # What Ann's page sends from here on (a reload opens a new socket, the listener's).
    sent: list[str] = []
    attendees[0].page.on(
        "websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(str(payload)))
    )
    attendees[0].page.reload()
    expect(attendees[0].page.get_by_role("heading", level=1, name=title)).to_be_visible(
        timeout=WAIT_MS
    )
    moderator.page.get_by_role("button", name="Open breakouts").click()
    for person in attendees:
        expect(person.page.get_by_role("heading", level=1, name="Room 1")).to_be_visible(
            timeout=WAIT_MS
        )
        expect(person.page.get_by_text(f"Breakout room of {title}")).to_be_visible()
    # Moved in by the hub: the page showed the room from breakout.assigned, without a join.
    joins = [json.loads(line) for frame in sent for line in frame.splitlines()]
    assert not [m for m in joins if m.get("op") == "join" and ".b" in str(m.get("room"))], sent
    assert any(m.get("op") == "join" and m.get("room") == "main" for m in joins)  # it did listen
    # The lobby counts them as away in breakouts, and shows nothing of the kind elsewhere.
    cards = viewer.page.get_by_role("listitem")
    expect(cards.filter(has_text=title)).to_contain_text("2 people in breakouts", timeout=WAIT_MS)
    expect(cards.filter(has_text="Cluster workshop")).to_have_text(re.compile(r"(people|person)$"))
    # In the breakout they talk among themselves.
    send_chat(attendees[0], "in the breakout")
    expect(chat_log(attendees[1])).to_contain_text("in the breakout", timeout=WAIT_MS)
    moderator.page.get_by_role("button", name="Close breakouts").click()
    for person in attendees:
        expect(person.page.get_by_role("heading", level=1, name=title)).to_be_visible(
            timeout=WAIT_MS
        )


def test_keyboard_only_join_send_and_vote(web_hub: HubProcess, people: People) -> None:
    title, (moderator,) = people.in_new_room(web_hub, "workshop", ("Mona", "moderator"))
    moderator.tab("Polls")
    question = f"Keyboard works? {unique('q')}"
    start_poll(moderator, question, ["Yes", "No"])

    page = people.context().new_page()
    person = Person(page, "", "Kim")
    people.opened.append(person)
    page.goto(f"{web_hub.http}/")
    name = page.get_by_role("textbox", name="Your name")
    tab_to(page, name)
    page.keyboard.type("Kim")
    page.keyboard.press("Enter")
    person.expect_connected()
    link = page.get_by_role("link", name=title)
    expect(link).to_be_visible(timeout=WAIT_MS)
    tab_to(page, link)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1, name=title)).to_be_visible(timeout=WAIT_MS)
    message = page.get_by_role("textbox", name="Message", exact=True)
    tab_to(page, message)
    page.keyboard.type("typed without a mouse")
    page.keyboard.press("Enter")
    moderator.tab("Chat")
    expect(chat_log(moderator)).to_contain_text("typed without a mouse", timeout=WAIT_MS)
    # The tabs: arrow keys move between them, as in every tab list.
    chat_tab = page.get_by_role("tab", name="Chat")
    tab_to(page, chat_tab)
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Polls")).to_be_focused()
    ballot = poll_group(person, question)
    yes = ballot.get_by_role("radio", name="Yes")
    tab_to(page, yes)
    page.keyboard.press("Space")
    expect(yes).to_be_checked()
    vote = ballot.get_by_role("button", name="Vote", exact=True)
    tab_to(page, vote)
    page.keyboard.press("Enter")
    expect(ballot).to_contain_text("Your vote is in", timeout=WAIT_MS)


def test_livehub_js_works_on_its_own(web_hub: HubProcess, people: People) -> None:
    """The embedding path of docs/livehub-js.md: the module alone, no app."""
    page = people.context().new_page()
    page.goto(f"{web_hub.http}/static/livehub.js")  # same origin, no app running
    token = mint(unique("embed"), "attendee", name="Embedded")
    texts = page.evaluate(
        """async (token) => {
            const { Hub } = await import("/static/livehub.js");
            const hub = new Hub({ token });
            const seen = [];
            const got = new Promise((resolve) =>
                hub.on("chat", (m) => { seen.push(m.text); resolve(); }));
            await hub.connect();
            await hub.join("workshop-1");
            const ok = await hub.sendChat("workshop-1", "from an embedding page");
            await got;
            let error = null;
            try { await hub.request("chat.send", { room: "nowhere-x", text: "x" }); }
            catch (e) { error = e.code; }
            hub.close();
            return { seen, seq: ok.seq, error, state: hub.state };
        }""",
        token,
    )
    assert texts["seen"] == ["from an embedding page"]
    assert texts["seq"] > 0
    assert texts["error"] == "forbidden"
    assert texts["state"] == "closed"


def test_older_chat_loads_when_scrolling_up(web_hub: HubProcess, people: People) -> None:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from livehub_client import HubClient

    title = f"History {unique('w')}"
    room = new_room(web_hub, "workshop", title)

    async def post() -> None:
        # An organizer: exempt from the rate limits, so 120 messages go out at once.
        async with HubClient(web_hub.url, token=mint(unique("org"), "organizer")) as client:
            await client.join(room)
            for n in range(1, 121):
                await client.request("chat.send", room=room, text=f"message number {n}")

    # Playwright's sync API runs a loop in this thread: the client gets a thread of its own.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, post()).result(timeout=3 * WAIT_MS / 1000)
    reader = people.open(web_hub, name="Rita")
    reader.enter(title)
    log = chat_log(reader)
    expect(log).to_contain_text("message number 120", timeout=WAIT_MS)
    first = log.get_by_text("message number 1", exact=True)
    expect(first).to_have_count(0)
    scroller = reader.page.get_by_role("region", name="Chat, scroll up for older messages")
    beginning = reader.page.get_by_text("This is the beginning of the chat.")
    for _ in range(5):  # each scroll to the top reads one older page (50 messages)
        if first.count():
            break
        count = log.get_by_role("listitem").count()
        scroller.evaluate("element => { element.scrollTop = 0; }")
        reader.page.wait_for_function(
            "n => document.querySelectorAll('[role=log] > li').length > n",
            arg=count,
            timeout=WAIT_MS,
        )
    expect(first).to_have_count(1)
    expect(beginning).to_be_visible(timeout=WAIT_MS)
