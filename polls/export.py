"""A poll's export for its room's moderators: JSON and CSV, counts only, never who voted."""

from __future__ import annotations

import csv
import io
from typing import Final

from polls.model import Poll
from polls.options import PROFILE_KEYS
from polls.wire import OptionCount, PollExport

# Spreadsheet programs run cells that start like a formula: exported texts are defused.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def export_map(poll: Poll, counts: list[int], voters: int) -> PollExport:
    """The JSON export of a poll: ``{poll, counts, voters, options: [{option, count}]}``
    (counts only, never who voted); ``poll`` carries ``profiles`` where the options have them,
    and each ``options`` entry its option's profile keys."""
    options: list[OptionCount] = []
    for index, (option, count) in enumerate(zip(poll.options, counts, strict=True)):
        entry: OptionCount = {"option": option, "count": count}
        poll.profile_of(index).add_to(entry)
        options.append(entry)
    return {
        "poll": {
            **poll.describe(),
            "opened_at": poll.opened_at,
            "closed_at": poll.closed_at,
        },
        "counts": counts,
        "voters": voters,
        "options": options,
    }


def export_csv(poll: Poll, counts: list[int], voters: int) -> str:
    """The CSV export of a poll: a header ``option,count,organisation,country,description,
    image``, one row per option in option order (a profile's cells empty where the option has
    none), and a last row ``voters,<people who voted>`` (its other cells empty). Every text
    cell that a spreadsheet would run as a formula is prefixed with ``'``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["option", "count", *PROFILE_KEYS])
    for index, (option, count) in enumerate(zip(poll.options, counts, strict=True)):
        cells = poll.profile_of(index).cells()
        writer.writerow([_defused(option), count, *(_defused(cell) for cell in cells)])
    writer.writerow(["voters", voters, *("" for _ in PROFILE_KEYS)])
    return out.getvalue()


def _defused(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_START) else text
