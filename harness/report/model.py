"""What every report is written from: the judged run, behaviour by behaviour, and each test's
outcome, evidence and captures (as plain data: xdist carries it from the workers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.verdict import Record, Verdict, lines

#: user properties of a test's teardown report: [[pcap path, server port], ...] and, for the lab's
#: exchange, the message length of the lab's ladder it is shown beside.
CAPTURES = "echolab_captures"
LAB_LADDER = "echolab_lab_ladder"
#: Evidence longer than this is cut in the reports (a traceback of a harness fault, say).
EVIDENCE_LIMIT = 20_000


@dataclass
class Exhibit:
    """One test as its reports show it, merged over setup, call and teardown."""

    nodeid: str
    evidence: str = ""
    captures: list[tuple[str, int]] = field(default_factory=list)
    lab_ladder: int | None = None
    seconds: float = 0.0

    def add(self, report: Any) -> None:
        self.seconds += float(getattr(report, "duration", 0.0) or 0.0)
        if report.failed and not self.evidence:
            self.evidence = _text(report.longrepr)
        for name, value in report.user_properties:
            if name == CAPTURES:
                self.captures.extend((str(path), int(port)) for path, port in value)
            elif name == LAB_LADDER:
                self.lab_ladder = int(value)


def _text(longrepr: Any) -> str:
    text = str(longrepr) if longrepr is not None else ""
    return text if len(text) <= EVIDENCE_LIMIT else text[:EVIDENCE_LIMIT] + "\n... (cut; the terminal has it whole)"


@dataclass
class Run:
    """The judged run: the verdict's lines, the state of each behaviour and its tests, in order."""

    subject: str
    lines: list[tuple[str, str]]  # text, and its class: bad, good, warn or plain
    behaviours: list[tuple[str, str, list[Record]]]  # name, BROKEN/ok/not judged, its tests
    tests: dict[str, Exhibit]
    seconds: float
    passed: bool

    @classmethod
    def of(cls, verdict_plugin: Any, tests: dict[str, Exhibit], seconds: float) -> Run:
        verdict: Verdict | None = getattr(verdict_plugin, "verdict", None)
        subject = str(getattr(verdict_plugin, "subject", ""))
        if verdict is None:
            text = "VERDICT: INCOMPLETE - no behaviour was checked"
            return cls(subject, [(text, "warn")], [], tests, seconds, passed=False)
        rows = lines(verdict, subject)
        for note in getattr(verdict_plugin, "notes", []):
            rows.insert(-1, (note, {}))
        styled = [(text, _style(colour)) for text, colour in rows]
        grouped = verdict.by_behaviour()
        behaviours = [
            (name, verdict.state(name), sorted(grouped[name], key=lambda r: r.location))
            for name in verdict.order
            if grouped.get(name)
        ]
        return cls(subject, styled, behaviours, tests, seconds, passed=verdict.passed)

    def evidence(self, record: Record) -> Exhibit:
        return self.tests.get(record.nodeid) or Exhibit(record.nodeid)


def _style(colour: dict[str, bool]) -> str:
    for name, style in (("red", "bad"), ("green", "good"), ("yellow", "warn")):
        if colour.get(name):
            return style
    return "plain"
