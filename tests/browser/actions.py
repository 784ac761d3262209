"""What people do on the web app's pages, as steps the browser tests share: controls found by
role and accessible name, as a person or a screen reader finds them."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import Person


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def chat_log(person: Person) -> Any:
    return person.page.get_by_role("log", name="Chat messages")


def send_chat(person: Person, text: str) -> None:
    person.page.get_by_role("textbox", name="Message", exact=True).fill(text)
    person.page.get_by_role("button", name="Send", exact=True).click()


def poll_group(person: Person, question: str) -> Any:
    return person.page.get_by_role("group", name=question)


def start_poll(person: Person, question: str, options: list[str], show: str | None = None) -> None:
    page = person.page
    page.get_by_role("textbox", name="Poll question").fill(question)
    for index, option in enumerate(options, start=1):
        if index > 2:
            page.get_by_role("button", name="Add option").click()
        page.get_by_role("textbox", name=f"Option {index}", exact=True).fill(option)
    if show is not None:
        page.get_by_label("Show results").select_option(show)
    page.get_by_role("button", name="Start poll").click()
