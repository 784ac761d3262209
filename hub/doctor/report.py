"""How ``hub doctor`` shows a diagnosis: a table with a verdict per line (Rich), or JSON."""

from __future__ import annotations

from typing import Final

from rich.console import Console
from rich.table import Table
from rich.text import Text

from hub.codec import WireFormat, encode_message
from hub.doctor.diagnose import Diagnosis
from hub.doctor.verdicts import Verdict

_STYLES: Final = {
    Verdict.OK: "green",
    Verdict.WARN: "yellow",
    Verdict.FAIL: "bold red",
    Verdict.SKIP: "dim",
}


def table(diagnosis: Diagnosis) -> Table:
    """One row per finding: the check, its verdict (coloured) and the detail."""
    rows = Table(title=f"hub doctor {diagnosis.target.base}", title_justify="left")
    rows.add_column("check", no_wrap=True)
    rows.add_column("verdict", no_wrap=True)
    rows.add_column("detail", overflow="fold")
    for finding in diagnosis.findings:
        verdict = Text(finding.verdict.value, style=_STYLES[finding.verdict])
        rows.add_row(finding.check, verdict, finding.detail)
    return rows


def summary(diagnosis: Diagnosis) -> Text:
    """The closing line: the overall verdict and how many checks came out how."""
    counts = ", ".join(
        f"{sum(f.verdict is verdict for f in diagnosis.findings)} {verdict.value}"
        for verdict in (Verdict.OK, Verdict.WARN, Verdict.FAIL, Verdict.SKIP)
    )
    verdict = diagnosis.verdict
    line = Text("verdict: ")
    line.append(verdict.value.upper(), style=_STYLES[verdict])
    line.append(f" ({counts})")
    return line


def print_diagnosis(console: Console, diagnosis: Diagnosis) -> None:
    """The table and the verdict line."""
    console.print(table(diagnosis))
    console.print(summary(diagnosis))


def as_json(diagnosis: Diagnosis) -> str:
    """The diagnosis as one JSON document: ``{url, verdict, checks: [{check, verdict,
    detail}]}``."""
    encoded = encode_message(WireFormat.JSON, diagnosis.as_dict())
    assert isinstance(encoded, str)
    return encoded
