"""The web app in several languages, in Chromium: French and German from the browser's
language, a token's language, a pick in the top bar that redraws the page mid-session without
leaving the room and is remembered, English for what a catalogue lacks, errors and the hub's own
texts from the catalogue, people's words in their own direction; and every catalogue the hub
lists checked against English."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser.actions import chat_log, expect, send_chat
from tests.browser.conftest import TIMEOUT, WAIT_MS, People, Person, new_room, tab_to, unique
from tests.support.hub_process import HubProcess, mint


def catalogue(page: Any, language: str) -> dict[str, Any]:
    """The texts the app shows in ``language``: its catalogue as the page loads it, over
    English for what it lacks (the test of every catalogue names those)."""
    texts: dict[str, Any] = page.evaluate(
        """async (code) => {
            const load = async (each) => (await import(`/static/app/text-${each}.js`)).catalogue;
            return { ...(await load("en")), ...(await load(code)) };
        }""",
        language,
    )
    return texts


def text_in_page(page: Any, key: str, params: dict[str, Any] | None = None) -> str:
    """``t(key, params)`` as the app's own strings module answers it now."""
    text: str = page.evaluate(
        "async ([key, params]) => (await import('/static/app/strings.js')).t(key, params)",
        [key, params or {}],
    )
    return text


def open_page(people: People, hub: HubProcess, token: str | None, **options: Any) -> Person:
    """A person's page on ``hub`` (signed in with ``token``, or at the sign-in page without),
    once the app has drawn it."""
    page = people.context(**options).new_page()
    person = Person(page, "", "")
    people.opened.append(person)
    page.goto(f"{hub.http}/#token={token}" if token else f"{hub.http}/")
    expect(page.locator("#status")).not_to_have_attribute("data-state", "idle", timeout=WAIT_MS)
    return person


def expect_connected_in(person: Person, texts: dict[str, Any]) -> None:
    expect(person.page.get_by_role("status")).to_have_text(
        texts["status.connected"], timeout=WAIT_MS
    )


@pytest.mark.parametrize(
    ("locale", "language"), [("fr-FR", "fr"), ("de-AT", "de")], ids=["french", "german"]
)
def test_the_app_speaks_the_browsers_language(
    web_hub: HubProcess, people: People, locale: str, language: str
) -> None:
    title = f"Room {unique('r')}"
    new_room(web_hub, "workshop", title)  # nobody in it: "0 people" in the lobby's list
    ada = open_page(people, web_hub, mint(unique("ada"), name="Ada"), locale=locale)
    page = ada.page
    texts = catalogue(page, language)
    expect_connected_in(ada, texts)
    expect(page.locator("html")).to_have_attribute("lang", language)
    expect(page.get_by_role("heading", level=1, name=texts["lobby.title"])).to_be_visible()
    expect(page.get_by_role("heading", level=2, name=texts["lobby.sessions"])).to_be_visible()
    expect(page.get_by_role("link", name=texts["page.skip"])).to_be_attached()
    switch = page.get_by_role("combobox", name=texts["language.label"])
    expect(switch).to_have_value(language)
    expect(switch.locator("option:checked")).to_have_text(
        {"fr": "Français", "de": "Deutsch"}[language]
    )
    # The plural of 0 is the language's: one in French, other in German.
    members = texts["lobby.members"]
    zero = (members["one"] if language == "fr" else members["other"]).replace("{count}", "0")
    card = page.get_by_role("listitem").filter(has=page.get_by_role("link", name=title))
    expect(card).to_contain_text(zero, timeout=WAIT_MS)
    # Numbers as the language writes them.
    thousands = {"fr": "1\u202f234", "de": "1.234"}[language]
    assert text_in_page(page, "lobby.members", {"count": 1234}) == members["other"].replace(
        "{count}", thousands
    )
    # A message's time of day is the language's (24-hour), not en-US's "02:05 PM".
    ada.enter(title)
    send_chat_in(ada, texts, "Bonjour")
    log = page.get_by_role("log", name=texts["chat.log"])
    expect(log).to_contain_text("Bonjour", timeout=WAIT_MS)
    expect(log.locator("time").first).to_have_text(re.compile(r"^\d\d:\d\d$"))
    # An error from the hub is the catalogue's text for its code, not the hub's English.
    page.goto(f"{web_hub.http}/#/room/{unique('nowhere')}")
    expected = texts["room.joinFailed"].replace("{reason}", texts["error.not_found"])
    expect(page.locator(".toast")).to_have_text(expected, timeout=WAIT_MS)
    # A wait the hub gives as a number is said in the language; its English message is not.
    waited = page.evaluate(
        """async () => {
            const { HubError } = await import("/static/livehub.js");
            const { errorText } = await import("/static/app/session.js");
            return errorText(new HubError("rate_limited", "slow mode: wait 3 s", { retry_in: 3 }));
        }"""
    )
    assert waited == texts["error.rate_limitedFor"]["other"].replace("{count}", "3")


def send_chat_in(person: Person, texts: dict[str, Any], text: str) -> None:
    person.page.get_by_role("textbox", name=texts["chat.message"], exact=True).fill(text)
    person.page.get_by_role("button", name=texts["chat.send"], exact=True).click()


def test_switching_language_mid_session_keeps_the_person_in_their_room(
    web_hub: HubProcess, people: People
) -> None:
    title, [ada] = people.in_new_room(web_hub, "workshop", ("Ada", "attendee"))
    page = ada.page
    hellos: list[str] = []
    page.on(
        "websocket",
        lambda socket: socket.on(
            "framesent", lambda frame: '"op":"hello"' in str(frame) and hellos.append(frame)
        ),
    )
    states: list[str] = []
    page.expose_function("reportStatus", lambda state: states.append(state))
    page.evaluate(
        """() => new MutationObserver(() => reportStatus(
            document.getElementById("status").dataset.state))
            .observe(document.getElementById("status"), { attributes: true })"""
    )
    send_chat(ada, "before the switch")
    expect(chat_log(ada)).to_contain_text("before the switch", timeout=WAIT_MS)
    page.get_by_role("textbox", name="Message", exact=True).fill("half-typed")
    ada.tab("Q&A")
    french = catalogue(page, "fr")

    page.get_by_role("combobox", name="Language").select_option("fr")
    expect(page.locator("html")).to_have_attribute("lang", "fr", timeout=WAIT_MS)
    expect(page.get_by_role("heading", level=1, name=title)).to_be_visible()
    # The tab on screen stays on screen.
    expect(page.get_by_role("tab", name=french["tab.qa"])).to_have_attribute(
        "aria-selected", "true"
    )
    expect(page.get_by_role("status")).to_have_text(french["status.connected"])
    ada.tab(french["tab.chat"])
    expect(page.get_by_role("button", name=french["account.signOut"])).to_be_visible()
    box = page.get_by_role("textbox", name=french["chat.message"], exact=True)
    expect(box).to_have_value("half-typed")  # what was typed stays
    log = page.get_by_role("log", name=french["chat.log"])
    expect(log).to_contain_text("before the switch")
    # Still in the room on the same connection: a message goes through, no hello was said.
    send_chat_in(ada, french, "after the switch")
    expect(log).to_contain_text("after the switch", timeout=WAIT_MS)
    assert hellos == []
    assert set(states) <= {"connected"}, states
    assert page.evaluate("location.hash").startswith("#/room/")

    page.get_by_role("combobox", name=french["language.label"]).select_option("en")
    expect(page.get_by_role("status")).to_have_text("Connected", timeout=WAIT_MS)
    expect(page.get_by_role("heading", level=1, name=title)).to_be_visible()
    assert hellos == []
    # What a new connection looks like, to the listener above: a reload says hello.
    page.reload()
    ada.expect_connected()
    assert len(hellos) == 1


def test_a_tokens_language_counts_until_the_person_picks_one_which_is_remembered(
    web_hub: HubProcess, people: People
) -> None:
    bo = open_page(people, web_hub, mint(unique("bo"), name="Bo", lang="de-CH"))
    page = bo.page
    german, french = catalogue(page, "de"), catalogue(page, "fr")
    expect_connected_in(bo, german)  # the browser says en-US; the token says German
    expect(page.locator("html")).to_have_attribute("lang", "de")
    page.get_by_role("combobox", name=german["language.label"]).select_option("fr")
    expect(page.get_by_role("heading", level=1, name=french["lobby.title"])).to_be_visible(
        timeout=WAIT_MS
    )
    page.reload()
    expect_connected_in(bo, french)
    expect(page.locator("html")).to_have_attribute("lang", "fr")


def test_the_sign_in_page_speaks_the_language_and_switches_keeping_the_typed_name(
    web_hub: HubProcess, people: People
) -> None:
    guest = open_page(people, web_hub, None, locale="de-DE")
    page = guest.page
    german, french = catalogue(page, "de"), catalogue(page, "fr")
    expect(page.get_by_role("status")).to_have_text(german["status.signedOut"])
    page.get_by_role("textbox", name=german["entry.name"]).fill("Zoë")
    # With the keyboard alone: Tab to the switch, an arrow to the next language (de, en, fr).
    switch = page.get_by_role("combobox", name=german["language.label"])
    tab_to(page, switch)
    page.keyboard.press("ArrowDown")
    expect(page.locator("html")).to_have_attribute("lang", "en", timeout=WAIT_MS)
    page.get_by_role("combobox", name="Language").select_option("fr")
    expect(page.get_by_role("heading", level=1, name=french["entry.title"])).to_be_visible(
        timeout=WAIT_MS
    )
    expect(page.get_by_role("textbox", name=french["entry.name"])).to_have_value("Zoë")
    page.get_by_role("button", name=french["entry.join"]).click()
    expect_connected_in(guest, french)


def test_a_key_a_catalogue_lacks_is_shown_in_english_and_reported_once(
    web_hub: HubProcess, people: People
) -> None:
    ada = open_page(people, web_hub, mint(unique("ada"), name="Ada"))
    page = ada.page
    result = page.evaluate(
        """async () => {
            const { catalogue } = await import("/static/app/text-fr.js");
            delete catalogue["lobby.polls"];
            const warned = [];
            const warn = console.warn;
            console.warn = (...args) => warned.push(args.join(" "));
            try {
                const strings = await import("/static/app/strings.js");
                await strings.useLanguage("fr");
                const texts = [strings.t("lobby.polls"), strings.t("lobby.polls")];
                return { texts, warned, unknown: strings.t("no.such.key", {}, "fallback") };
            } finally {
                console.warn = warn;
            }
        }"""
    )
    assert result["texts"] == ["Polls and votes", "Polls and votes"]
    assert result["warned"] == [
        'livehub: the fr catalogue has no text for "lobby.polls": shown in English'
    ]
    assert result["unknown"] == "fallback"
    # The page drawn in French shows the English text for it.
    page.get_by_role("combobox", name="Language").select_option("fr")
    expect(page.get_by_role("heading", level=2, name="Polls and votes")).to_be_visible(
        timeout=WAIT_MS
    )


def test_every_catalogue_has_every_key_of_english(web_hub: HubProcess, people: People) -> None:
    languages = httpx.get(f"{web_hub.http}/api/hub", timeout=TIMEOUT).json()["languages"]
    assert {"en", "fr", "de"} <= set(languages)
    page = people.context().new_page()
    page.goto(f"{web_hub.http}/static/app/text-en.js")  # same origin, no app running
    problems = page.evaluate(
        """async (languages) => {
            const load = async (code) => (await import(`/static/app/text-${code}.js`)).catalogue;
            const english = await load("en");
            const placeholders = (text) => {
                const forms = typeof text === "object" && text ? Object.values(text) : [text];
                return [...new Set(forms.flatMap((form) =>
                    String(form).match(/\\{\\w+\\}/g) || []))].sort().join(" ");
            };
            const found = {};
            for (const code of languages) {
                const texts = await load(code);
                const needed = new Intl.PluralRules(code).resolvedOptions().pluralCategories;
                const wrong = [];
                for (const [key, source] of Object.entries(english)) {
                    if (!Object.hasOwn(texts, key)) { wrong.push(`${key}: missing`); continue; }
                    const text = texts[key];
                    if (typeof source === "object") {
                        if (typeof text !== "object" || !text) {
                            wrong.push(`${key}: needs plural forms`);
                            continue;
                        }
                        const lacking = needed.filter((form) => typeof text[form] !== "string");
                        if (lacking.length) wrong.push(`${key}: lacks the forms ${lacking}`);
                        const extra = Object.keys(text).filter((form) => !needed.includes(form));
                        if (extra.length) wrong.push(`${key}: forms ${code} has not: ${extra}`);
                    } else if (typeof text !== "string" || !text.trim()) {
                        wrong.push(`${key}: not a text`);
                        continue;
                    }
                    if (placeholders(text) !== placeholders(source)) {
                        wrong.push(`${key}: placeholders ${placeholders(text) || "none"}, ` +
                                   `English has ${placeholders(source) || "none"}`);
                    }
                }
                for (const key of Object.keys(texts)) {
                    if (!Object.hasOwn(english, key)) wrong.push(`${key}: not in English`);
                }
                found[code] = wrong;
            }
            return found;
        }""",
        languages,
    )
    assert set(problems) == set(languages)
    wrong = {code: found for code, found in problems.items() if found}
    assert not wrong, "catalogues that do not match English:\n" + json.dumps(wrong, indent=1)


def test_words_in_a_right_to_left_script_show_in_their_own_direction(
    web_hub: HubProcess, people: People
) -> None:
    _, [layla, ada] = people.in_new_room(
        web_hub, "workshop", ("ليلى", "attendee"), ("Ada", "attendee")
    )
    send_chat(layla, "مرحبا بالجميع")
    message = chat_log(ada).get_by_role("listitem").filter(has_text="مرحبا بالجميع")
    expect(message).to_be_visible(timeout=WAIT_MS)
    for part in (message.locator(".msg-text"), message.locator(".msg-name")):
        expect(part).to_have_attribute("dir", "auto")
        assert part.evaluate("node => getComputedStyle(node).direction") == "rtl"
    # English words of the app stay left to right; her name inside them is isolated.
    layla.page.get_by_role("button", name="← Lobby").click()
    welcome = layla.page.locator(".lobby-head .hint").first
    expect(welcome).to_have_text("Welcome, \u2068ليلى\u2069.", timeout=WAIT_MS)
    assert welcome.evaluate("node => getComputedStyle(node).direction") == "ltr"


@pytest.fixture
def own_hub() -> Iterator[HubProcess]:
    """A hub of this test's own: closing the event is for good."""
    process = HubProcess(args=["--guests"])
    try:
        yield process.start()
    finally:
        process.stop()


def test_the_hubs_own_closing_notice_is_shown_from_the_catalogue(
    own_hub: HubProcess, people: People
) -> None:
    ada = open_page(people, own_hub, mint(unique("ada"), name="Ada"), locale="fr-FR")
    page = ada.page
    french = catalogue(page, "fr")
    expect_connected_in(ada, french)
    # Whatever the French text is, the page must show it, not the English one the hub sent.
    ours = "Fin de l'événement (le catalogue)"
    page.evaluate(
        """async (text) => {
            (await import("/static/app/text-fr.js")).catalogue["hub.event.closed"] = text;
        }""",
        ours,
    )
    closed = httpx.post(
        f"{own_hub.http}/api/event/close",
        headers={"Authorization": f"Bearer {mint(unique('org'), 'organizer')}"},
        timeout=TIMEOUT,
    )
    assert closed.status_code == 200
    notices = page.get_by_role("list", name=french["notice.title"])
    expect(notices).to_contain_text(ours, timeout=WAIT_MS)
    expect(page.locator(".toast")).to_have_text(ours)
    expect(notices).not_to_contain_text("Thank you for taking part")
