"""The web page in a real Chromium (Debian's, driven by Playwright; no browser is downloaded):
a guest joins the lobby over the JSON protocol and sees what the hub sends."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.conftest import TIMEOUT
from tests.support.hub_process import HubProcess

# Debian's Chromium, which .ci/run installs; Playwright's own browser download never runs here.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def trial_hub() -> Iterator[HubProcess]:
    """A trial hub (no secret): guests may join from the page."""
    process = HubProcess(secret=None)
    try:
        yield process.start()
    finally:
        process.stop()


def test_a_guest_joins_the_lobby_from_the_page(trial_hub: HubProcess) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page()
            page.goto(trial_hub.http + "/", timeout=TIMEOUT * 1000)
            expect(page.locator("#status")).to_have_text("ready", timeout=TIMEOUT * 1000)
            page.fill("#name", "Ada <b>Lovelace</b>")
            page.click("button")
            expect(page.locator("#status")).to_have_text(
                "connected as Ada <b>Lovelace</b>", timeout=TIMEOUT * 1000
            )
            expect(page.locator("#log")).to_contain_text("joined Main hall", timeout=TIMEOUT * 1000)
            expect(page.locator("#members")).to_contain_text("1 here", timeout=TIMEOUT * 1000)
            # Text is shown as text: the name's markup was not rendered as an element.
            assert page.locator("#status b").count() == 0
        finally:
            browser.close()
