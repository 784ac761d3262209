"""A poll's export for its room's moderators: JSON and CSV, counts only, never who voted."""

from __future__ import annotations

import csv
import io
from typing import Final

from polls.model import Poll
from polls.wire import PollExport

# Spreadsheet programs run cells that start like a formula: exported option text is defused.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def export_map(poll: Poll, counts: list[int], voters: int) -> PollExport:
    """The JSON export of a poll: ``{poll, counts, voters, options: [{option, count}]}``
    (counts only, never who voted)."""
    return {
        "poll": {
            **poll.describe(),
            "opened_at": poll.opened_at,
            "closed_at": poll.closed_at,
        },
        "counts": counts,
        "voters": voters,
        "options": [
            {"option": option, "count": count}
            for option, count in zip(poll.options, counts, strict=True)
        ],
    }


def export_csv(poll: Poll, counts: list[int], voters: int) -> str:
    """The CSV export of a poll: a header ``option,count``, one row per option in option order,
    and a last row ``voters,<people who voted>``. Option text that a spreadsheet would run as a
    formula is prefixed with ``'``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["option", "count"])
    for option, count in zip(poll.options, counts, strict=True):
        writer.writerow([_defused(option), count])
    writer.writerow(["voters", voters])
    return out.getvalue()


def _defused(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_START) else text
