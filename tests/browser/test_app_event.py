"""The web app around the sessions: direct messages, moderation, the award election in the lobby,
the stage, and a sign-in that outlives its first token."""

from __future__ import annotations

import re

from tests.browser.actions import chat_log, expect, poll_group, send_chat
from tests.browser.conftest import WAIT_MS, People, unique
from tests.support.hub_process import HubProcess, mint


def test_a_direct_message_shows_as_unread_until_it_is_read(
    web_hub: HubProcess, people: People
) -> None:
    title, (ada, bob) = people.in_new_room(
        web_hub, "workshop", ("Ada", "attendee"), ("Bob", "attendee")
    )
    ada.tab("People")
    ada.page.get_by_role("button", name=re.compile("^Bob")).click()
    ada.page.get_by_role("button", name="Send a message").click()
    expect(ada.page.get_by_role("heading", name="Conversation with Bob")).to_be_visible()
    ada.page.get_by_role("textbox", name="Direct message").fill("Coffee after the workshop?")
    ada.page.get_by_role("button", name="Send message").click()
    expect(ada.page.get_by_role("log", name="Messages in this conversation")).to_contain_text(
        "Coffee after the workshop?", timeout=WAIT_MS
    )
    # Bob is told in the account bar, and in his conversations list, until he reads it.
    account = bob.page.get_by_role("navigation", name="Account")
    expect(account.get_by_role("button", name="Messages (1 unread)")).to_be_visible(timeout=WAIT_MS)
    account.get_by_role("button", name="Messages (1 unread)").click()
    conversation = bob.page.get_by_role("button", name=re.compile("^Ada.*1 unread"))
    expect(conversation).to_be_visible()
    conversation.click()
    expect(bob.page.get_by_role("log", name="Messages in this conversation")).to_contain_text(
        "Coffee after the workshop?"
    )
    expect(account.get_by_role("button", name="Messages", exact=True)).to_be_visible()
    # A reload keeps the conversation and its read mark.
    bob.page.reload()
    bob.expect_connected()
    expect(bob.page.get_by_role("heading", level=1, name=title)).to_be_visible(timeout=WAIT_MS)
    account.get_by_role("button", name="Messages", exact=True).click()
    expect(bob.page.get_by_role("button", name=re.compile("^Ada"))).to_be_visible(timeout=WAIT_MS)
    expect(bob.page.get_by_text("1 unread")).to_have_count(0)


def test_a_moderator_announces_deletes_a_message_and_removes_someone(
    web_hub: HubProcess, people: People
) -> None:
    title, (moderator, troll) = people.in_new_room(
        web_hub, "workshop", ("Mona", "moderator"), ("Trent", "attendee")
    )
    send_chat(troll, "buy cheap watches")
    item = chat_log(moderator).get_by_role("listitem").filter(has_text="buy cheap watches")
    item.get_by_role("button", name="Delete message from Trent").click()
    expect(chat_log(troll).get_by_role("listitem").filter(has_text="cheap watches")).to_have_count(
        0, timeout=WAIT_MS
    )
    moderator.tab("Manage")
    moderator.page.get_by_role("textbox", name="Announcement").fill("Please keep it on topic.")
    moderator.page.get_by_role("button", name="Announce").click()
    expect(troll.page.get_by_role("list", name="Announcements")).to_contain_text(
        "Please keep it on topic.", timeout=WAIT_MS
    )
    moderator.tab("People")
    moderator.page.get_by_role("button", name=re.compile("^Trent")).click()
    moderator.page.get_by_role("button", name="Remove from room").click()
    expect(troll.page.get_by_role("heading", level=1, name="Lobby")).to_be_visible(timeout=WAIT_MS)
    expect(troll.page.get_by_text(f"You were removed from {title}.")).to_be_visible()


def test_the_award_election_is_one_vote_each_and_shows_its_result_when_closed(
    web_hub: HubProcess, people: People
) -> None:
    organizer = people.open(web_hub, role="organizer", name="Olga")
    voter = people.open(web_hub, name="Vera")
    question = f"Cluster manager of the year {unique('e')}"
    page = organizer.page
    page.get_by_role("textbox", name="Poll question").fill(question)
    page.get_by_role("textbox", name="Option 1", exact=True).fill("Maria Rossi")
    page.get_by_role("textbox", name="Option 2", exact=True).fill("Jan Novák")
    page.get_by_label("Show results").select_option("closed")
    page.get_by_label("Voters may change their vote").uncheck()
    page.get_by_label("Guests may vote").uncheck()
    page.get_by_role("button", name="Start poll").click()
    ballot = poll_group(voter, question)
    expect(ballot).to_contain_text("One person, one vote", timeout=WAIT_MS)
    expect(ballot).to_contain_text("Results stay hidden until the vote closes")
    ballot.get_by_role("radio", name="Jan Novák").check()
    ballot.get_by_role("button", name="Vote", exact=True).click()
    expect(ballot).to_contain_text("Your vote is in. It cannot be changed.", timeout=WAIT_MS)
    expect(ballot.get_by_role("button", name="Vote", exact=True)).to_be_disabled()
    expect(ballot.get_by_role("radio", name="Maria Rossi")).to_be_disabled()
    card = voter.page.get_by_role("article").filter(has=ballot)
    expect(card).to_contain_text("Results will be shown when the vote closes")
    organizer.page.get_by_role("article").filter(has=poll_group(organizer, question)).get_by_role(
        "button", name="Close poll"
    ).click()
    result = voter.page.get_by_role("article", name=question)
    expect(result).to_contain_text("Jan Novák", timeout=WAIT_MS)
    expect(result).to_contain_text("1 vote · 100%")
    # Someone who arrives after the close still sees the result.
    late = people.open(web_hub, name="Leo")
    expect(late.page.get_by_role("article", name=question)).to_contain_text(
        "1 person voted", timeout=WAIT_MS
    )


def test_a_speaker_goes_live_and_shares_the_screen_for_the_audience(
    web_hub: HubProcess, people: People
) -> None:
    _, (speaker, viewer) = people.in_new_room(
        web_hub, "panel", ("Sam", "speaker"), ("Vic", "attendee")
    )
    stage = viewer.page.get_by_role("region", name="Stage")
    speaker.page.get_by_role("button", name="Go live").click()
    tile = stage.get_by_role("figure", name=re.compile("^Sam"))
    expect(tile).to_contain_text("Microphone on · Camera on", timeout=WAIT_MS)
    # The speaker's camera reaches the audience through the SFU, and keeps playing.
    video = tile.locator("video")
    expect(video).to_be_visible(timeout=3 * WAIT_MS)
    handle = video.element_handle()
    viewer.page.wait_for_function("video => video.videoWidth > 0", arg=handle, timeout=3 * WAIT_MS)
    viewer.page.wait_for_function(
        "video => Number(video.dataset.framesDecoded || 0) > 0", arg=handle, timeout=WAIT_MS
    )
    share = speaker.page.get_by_role("button", name="Share screen")
    share.click()
    expect(share).to_have_attribute("aria-pressed", "true", timeout=WAIT_MS)
    expect(tile).to_contain_text("Sharing screen", timeout=WAIT_MS)
    speaker.page.get_by_role("button", name="Leave stage").click()
    expect(stage.get_by_role("figure")).to_have_count(0, timeout=WAIT_MS)
    expect(speaker.page.get_by_role("button", name="Raise hand")).to_be_visible(timeout=WAIT_MS)


def test_a_sign_in_outlives_its_first_token(web_hub: HubProcess, people: People) -> None:
    """The token is renewed (token.renew, then refresh) before it expires, and kept for reloads."""
    user = unique("short")
    first = mint(user, "attendee", name="Tess", ttl=4)
    context = people.context()
    page = context.new_page()
    page.goto(f"{web_hub.http}/#token={first}")
    expect(page.get_by_role("status")).to_have_text("Connected", timeout=WAIT_MS)
    page.wait_for_function(
        "first => sessionStorage.getItem('livehub.token') !== first", arg=first, timeout=WAIT_MS
    )
    # Past the first token's expiry, the session is still open and works.
    page.wait_for_function(
        "exp => Date.now() / 1000 > exp + 1", arg=float(first_exp(first)), timeout=WAIT_MS
    )
    expect(page.get_by_role("status")).to_have_text("Connected")
    page.get_by_role("link", name="Cluster workshop").click()
    page.get_by_role("textbox", name="Message", exact=True).fill("still here")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.get_by_role("log", name="Chat messages")).to_contain_text(
        "still here", timeout=WAIT_MS
    )
    page.reload()
    expect(page.get_by_role("status")).to_have_text("Connected", timeout=WAIT_MS)


def first_exp(token: str) -> int:
    import jwt

    exp: int = jwt.decode(token, options={"verify_signature": False})["exp"]
    return exp
