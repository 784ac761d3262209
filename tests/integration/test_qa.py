"""Q&A on two real ``hub serve`` processes sharing one private Redis, driven over the wire.

Forty users, each with one session on each node, vote twice at once for the same question: the
count ends at exactly 40, every user's second vote gets ``conflict``, every member sees the
counts climb to a last ``qa.votes`` of 40, and a join on either node lists the question with 40
votes. Two moderators on two nodes close the question at the same time: exactly one succeeds.

Members are bare WebSockets that record every message as the hub sent it. No test sleeps to
synchronise: each waits for a reply or an event with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from hub.codec import DecodeLimits, WireFormat, decode_frame, encode_message
from tests.conftest import TIMEOUT
from tests.support.hub_process import HubProcess, mint
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.redis]

Msg = dict[str, Any]
MSGPACK = WireFormat.MSGPACK
SERVER_FRAMES = DecodeLimits(
    max_frame_bytes=16 * 2**20, max_container_items=100_000, max_messages_per_frame=100_000
)
USERS = 40


def uid(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


class Member:
    """A msgpack WebSocket recording every message it receives, read by a background task."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[Msg] = []
        self.closed = False
        self._last_id = 0
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, token: str) -> Member:
        ws = await connect(
            url, subprotocols=[Subprotocol(MSGPACK.value)], open_timeout=TIMEOUT, max_size=None
        )
        member = cls(ws)
        try:
            await member.request("hello", token=token)
        except BaseException:
            await member.close()
            raise
        return member

    async def _read(self) -> None:
        try:
            while True:
                frame = await self.ws.recv()
                self.messages.extend(decode_frame(MSGPACK, frame, SERVER_FRAMES))
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            self._changed.set()

    async def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        """Return once ``condition()`` holds, re-checked after every frame; fail after TIMEOUT."""
        try:
            async with asyncio.timeout(TIMEOUT):
                while not condition():
                    if self.closed:
                        pytest.fail(f"{what}: closed first")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            pytest.fail(f"{what} not reached in {TIMEOUT}s; last: {self.messages[-3:]!r}")

    async def call(self, op: str, **fields: Any) -> Msg:
        """Send a command; its reply (``{"re", "ok"|"err"}``)."""
        self._last_id += 1
        n = self._last_id
        await self.ws.send(encode_message(MSGPACK, {"id": n, "op": op, **fields}))
        replies: list[Msg] = []

        def replied() -> bool:
            replies.extend(m for m in self.messages if m.get("re") == n)
            return bool(replies)

        await self.wait_until(replied, f"reply to {op}")
        return replies[0]

    async def request(self, op: str, **fields: Any) -> Msg:
        """Send a command that must succeed; its ``ok``."""
        reply = await self.call(op, **fields)
        assert "ok" in reply, f"{op}: {reply}"
        ok: Msg = reply["ok"]
        return ok

    def events(self, ev: str, room: str) -> list[Msg]:
        return [m for m in self.messages if m.get("ev") == ev and m.get("room") == room]

    def votes(self, room: str, question: str) -> list[int]:
        """The counts of the ``qa.votes`` events for ``question``, in arrival order."""
        return [e["votes"] for e in self.events("qa.votes", room) if e["question"] == question]

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


# --- fixtures ------------------------------------------------------------------------------------

StartNodes = Callable[[], Awaitable[tuple[HubProcess, HubProcess]]]


@pytest.fixture
def start_nodes(redis_server: RedisServer) -> Iterator[StartNodes]:
    """``await start_nodes()``: two hub processes on the run's private Redis (``redis_server``
    of tests/conftest.py, running and flushed first), started in parallel and stopped when the
    test ends."""
    redis_server.start()  # another module's test may have stopped it
    redis_server.flush()
    started: list[HubProcess] = []

    async def start() -> tuple[HubProcess, HubProcess]:
        a, b = HubProcess(redis_url=redis_server.url), HubProcess(redis_url=redis_server.url)
        started.extend((a, b))
        await asyncio.gather(asyncio.to_thread(a.start), asyncio.to_thread(b.start))
        return a, b

    yield start
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(HubProcess.stop, started))


@pytest.fixture
async def stack() -> AsyncIterator[contextlib.AsyncExitStack]:
    """Closes the test's members (before the nodes stop)."""
    async with contextlib.AsyncExitStack() as exits:
        yield exits


async def open_member(
    stack: contextlib.AsyncExitStack, node: HubProcess, user: str, role: str = "attendee"
) -> Member:
    member = await Member.open(node.url, mint(user, role))
    stack.push_async_callback(member.close)
    return member


async def snapshot_questions(
    stack: contextlib.AsyncExitStack, node: HubProcess, room: str
) -> list[tuple[str, int, str]]:
    """``(id, votes, state)`` of the questions in the join snapshot of a new member on ``node``."""
    newcomer = await open_member(stack, node, uid("new"))
    joined = await newcomer.request("join", room=room)
    return [(q["id"], q["votes"], q["state"]) for q in joined["snapshot"]["questions"]]


# --- the test ------------------------------------------------------------------------------------


async def test_concurrent_double_votes_on_two_nodes_are_counted_exactly(
    start_nodes: StartNodes, stack: contextlib.AsyncExitStack
) -> None:
    a, b = await start_nodes()
    org = await open_member(stack, a, uid("org"), "organizer")
    room = uid("panel")
    await org.request("room.create", room=room, kind="panel", title="Panel")
    users = [uid("u") for _ in range(USERS)]
    on_a, on_b = await asyncio.gather(
        asyncio.gather(*(open_member(stack, a, user) for user in users)),
        asyncio.gather(*(open_member(stack, b, user) for user in users)),
    )
    members = [*on_a, *on_b]
    await asyncio.gather(*(m.request("join", room=room) for m in members))

    early = (await on_b[0].request("qa.ask", room=room, text="Asked first"))["question"]["id"]
    asked = await on_a[0].request("qa.ask", room=room, text="How does it scale?")
    question = asked["question"]["id"]
    for m in members:
        await m.wait_until(lambda m=m: len(m.events("qa", room)) == 2, "both questions")  # type: ignore[misc]
        assert [e["seq"] for e in m.events("qa", room)] == [1, asked["seq"]] == [1, 2]

    # Every user votes from both sessions at once: 80 votes in flight on two nodes.
    pairs = list(zip(on_a, on_b, strict=True))
    replies = await asyncio.gather(
        *(m.call("qa.vote", room=room, question=question) for pair in pairs for m in pair)
    )
    per_user = [replies[2 * i : 2 * i + 2] for i in range(USERS)]
    for pair in per_user:
        assert sorted("ok" if "ok" in r else r["err"]["code"] for r in pair) == ["conflict", "ok"]
    counts = sorted(r["ok"]["votes"] for r in replies if "ok" in r)
    assert counts == list(range(1, USERS + 1))  # each vote counted once, none lost

    # Each member sees the count climb (batched, never down) to a last qa.votes of exactly 40.
    for m in members:
        await m.wait_until(lambda m=m: USERS in m.votes(room, question), "qa.votes 40")  # type: ignore[misc]
    for m in members:
        seen = m.votes(room, question)
        assert seen == sorted(seen) and seen[-1] == USERS, seen
        assert len(seen) < USERS  # batched: fewer events than votes
        assert m.votes(room, early) == []

    expected = [(question, USERS, "open"), (early, 0, "open")]  # by votes, then ask order
    assert await snapshot_questions(stack, a, room) == expected
    assert await snapshot_questions(stack, b, room) == expected

    # Two moderators on two nodes close the question at the same time: one of them wins.
    mod_a = await open_member(stack, a, uid("mod"), "moderator")
    mod_b = await open_member(stack, b, uid("mod"), "moderator")
    closes = await asyncio.gather(
        mod_a.call("qa.answer", room=room, question=question),
        mod_b.call("qa.dismiss", room=room, question=question),
    )
    assert sorted("ok" if "ok" in r else r["err"]["code"] for r in closes) == ["closed", "ok"]
    winner = next(r["ok"] for r in closes if "ok" in r)
    closed = winner["question"]
    assert closed["state"] in ("answered", "dismissed") and closed["votes"] == USERS
    dismissed = await mod_a.request("qa.dismiss", room=room, question=early)
    assert dismissed["question"]["state"] == "dismissed"
    for m in members:
        await m.wait_until(lambda m=m: len(m.events("qa", room)) == 4, "the closing events")  # type: ignore[misc]
        assert [(e["seq"], e["question"]) for e in m.events("qa", room)[2:]] == [
            (winner["seq"], closed),
            (dismissed["seq"], dismissed["question"]),
        ]
    late = await on_b[1].call("qa.vote", room=room, question=question)
    assert late["err"]["code"] == "closed"
    assert await snapshot_questions(stack, a, room) == []
    assert await snapshot_questions(stack, b, room) == []
