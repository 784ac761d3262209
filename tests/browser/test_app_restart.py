"""The web app through a restart of its hub: two nodes share a Redis; one person's node is
stopped and started again while another person, on the other node, keeps talking."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.actions import chat_log, expect, send_chat
from tests.browser.conftest import WAIT_MS, People, write_rooms
from tests.support.hub_process import HubProcess
from tests.support.redis_server import RedisServer

# The reconnect back-off grows while the node is down (up to 15 s between tries).
RECONNECT_MS = 3 * WAIT_MS
# A draining node tells clients to come back within this many seconds.
FAST_DRAIN = {"HUB_DRAIN_RECONNECT_MAX": "0.5"}


@pytest.fixture
def two_nodes(
    redis_server: RedisServer, tmp_path: Path
) -> Iterator[tuple[HubProcess, HubProcess, Path]]:
    redis_server.start()
    redis_server.flush()
    rooms = write_rooms(tmp_path)
    nodes = [
        HubProcess(redis_url=redis_server.url, args=["--rooms", str(rooms)], env=FAST_DRAIN)
        for _ in range(2)
    ]
    try:
        for node in nodes:
            node.start()
        yield nodes[0], nodes[1], rooms
    finally:
        for node in nodes:
            node.stop()


def test_after_a_hub_restart_the_missed_messages_appear_and_the_unsent_one_arrives_once(
    two_nodes: tuple[HubProcess, HubProcess, Path], redis_server: RedisServer, people: People
) -> None:
    first, second, rooms = two_nodes
    xavier = people.open(first, name="Xavier")
    yvonne = people.open(second, name="Yvonne")
    for person in (xavier, yvonne):
        person.enter("Cluster workshop")
    send_chat(yvonne, "before the restart")
    expect(chat_log(xavier)).to_contain_text("before the restart", timeout=WAIT_MS)

    assert first.terminate() == 0  # drains: shutdown, then close 1012
    expect(xavier.page.get_by_role("status")).to_have_text("Reconnecting…", timeout=WAIT_MS)
    send_chat(yvonne, "while you were away, 1")
    send_chat(yvonne, "while you were away, 2")
    send_chat(xavier, "typed while offline")
    expect(xavier.page.get_by_text("Waiting for the connection…")).to_be_visible(timeout=WAIT_MS)

    restarted = HubProcess(
        redis_url=redis_server.url, port=first.port, args=["--rooms", str(rooms)], env=FAST_DRAIN
    )
    try:
        restarted.start()
        xavier.expect_connected_within(RECONNECT_MS)
        log = chat_log(xavier)
        expect(log).to_contain_text("while you were away, 2", timeout=WAIT_MS)
        for person in (xavier, yvonne):
            items = chat_log(person).get_by_role("listitem")
            for text in ("while you were away, 1", "while you were away, 2", "before the restart"):
                expect(items.filter(has_text=text)).to_have_count(1, timeout=WAIT_MS)
            expect(items.filter(has_text="typed while offline")).to_have_count(1, timeout=WAIT_MS)
        expect(xavier.page.get_by_text("Waiting for the connection…")).to_have_count(0)
    finally:
        restarted.stop()
