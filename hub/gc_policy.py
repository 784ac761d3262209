"""How the garbage collector runs in a long-lived process with a large, lasting heap: a
serving node, and ``hub rehearse`` once its attendees are connected.

A storm of joins makes a node allocate hundreds of thousands of short-lived objects (frames of
commands, futures, replies) within a second. With CPython's default threshold the youngest
generation was collected every 700 net allocations, and each collection also walked the
survivors into older generations that later collections walk again: a tenth to a quarter of a
node's time in such a storm (``benchmarks/README.md``, "Join storms"). Most of those objects
die by reference counting before a collection would have seen them if it ran less often.
"""

from __future__ import annotations

import gc
from typing import Final

#: Net allocations between two collections of the youngest generation (CPython's default: 700).
YOUNG_THRESHOLD: Final = 50_000
#: Collections of a generation between two of the next (CPython's defaults).
OLDER_THRESHOLDS: Final = (10, 10)


def tune_for_serving() -> None:
    """Freeze what start-up made (modules, the app, the node: never garbage, so never walked
    by a collection again) and collect the youngest generation every :data:`YOUNG_THRESHOLD`
    net allocations; the older generations keep CPython's ratios, so reference cycles among
    long-lived objects (a session that ended) are still collected, only less often. Call
    once, when what lasts is built (a node before it serves, a load generator once connected)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
