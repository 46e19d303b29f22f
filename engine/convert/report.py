"""What `flotilla convert` could not carry over, or carried over with a caveat.

Every step of the conversion appends `Finding`s to one `Report`; the command
prints them on stderr and as comments at the top of its output. A finding
names the document (`ClusterProfile/kyverno`), the field path in the Sveltos
input (`spec.helmCharts[0].values`, line:column for templates) and what
happened. Findings never quote Secret data: the caller passes no text for it.
Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import enum


class Level(enum.StrEnum):
    # Not in the output (or kept as written, so the output needs an edit).
    DROPPED = "not carried over"
    # In the output, but the meaning may differ: read it before applying.
    REVIEW = "review"


@dataclasses.dataclass(frozen=True)
class Finding:
    document: str
    path: str
    message: str
    level: Level = Level.DROPPED

    def line(self) -> str:
        """One line (a template quoted in the message keeps its newlines as \\n)."""
        where = f"{self.document} {self.path}".strip()
        return f"{where}: {self.level.value}: {self.message}".replace("\n", "\\n")


@dataclasses.dataclass
class Report:
    """The findings of one conversion, in the order they were made."""

    findings: list[Finding] = dataclasses.field(default_factory=list)
    document: str = ""

    def dropped(self, path: str, message: str) -> None:
        self.findings.append(Finding(self.document, path, message, Level.DROPPED))

    def review(self, path: str, message: str) -> None:
        self.findings.append(Finding(self.document, path, message, Level.REVIEW))

    def lines(self) -> list[str]:
        return [finding.line() for finding in self.findings]

    def count(self, level: Level) -> int:
        return sum(1 for finding in self.findings if finding.level is level)
