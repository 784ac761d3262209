"""Python calls and CPU per person in the two join bursts, from the profiles that
``benchmarks/burst_profile`` writes (see its module docstring).

    mkdir -p /tmp/bursts && rm -f /tmp/bursts/*.prof
    HUB_BURST_PROFILE=/tmp/bursts PYTHONPATH=benchmarks/burst_profile \\
        .venv/bin/python benchmarks/joins.py --modes redis2 --move
    .venv/bin/python benchmarks/burst_calls.py /tmp/bursts

The call counts are what to compare between two versions of the code: they stay within about
2% from run to run, where the bursts' timings on a shared VM move by a third. The CPU figure is
the profiled one (several times the real cost, as every call is timed).
"""

from __future__ import annotations

import argparse
import pathlib
import pstats


def summary(directory: pathlib.Path, burst: str) -> str:
    """One line for ``burst`` (``panel`` or ``move``): nodes, people, calls and profiled CPU
    per person."""
    files = sorted(directory.glob(f"{burst}-*.prof"))
    if not files:
        return f"{burst}: no profiles in {directory}"
    people = sum(int(f.stem.rsplit("-", 1)[1]) for f in files)
    stats = pstats.Stats(*map(str, files))
    calls = sum(entry[1] for entry in stats.stats.values())  # type: ignore[attr-defined]
    cpu = stats.total_tt  # type: ignore[attr-defined]
    return (
        f"{burst}: {len(files)} nodes, {people} people, {calls / people:.0f} calls a person, "
        f"{cpu * 1000 / people:.3f} ms profiled CPU a person"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=pathlib.Path)
    args = parser.parse_args()
    for burst in ("panel", "move"):
        print(summary(args.directory, burst))


if __name__ == "__main__":
    main()
