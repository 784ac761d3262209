"""What a rehearsal measures: per operation, how many, which errors, and how long they took.

Everything here is pure (times come in as arguments), so the figures and the verdict are tested
without sockets. Latency samples are bounded per operation (a seeded reservoir): counts and
errors stay exact, percentiles are read from at most :data:`MAX_SAMPLES` samples.
"""

from __future__ import annotations

import math
import random
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

MAX_SAMPLES: Final = 100_000
# The verdict's latency bound: every operation's p99 (seconds).
P99_TARGET: Final = 0.250


def percentile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of an ascending list, nearest rank; 0.0 when empty."""
    if not ordered:
        return 0.0
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered))))
    return ordered[rank - 1]


@dataclass(slots=True)
class OpStats:
    """One operation's figures: successes, errors by code, latency samples: ``latencies[i]``
    seconds, taken ``times[i]`` seconds after the rehearsal started.

    The samples are flat arrays of floats rather than a list of pairs: a hundred thousand
    tuples would be walked by every full collection of the load generator's garbage collector,
    a pause that lands in the latencies it measures."""

    count: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    times: array[float] = field(default_factory=lambda: array("d"))
    latencies: array[float] = field(default_factory=lambda: array("d"))
    seen: int = 0  # latencies offered to the reservoir

    def summary(self, elapsed: float) -> dict[str, Any]:
        """``{count, errors, p50_ms, p95_ms, p99_ms, max_ms, per_s}``."""
        ordered = sorted(self.latencies)
        return {
            "count": self.count,
            "errors": dict(sorted(self.errors.items())),
            "p50_ms": round(percentile(ordered, 0.50) * 1000, 1),
            "p95_ms": round(percentile(ordered, 0.95) * 1000, 1),
            "p99_ms": round(percentile(ordered, 0.99) * 1000, 1),
            "max_ms": round((ordered[-1] if ordered else 0.0) * 1000, 1),
            "per_s": round(self.count / elapsed, 1) if elapsed > 0 else 0.0,
        }


class Recorder:
    """The rehearsal's figures: operations, the phases' spans and the checks' findings."""

    def __init__(self, seed: int = 0) -> None:
        self.ops: dict[str, OpStats] = {}
        self.phases: list[tuple[str, float, float | None]] = []
        self.checks: dict[str, Any] = {}
        self._rng = random.Random(seed)

    def ok(self, op: str, at: float, latency: float) -> None:
        """An operation that succeeded at ``at`` after ``latency`` seconds."""
        stats = self.ops.setdefault(op, OpStats())
        stats.count += 1
        stats.seen += 1
        if len(stats.latencies) < MAX_SAMPLES:
            stats.times.append(at)
            stats.latencies.append(latency)
        else:  # reservoir sampling: every latency has the same chance to be kept
            slot = self._rng.randrange(stats.seen)
            if slot < MAX_SAMPLES:
                stats.times[slot] = at
                stats.latencies[slot] = latency

    def error(self, op: str, code: str) -> None:
        """An operation that failed with ``code`` (a contract error code, ``timeout`` or
        ``disconnected``)."""
        self.ops.setdefault(op, OpStats()).errors[code] += 1

    def begin(self, phase: str, at: float) -> None:
        """A phase starts (the previous one, if open, ends)."""
        self.end(at)
        self.phases.append((phase, at, None))

    def end(self, at: float) -> None:
        """The open phase, if any, ends."""
        if self.phases and self.phases[-1][2] is None:
            name, start, _ = self.phases[-1]
            self.phases[-1] = (name, start, at)

    @property
    def phase(self) -> str:
        """The phase running now (or the last one)."""
        return self.phases[-1][0] if self.phases else "starting"

    def error_count(self) -> int:
        """Errors over every operation."""
        return sum(sum(stats.errors.values()) for stats in self.ops.values())

    def done_count(self) -> int:
        """Successes over every operation."""
        return sum(stats.count for stats in self.ops.values())

    def summary(self, elapsed: float) -> dict[str, Any]:
        """Every figure, as the JSON report holds them: ``{elapsed_s, phases, ops, checks,
        verdict}``."""
        ops = {op: stats.summary(elapsed) for op, stats in sorted(self.ops.items())}
        return {
            "elapsed_s": round(elapsed, 1),
            "phases": [
                {"phase": name, "start_s": round(start, 2), "end_s": round(end or elapsed, 2)}
                for name, start, end in self.phases
            ],
            "ops": ops,
            "checks": self.checks,
            "verdict": verdict(ops, self.checks),
        }


def verdict(ops: dict[str, dict[str, Any]], checks: dict[str, Any]) -> dict[str, Any]:
    """Whether the rehearsal passed, and why not: no errors, nothing lost or doubled, the
    election exact, every operation's p99 under :data:`P99_TARGET`."""
    reasons = []
    errors = sum(sum(op["errors"].values()) for op in ops.values())
    if errors:
        reasons.append(f"{errors} errors")
    for name in ("lost", "doubled"):
        if checks.get(name):
            reasons.append(f"{checks[name]} messages {name}")
    if checks.get("election_exact") is False:
        reasons.append("the election's tally differs from the votes cast")
    slow = [name for name, op in ops.items() if op["p99_ms"] > P99_TARGET * 1000]
    if slow:
        reasons.append(f"p99 over {P99_TARGET * 1000:.0f} ms: {', '.join(slow)}")
    return {"pass": not reasons, "reasons": reasons}
