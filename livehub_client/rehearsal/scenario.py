"""A conference in miniature, played against a running deployment: the phases of ``hub
rehearse`` (connect, panels, election, breakouts) and the checks that end them.

Every person is a :class:`~livehub_client.HubClient` with a token the tool mints with the
deployment's secret; clients are spread over the URLs given, round robin, and talk to nothing
else. Every loop here ends by count or by a deadline; every command by the client's request
timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from hub.auth import TokenAuthority
from livehub_client.connection import HubClient, HubClosed, HubRequestError
from livehub_client.rehearsal.record import Recorder

LOBBY: Final = "main"
TOKEN_TTL: Final = 6 * 3600.0
CONNECT_TRIES: Final = 3
# How long observers may take to catch up with the last acknowledged messages (seconds).
CATCH_UP: Final = 15.0
# Known questions per panel that attendees may upvote (the newest).
QUESTIONS_KEPT: Final = 200


@dataclass(slots=True)
class Options:
    """What to rehearse: where, with how many people, for how long, at what rates."""

    urls: list[str]
    secret: str
    attendees: int = 900
    minutes: float = 5.0
    panels: int = 3
    chat_rate: float | None = None  # messages a second over the event; None: attendees / 60
    breakout_size: int = 10
    breakout_seconds: float = 60.0
    vote_window: float = 30.0
    connect_window: float = 5.0
    chaos: bool = False
    restart_cmd: str | None = None
    seed: int = 0
    run: str = field(default_factory=lambda: secrets.token_hex(3))

    @property
    def chat_per_s(self) -> float:
        """Chat messages a second over the whole event."""
        return self.chat_rate if self.chat_rate is not None else max(1.0, self.attendees / 60)

    @property
    def panels_seconds(self) -> float:
        """How long the panels phase lasts: what ``minutes`` leaves after the election and the
        breakouts (at least 5 s)."""
        rest = self.minutes * 60 - self.vote_window - self.breakout_seconds - 15
        return max(5.0, rest)


class Person:
    """One connected participant: their client, where they are, what they received."""

    def __init__(self, user: str, client: HubClient, observer: bool = False) -> None:
        self.user = user
        self.client = client
        self.observer = observer
        self.panel: str | None = None
        self.chat_ids: set[str] = set()  # observers only: chat ids seen in their panel
        # (parent, breakout room, when the assignment arrived: time.monotonic(), whether the
        # hub moved them in with it)
        self.breakouts: asyncio.Queue[tuple[str, str, float, bool]] = asyncio.Queue(16)
        self.closed_breakouts: set[str] = set()
        self.breakout_closed = asyncio.Event()  # set with each breakout.closed
        self.reader: asyncio.Task[None] | None = None
        self.busy = False  # a command of the scenario is under way (no churn then)


class Rehearsal:
    """Plays the phases in order and records them (see the module docstring)."""

    def __init__(
        self,
        options: Options,
        recorder: Recorder,
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        """``on_connected`` is called once everyone is connected, before the panels (the
        command line tunes its process's garbage collector there)."""
        self.options = options
        self.record = recorder
        self.on_connected = on_connected
        self.rng = random.Random(options.seed)
        self.authority = TokenAuthority(options.secret)
        self.started = time.monotonic()
        self.people: list[Person] = []
        self.moderators: list[Person] = []
        self.organizer: Person | None = None
        self.panels = [f"rehearsal-{options.run}-p{n + 1}" for n in range(options.panels)]
        self.acked: dict[str, set[str]] = {panel: set() for panel in self.panels}
        self.questions: dict[str, list[str]] = {panel: [] for panel in self.panels}
        self.voted_questions: set[tuple[str, str]] = set()
        self.closed_polls: dict[str, dict[str, Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._url_turn = 0
        # Set whenever a reader collected something a check waits for.
        self._news = asyncio.Event()

    # --- helpers ---------------------------------------------------------------------------------

    def now(self) -> float:
        """Seconds since the rehearsal started."""
        return time.monotonic() - self.started

    def connected(self) -> int:
        """People connected right now."""
        everyone = [*self.people, *self.moderators, *([self.organizer] if self.organizer else [])]
        return sum(person.client.connected for person in everyone)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def until(self, condition: Callable[[], bool], within: float) -> bool:
        """Whether ``condition()`` came true within ``within`` seconds, looked at again
        whenever a reader collected something."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while True:
                    self._news.clear()
                    if condition():
                        return True
                    await self._news.wait()
        return condition()

    async def _drain_tasks(self, within: float) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=within)

    async def timed(
        self,
        op: str,
        call: Callable[[], Awaitable[Any]],
        *,
        retry: bool = False,
        since: float | None = None,
    ) -> Any:
        """Run ``call`` as operation ``op``: its latency or its error is recorded; returns its
        result, or None when it failed. With ``retry`` (operations safe to repeat: a chat
        message with its key, a join), a call cut by a lost connection is made again once the
        client reconnected, as real clients do, up to :data:`CONNECT_TRIES` times; the latency
        then runs from the first try. With ``since`` (a ``time.monotonic()`` reading: what
        prompted the call arrived then) the latency runs from there."""
        start = time.monotonic() if since is None else since
        for attempt in range(CONNECT_TRIES if retry else 1):
            try:
                result = await call()
            except HubRequestError as error:
                self.record.error(op, error.code)
                return None
            except (HubClosed, TimeoutError) as error:
                if attempt + 1 < (CONNECT_TRIES if retry else 1):
                    continue  # the client waits for its new connection (request_timeout)
                self.record.error(op, "disconnected" if isinstance(error, HubClosed) else "timeout")
                return None
            self.record.ok(op, start - self.started, time.monotonic() - start)
            return result
        return None

    @staticmethod
    def _call(person: Person, op: str, fields: dict[str, Any]) -> Callable[[], Awaitable[Any]]:
        """A call of ``op`` by ``person`` (``join`` and ``leave`` through the client's own, which
        track the rooms), for :meth:`timed`."""

        async def call() -> Any:
            if op == "join":
                return await person.client.join(fields["room"])
            if op == "leave":
                return await person.client.leave(fields["room"])
            return await person.client.request(op, **fields)

        return call

    def _client(self, user: str, name: str, role: str) -> HubClient:
        url = self.options.urls[self._url_turn % len(self.options.urls)]
        self._url_turn += 1
        token = self.authority.mint(user=user, name=name, role=role, ttl=TOKEN_TTL)
        return HubClient(url, token=token, max_events=100_000)

    async def _connect(self, person: Person) -> bool:
        for attempt in range(CONNECT_TRIES):
            if await self.timed("connect", person.client.connect) is not None:
                person.reader = asyncio.ensure_future(self._read(person))
                return True
            await asyncio.sleep(self.rng.uniform(0.2, 1.0) * 2**attempt)  # reconnect back-off
        return False

    # --- what each client hears ---------------------------------------------------------------

    async def _read(self, person: Person) -> None:
        with contextlib.suppress(HubClosed):
            async for event in person.client.events():
                kind = event.get("ev")
                if kind == "chat":
                    self._delivered(person, event)
                elif kind == "breakout.assigned":
                    with contextlib.suppress(asyncio.QueueFull):
                        person.breakouts.put_nowait(
                            (event["room"], event["breakout"], time.monotonic(), "joined" in event)
                        )
                elif kind == "breakout.closed":
                    person.closed_breakouts.add(str(event.get("room")))
                    person.breakout_closed.set()
                elif kind == "qa" and person.observer:
                    question = event.get("question") or {}
                    known = self.questions.get(str(event.get("room")))
                    if known is not None and question.get("state") == "open":
                        known.append(str(question.get("id")))
                        del known[:-QUESTIONS_KEPT]
                elif kind == "poll" and (event.get("poll") or {}).get("state") == "closed":
                    self.closed_polls[event["poll"]["id"]] = event["poll"]
                    self._news.set()

    def _delivered(self, person: Person, event: dict[str, Any]) -> None:
        text = str(event.get("text", ""))
        prefix = f"rh{self.options.run} t="
        if not text.startswith(prefix):
            return
        with contextlib.suppress(ValueError):
            sent = float(text[len(prefix) :].split(" ", 1)[0])
            self.record.ok("delivery", sent - self.started, time.monotonic() - sent)
        if person.observer and event.get("room") == person.panel:
            person.chat_ids.add(str(event.get("id")))
            self._news.set()

    # --- phases --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Every phase, in order; the clients are closed at the end whatever happened."""
        try:
            await self.setup()
            await self.connect_everyone()
            if self.on_connected is not None:
                self.on_connected()
            await self.panels_phase()
            await self.election()
            await self.breakouts()
        finally:
            self.record.begin("closing", self.now())
            await self._drain_tasks(5.0)
            for task in list(self._tasks):
                task.cancel()
            everyone = [
                *self.people,
                *self.moderators,
                *([self.organizer] if self.organizer else []),
            ]
            await asyncio.gather(*(p.client.close() for p in everyone), return_exceptions=True)
            for person in everyone:
                if person.reader is not None:
                    person.reader.cancel()
            self.record.end(self.now())

    async def setup(self) -> None:
        """The organizer connects, creates the panels and joins the lobby; a moderator per panel
        joins it (they watch every message: nothing may be lost)."""
        self.record.begin("setup", self.now())
        run = self.options.run
        organizer = Person(f"rh-{run}-org", self._client(f"rh-{run}-org", "Organizer", "organizer"))
        self.organizer = organizer
        if not await self._connect(organizer):
            raise RuntimeError("the organizer could not connect: is the URL right, and the secret?")
        for n, panel in enumerate(self.panels):
            fields = {"room": panel, "kind": "panel", "title": f"Rehearsal panel {n + 1}"}
            if (
                await self.timed("room.create", self._call(organizer, "room.create", fields))
                is None
            ):
                raise RuntimeError(f"could not create {panel}")
        await self.timed("join", self._call(organizer, "join", {"room": LOBBY}))
        for n, panel in enumerate(self.panels):
            user = f"rh-{run}-mod{n + 1}"
            moderator = Person(user, self._client(user, f"Moderator {n + 1}", "moderator"), True)
            if not await self._connect(moderator):
                raise RuntimeError("a moderator could not connect")
            moderator.panel = panel
            await self.timed("join", self._call(moderator, "join", {"room": panel}))
            self.moderators.append(moderator)

    async def connect_everyone(self) -> None:
        """The storm: every attendee connects within ``connect_window`` seconds (uniformly
        spread, as reconnecting clients' jitter spreads them), says hello and joins the lobby."""
        self.record.begin("connect", self.now())
        run = self.options.run
        for n in range(self.options.attendees):
            user = f"rh-{run}-a{n + 1}"
            self.people.append(Person(user, self._client(user, f"Attendee {n + 1}", "attendee")))

        async def arrive(person: Person) -> None:
            await asyncio.sleep(self.rng.uniform(0, self.options.connect_window))
            if await self._connect(person):
                await self.timed("join", self._call(person, "join", {"room": LOBBY}), retry=True)

        await asyncio.gather(*(arrive(person) for person in self.people))

    async def panels_phase(self) -> None:
        """Everyone into a panel (a third of the audience each, with three panels), then chat,
        questions and upvotes, hands raised and lowered, people switching panels; with
        ``--chaos``, the restart command halfway. Ends with the check that every acknowledged
        message reached its panel's moderator."""
        self.record.begin("panels", self.now())

        async def enter(n: int, person: Person) -> None:
            panel = self.panels[n % len(self.panels)]
            joined = await self.timed(
                "join", self._call(person, "join", {"room": panel}), retry=True
            )
            if joined is not None:
                person.panel = panel

        await asyncio.gather(*(enter(n, person) for n, person in enumerate(self.people)))
        deadline = time.monotonic() + self.options.panels_seconds
        rate = self.options.chat_per_s
        loops = [
            self._every(rate, deadline, self._chat),
            self._every(rate / 10, deadline, self._ask),
            self._every(rate / 3, deadline, self._upvote),
            self._every(rate / 10, deadline, self._raise_hand),
            self._every(max(0.1, self.options.attendees / 120), deadline, self._switch),
        ]
        if self.options.chaos and self.options.restart_cmd:
            loops.append(self._restart_at(time.monotonic() + self.options.panels_seconds / 2))
        await asyncio.gather(*loops)
        await self._drain_tasks(15.0)
        await self._check_delivered()

    async def _every(self, per_s: float, deadline: float, action: Callable[[], None]) -> None:
        """Call ``action`` at ``per_s`` a second on average (exponential gaps) until
        ``deadline``."""
        while True:
            gap = self.rng.expovariate(per_s)
            if time.monotonic() + gap >= deadline:
                await asyncio.sleep(max(0.0, deadline - time.monotonic()))  # the phase's end
                return
            await asyncio.sleep(gap)  # the modelled arrivals
            action()

    def _someone(self) -> Person | None:
        """A connected attendee in a panel, not busy, at random (a few tries)."""
        for _ in range(10):
            person = self.rng.choice(self.people)
            if person.panel is not None and not person.busy and person.client.connected:
                return person
        return None

    def _chat(self) -> None:
        person = self._someone()
        if person is None or person.panel is None:
            return
        panel = person.panel
        text = f"rh{self.options.run} t={time.monotonic():.6f} from {person.user}"
        key = secrets.token_hex(8)

        async def send() -> None:
            fields = {"room": panel, "text": text, "key": key}
            reply = await self.timed(
                "chat.send", self._call(person, "chat.send", fields), retry=True
            )
            if reply is not None:
                self.acked[panel].add(str(reply["id"]))

        self._spawn(send())

    def _ask(self) -> None:
        person = self._someone()
        if person is None or person.panel is None:
            return
        panel = person.panel
        text = f"rh{self.options.run} question from {person.user}: what comes next?"
        self._spawn(
            self.timed("qa.ask", self._call(person, "qa.ask", {"room": panel, "text": text}))
        )

    def _upvote(self) -> None:
        person = self._someone()
        if person is None or person.panel is None or not self.questions[person.panel]:
            return
        panel = person.panel
        question = self.rng.choice(self.questions[panel])
        if (person.user, question) in self.voted_questions:
            return
        self.voted_questions.add((person.user, question))
        self._spawn(
            self.timed(
                "qa.vote", lambda: person.client.request("qa.vote", room=panel, question=question)
            )
        )

    def _raise_hand(self) -> None:
        person = self._someone()
        if person is None or person.panel is None:
            return
        panel = person.panel
        person.busy = True

        async def hand() -> None:
            try:
                raised = await self.timed(
                    "hand.raise", lambda: person.client.request("hand.raise", room=panel)
                )
                if raised is not None:
                    await asyncio.sleep(self.rng.uniform(1, 5))  # holding the hand up a while
                    await self.timed(
                        "hand.lower", lambda: person.client.request("hand.lower", room=panel)
                    )
            finally:
                person.busy = False

        self._spawn(hand())

    def _switch(self) -> None:
        person = self._someone()
        if person is None or person.panel is None or len(self.panels) < 2:
            return
        old = person.panel
        new = self.rng.choice([panel for panel in self.panels if panel != old])
        person.busy = True

        async def switch() -> None:
            try:
                person.panel = None

                async def move() -> Any:
                    await person.client.leave(old)
                    return await person.client.join(new)

                person.panel = new if await self.timed("switch", move) is not None else None
            finally:
                person.busy = False

        self._spawn(switch())

    async def _restart_at(self, when: float) -> None:
        await asyncio.sleep(max(0.0, when - time.monotonic()))
        command = self.options.restart_cmd or ""
        self.record.checks["restarted_at_s"] = round(self.now(), 1)

        async def restart() -> int:
            process = await asyncio.create_subprocess_shell(command)
            async with asyncio.timeout(120):
                return await process.wait()

        code = await self.timed("restart", restart)
        self.record.checks["restart_exit"] = code

    async def _check_delivered(self) -> None:
        """Every acknowledged message reached its panel's moderator (who stayed there
        throughout, reconnecting if their node went): ``lost`` counts those that did not."""

        def missing() -> int:
            return sum(
                len(self.acked[moderator.panel or ""] - moderator.chat_ids)
                for moderator in self.moderators
            )

        await self.until(lambda: not missing(), CATCH_UP)
        self.record.checks["acknowledged"] = sum(len(ids) for ids in self.acked.values())
        self.record.checks["lost"] = missing()
        self.record.checks["reconnects"] = sum(
            p.client.reconnects for p in [*self.people, *self.moderators]
        )

    async def election(self) -> None:
        """The award election in the lobby: every connected attendee votes once within
        ``vote_window`` seconds, then the organizer closes it; the closed tally must equal the
        votes the tool cast, option by option."""
        self.record.begin("election", self.now())
        organizer = self.organizer
        assert organizer is not None
        options = ["Ada", "Grace", "Hedy", "Katherine"]
        created = await self.timed(
            "poll.create",
            lambda: organizer.client.request(
                "poll.create",
                room=LOBBY,
                question=f"Rehearsal award {self.options.run}",
                options=options,
                show="closed",
                allow_change=False,
                guests=False,
            ),
        )
        if created is None:
            self.record.checks["election_exact"] = False
            return
        poll = created["poll"]["id"]
        cast = [0] * len(options)

        async def vote(person: Person) -> None:
            await asyncio.sleep(self.rng.uniform(0, self.options.vote_window))
            choice = self.rng.randrange(len(options))
            for attempt in range(3):
                start = time.monotonic()
                try:
                    await person.client.request("poll.vote", room=LOBBY, poll=poll, choice=choice)
                except HubRequestError as error:
                    # A retry of a vote that did count meets its own ballot: counted once.
                    if error.code == "conflict" and attempt > 0:
                        cast[choice] += 1
                        return
                    self.record.error("poll.vote", error.code)
                    return
                except (HubClosed, TimeoutError):
                    self.record.error("poll.vote", "disconnected")
                    await asyncio.sleep(self.rng.uniform(0.5, 2))  # reconnect back-off
                    continue
                self.record.ok("poll.vote", start - self.started, time.monotonic() - start)
                cast[choice] += 1
                return

        # Everyone who came votes: a client that is reconnecting sends its vote once it is back.
        await asyncio.gather(*(vote(person) for person in self.people if person.reader is not None))
        await self.timed(
            "poll.close", lambda: organizer.client.request("poll.close", room=LOBBY, poll=poll)
        )
        await self.until(lambda: poll in self.closed_polls, CATCH_UP)
        closed = self.closed_polls.get(poll, {})
        self.record.checks["votes_cast"] = sum(cast)
        self.record.checks["election_counts"] = closed.get("counts")
        self.record.checks["election_exact"] = closed.get("counts") == cast and closed.get(
            "voters"
        ) == sum(cast)

    async def breakouts(self) -> None:
        """A breakout round: each panel's moderator in turn sends its people into rooms of
        ``breakout_size`` for ``breakout_seconds``, as the web app's form does by default: the
        hub moves everyone in (``move``), and ``breakout.move``'s latency runs from the
        moderator's ``breakout.open`` to the person's ``breakout.assigned`` carrying their
        join. Someone the hub told without moving them in joins their room at once
        (``breakout.join``, timed from the event). Each leaves their room when the round ends
        (or the phase's deadline passes)."""
        self.record.begin("breakouts", self.now())
        seconds = self.options.breakout_seconds
        opening: dict[str, float] = {}  # panel -> when its moderator sent breakout.open

        async def take_part(person: Person) -> None:
            try:
                # The assignment comes while the rounds open, one after another.
                async with asyncio.timeout(seconds + 20):
                    parent, room, arrived, moved = await person.breakouts.get()
                if moved:
                    opened = opening.get(parent, arrived)
                    self.record.ok("breakout.move", opened - self.started, arrived - opened)
                else:
                    joined = await self.timed(
                        "breakout.join",
                        self._call(person, "join", {"room": room}),
                        since=arrived,
                    )
                    if joined is None:
                        return
                async with asyncio.timeout(max(0.1, arrived + seconds + 20 - time.monotonic())):
                    while room not in person.closed_breakouts:
                        person.breakout_closed.clear()
                        if room not in person.closed_breakouts:
                            await person.breakout_closed.wait()
                    # The hub took everyone out of the closed room: the client forgets it.
                    with contextlib.suppress(HubRequestError, HubClosed, TimeoutError):
                        await person.client.leave(room)
            except TimeoutError:
                return

        taking_part = [
            asyncio.ensure_future(take_part(person))
            for person in self.people
            if person.panel is not None
        ]
        try:
            for moderator in self.moderators:
                members = sum(person.panel == moderator.panel for person in self.people)
                count = max(1, math.ceil(members / self.options.breakout_size))
                fields: dict[str, Any] = {
                    "room": moderator.panel,
                    "count": count,
                    "assign": "random",
                    "duration": round(seconds),
                    "move": True,
                }
                assert moderator.panel is not None
                opening[moderator.panel] = time.monotonic()
                await self.timed("breakout.open", self._call(moderator, "breakout.open", fields))
        except BaseException:
            for task in taking_part:
                task.cancel()
            await asyncio.gather(*taking_part, return_exceptions=True)
            raise
        await asyncio.gather(*taking_part)
