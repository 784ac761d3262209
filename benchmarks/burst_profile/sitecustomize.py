"""Counts the Python work of the two join bursts inside each ``hub serve`` node.

Put this directory on ``PYTHONPATH`` and set ``HUB_BURST_PROFILE`` to a directory: every
``hub serve`` started from then on (``benchmarks/joins.py`` starts them) runs ``cProfile``, timed
by the thread's CPU time, from the panel storm's first ``join`` of a panel to 50 ms after its
450th reply, and from a breakout round's first ``breakout.assigned`` signal to 50 ms after the
80th room's move ended (other counts: ``HUB_BURST_PANEL_JOINS``, ``HUB_BURST_MOVE_ROOMS``). It
writes ``panel-PID-PEOPLE.prof`` and ``move-PID-PEOPLE.prof`` there, which
``benchmarks/burst_calls.py`` sums. Python loads this module at start-up (``site``); it does
nothing in any other process.
"""

from __future__ import annotations

import asyncio
import cProfile
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

# A node's half of benchmarks/joins.py's 900 attendees, and 80 of the about 90 rooms a node
# moves people into (HUB_BURST_PANEL_JOINS and HUB_BURST_MOVE_ROOMS for other loads).
PANEL_JOINS = int(os.environ.get("HUB_BURST_PANEL_JOINS", "450"))
MOVE_ROOMS = int(os.environ.get("HUB_BURST_MOVE_ROOMS", "80"))


class _Windows:
    """One profiler per burst, started at the burst's first step, stopped after its last."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.running: dict[str, cProfile.Profile] = {}
        self.done: dict[str, int] = {}
        self.people = 0

    def start(self, burst: str) -> None:
        if burst not in self.running:
            profile = self.running[burst] = cProfile.Profile(time.thread_time)
            profile.enable()

    def step(self, burst: str, last: int) -> None:
        self.done[burst] = self.done.get(burst, 0) + 1
        if self.done[burst] == last:
            asyncio.get_running_loop().call_later(0.05, self._stop, burst)

    def _stop(self, burst: str) -> None:
        profile = self.running[burst]
        profile.disable()
        people = self.people if burst == "move" else PANEL_JOINS
        profile.dump_stats(os.path.join(self.out, f"{burst}-{os.getpid()}-{people}.prof"))


def _patch_rooms(module: ModuleType, windows: _Windows) -> None:
    join = module.RoomsFeature.join

    async def timed_join(self: Any, ctx: Any, cmd: dict[str, Any]) -> Any:
        room = str(cmd.get("room"))
        panel = "-p" in room and ".b" not in room
        if panel:
            windows.start("panel")
        try:
            return await join(self, ctx, cmd)
        finally:
            if panel:
                windows.step("panel", PANEL_JOINS)

    module.RoomsFeature.join = timed_join


def _patch_breakouts(module: ModuleType, windows: _Windows) -> None:
    tell = module.BreakoutFeature._tell_assigned
    move_in = module.BreakoutFeature._move_in

    async def timed_tell(self: Any, *args: Any, **kwargs: Any) -> Any:
        windows.start("move")
        return await tell(self, *args, **kwargs)

    async def timed_move_in(
        self: Any, parent: str, child: str, room: Any, sessions: Sequence[Any]
    ) -> Any:
        windows.people += len(sessions)
        try:
            return await move_in(self, parent, child, room, sessions)
        finally:
            windows.step("move", MOVE_ROOMS)

    module.BreakoutFeature._tell_assigned = timed_tell
    module.BreakoutFeature._move_in = timed_move_in


class _Patcher(importlib.abc.MetaPathFinder):
    """Patches the two modules as they are first imported."""

    def __init__(self, patches: dict[str, Callable[[ModuleType], None]]) -> None:
        self.patches = patches

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        patch = self.patches.pop(fullname, None)
        if patch is None:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            if self.patches:
                sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            patch(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _install() -> None:
    out = os.environ.get("HUB_BURST_PROFILE")
    if not out or "serve" not in sys.argv:
        return
    windows = _Windows(out)
    sys.meta_path.insert(
        0,
        _Patcher(
            {
                "rooms.feature": lambda module: _patch_rooms(module, windows),
                "rooms.breakout_ops": lambda module: _patch_breakouts(module, windows),
            }
        ),
    )


_install()
