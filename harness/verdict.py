"""The verdict: per lab behaviour BROKEN, ok or not judged, with the root cause named first.

A behaviour is BROKEN only when one of its own checks failed. A test that fails while a behaviour
it needs is broken is collateral damage: it is reported as not judged, naming what it needed, and
its failure is shown in one line. The last line says PASS only when every behaviour was judged and
holds; anything else is FAIL or INCOMPLETE, and the exit status is then 1.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.evidence import headline
from harness.gate import (
    BEHAVIOUR,
    GATED_BY,
    NEEDS,
    NOT_JUDGED,
    SERVER_START,
    STARTED_NOTHING,
    needs_text,
    transitive,
)
from harness.options import Options


@dataclass
class Record:
    """One test as the verdict sees it, merged over its setup, call and teardown reports."""

    nodeid: str
    behaviour: str
    needs: tuple[str, ...]
    outcome: str = "passed"  # passed, failed, not judged
    reason: str = ""  # not judged: why; failed: the headline
    gated_by: str | None = None
    reports: list[Any] = field(default_factory=list)
    location: tuple[str, int] = ("", 0)  # where the test is written: failures are shown in that order

    @property
    def name(self) -> str:
        return self.nodeid.split("::")[-1]


def record_of(report: Any) -> tuple[str, tuple[str, ...]] | None:
    props = dict(getattr(report, "user_properties", []))
    if BEHAVIOUR not in props:
        return None
    return props[BEHAVIOUR], tuple(props.get(NEEDS, ()))


def merge(record: Record, report: Any) -> None:
    """Fold one phase's report into the test's record; the worst phase wins."""
    record.reports.append(report)
    record.location = (report.location[0], report.location[1] or 0)
    props = dict(report.user_properties)
    if report.failed and record.outcome != "failed":
        record.outcome = "failed"
        record.reason = headline(report)
        if props.get(STARTED_NOTHING):
            record.behaviour = SERVER_START
            record.needs = ()
        elif report.when != "call":  # a fixture of the harness failed: nothing about the server
            record.outcome = "not judged"
            record.reason = f"the harness failed in {report.when}: {record.reason}"
    elif report.skipped and record.outcome == "passed":
        record.outcome = "not judged"
        record.reason = str(props.get(NOT_JUDGED) or skip_reason(report))
        record.gated_by = props.get(GATED_BY)


def skip_reason(report: Any) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return str(text).removeprefix("Skipped: ")


@dataclass
class Verdict:
    """The judged run: which behaviours broke, which held, which could not be judged and why."""

    records: list[Record]
    order: list[str]  # behaviours, the ones others need first
    broken: list[str]

    def by_behaviour(self) -> dict[str, list[Record]]:
        found: dict[str, list[Record]] = defaultdict(list)
        for record in self.records:
            found[record.behaviour].append(record)
        return found

    def state(self, behaviour: str) -> str:
        records = self.by_behaviour()[behaviour]
        if behaviour in self.broken:
            return "BROKEN"
        if records and all(r.outcome == "passed" for r in records):
            return "ok"
        return "not judged"

    @property
    def not_judged(self) -> list[Record]:
        return [r for r in self.records if r.outcome == "not judged"]

    @property
    def passed(self) -> bool:
        return not self.broken and not self.not_judged and bool(self.records)


def judge(records: Iterable[Record]) -> Verdict:
    """Decide, behaviour by behaviour in the order of what they need, which ones are broken.

    A test is judged only when everything it needs holds: when a need is broken, its outcome
    (pass or fail) is no evidence about its own behaviour, and it becomes not judged, naming that
    need. A failure whose need was not judged at all (none of its tests passed) is not judged
    either. Needs are decided first (``rank``), so the verdict does not depend on the order the
    tests ran in, nor on which of them the run skipped early because a need was already broken.
    """
    records = list(records)
    order = rank(records)
    broken: list[str] = []
    unshown: set[str] = set()  # behaviours with tests, none of which passed or failed on its own
    for behaviour in order:
        mine = [r for r in records if r.behaviour == behaviour]
        for record in mine:
            if record.outcome == "not judged" and record.gated_by is None:
                continue
            gate = next((need for need in record.needs if need in broken), None)
            if gate is None and record.outcome == "failed":
                gate = next((need for need in record.needs if need in unshown), None)
            if gate is not None:
                state = "is broken" if gate in broken else "was not judged"
                found = f" (its failure here: {record.reason})" if record.outcome == "failed" else ""
                record.outcome = "not judged"
                record.gated_by = gate
                record.reason = f"needs {needs_text(gate)}: {gate} {state}{found}"
            elif record.outcome == "failed" and behaviour not in broken:
                broken.append(behaviour)
        if mine and all(r.outcome == "not judged" for r in mine):
            unshown.add(behaviour)
    return Verdict(records, order, broken)


def rank(records: Sequence[Record]) -> list[str]:
    """Behaviours in dependency order (a behaviour after every behaviour its tests need), then by name."""
    direct: dict[str, set[str]] = defaultdict(set)
    for record in records:
        direct[record.behaviour].update(record.needs)
    every = transitive(direct)
    return sorted(every, key=lambda b: (len(every[b]), b))


def exit_status(verdict: Verdict) -> int:
    return pytest.ExitCode.OK if verdict.passed else pytest.ExitCode.TESTS_FAILED


def lines(verdict: Verdict, subject: str) -> list[tuple[str, dict[str, bool]]]:
    """The verdict as terminal lines with their colours: one line per behaviour, then what could not
    be judged grouped by why, then the last line."""
    out: list[tuple[str, dict[str, bool]]] = [(f"system under test: {subject}", {})]
    grouped = verdict.by_behaviour()
    for behaviour in verdict.order:
        records = grouped.get(behaviour)
        if not records:
            continue
        state = verdict.state(behaviour)
        counts = _counts(records)
        colour = {"BROKEN": {"red": True}, "ok": {"green": True}}.get(state, {"yellow": True})
        out.append((f"  {state:<10} {behaviour:<24} {counts}", colour))
        if state == "BROKEN":
            first = min((r for r in records if r.outcome == "failed"), key=lambda r: r.location)
            out.append((f"  {'':<10} {'':<24} {first.name}: {first.reason}", {"red": True}))
    out.extend(_not_judged_lines(verdict))
    out.append(_last_line(verdict))
    return out


def _counts(records: Sequence[Record]) -> str:
    parts = []
    for outcome in ("failed", "passed", "not judged"):
        n = sum(1 for r in records if r.outcome == outcome)
        if n:
            parts.append(f"{n} {outcome}")
    failed = [r.name for r in sorted(records, key=lambda r: r.location) if r.outcome == "failed"]
    text = ", ".join(parts)
    if failed:
        text += ": " + ", ".join(failed[:3]) + (" ..." if len(failed) > 3 else "")
    return text


def _not_judged_lines(verdict: Verdict) -> list[tuple[str, dict[str, bool]]]:
    """'not judged: A, B (they need X)' per broken need; one line per other reason."""
    by_gate: dict[str, list[str]] = defaultdict(list)
    by_reason: dict[str, list[str]] = defaultdict(list)
    for record in verdict.not_judged:
        if record.gated_by is not None:
            by_gate[record.gated_by].append(record.behaviour)
        else:
            by_reason[record.reason].append(f"{record.behaviour}: {record.name}")
    out = []
    for gate, behaviours in by_gate.items():
        names = ", ".join(dict.fromkeys(behaviours))
        they = "it needs" if len(set(behaviours)) == 1 else "they need"
        state = "is broken" if gate in verdict.broken else "was not judged"
        out.append((f"not judged: {names} ({they} {needs_text(gate)}; {gate} {state})", {"yellow": True}))
    for reason, tests in by_reason.items():
        shown = ", ".join(tests[:3]) + (f" and {len(tests) - 3} more" if len(tests) > 3 else "")
        out.append((f"not judged: {shown}: {reason}", {"yellow": True}))
    return out


def _last_line(verdict: Verdict) -> tuple[str, dict[str, bool]]:
    if verdict.broken:
        return f"VERDICT: FAIL - broken: {', '.join(verdict.broken)}", {"red": True, "bold": True}
    if verdict.not_judged:
        names = ", ".join(dict.fromkeys(r.behaviour for r in verdict.not_judged))
        return f"VERDICT: INCOMPLETE - not judged: {names} (see above)", {"yellow": True, "bold": True}
    if not verdict.records:
        return "VERDICT: INCOMPLETE - no behaviour was checked", {"yellow": True, "bold": True}
    return "VERDICT: PASS - every behaviour was judged and holds", {"green": True, "bold": True}


class Reporter:
    """The verdict's pytest side, in the process that prints (the xdist controller, or the only one).

    It collects every behaviour test's reports, judges them when the session ends, files collateral
    failures under "not judged", puts the root cause's failure first (in full) and the rest in one
    line each (``-v`` shows them whole), sets the exit status, and prints the verdict last.
    """

    def __init__(self, subject: str, notes: Sequence[str] = ()) -> None:
        self.subject = subject
        self.notes = list(notes)
        self.records: dict[str, Record] = {}
        self.verdict: Verdict | None = None
        self.shortened = 0  # failures shown in one line

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        found = record_of(report)
        if found is not None:
            record = self.records.setdefault(report.nodeid, Record(report.nodeid, *found))
            merge(record, report)

    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, str] | None:
        if report.skipped and record_of(report) is not None:
            return "not judged", "n", "NOT JUDGED"
        return None

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.records:
            return
        self.verdict = judge(self.records.values())
        if not self.verdict.passed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            self._refile(reporter.stats, verbose=session.config.get_verbosity() > 0)

    def _refile(self, stats: dict[str, list[Any]], verbose: bool) -> None:
        """Collateral failures move to "not judged" in one line; the root cause's failure comes
        first and whole, the others follow in one line each unless ``verbose``."""
        assert self.verdict is not None
        collateral = {id(rep) for r in self.verdict.not_judged for rep in r.reports if rep.failed}
        for record in self.verdict.not_judged:
            for rep in record.reports:
                if rep.failed:
                    rep.longrepr = f"not judged: {record.reason}"
                    rep.sections = []
                    stats.setdefault("not judged", []).append(rep)
        for kind in ("failed", "error"):
            if kind in stats:
                stats[kind] = [rep for rep in stats[kind] if id(rep) not in collateral]
                if not stats[kind]:
                    del stats[kind]
        rank_of = {behaviour: i for i, behaviour in enumerate(self.verdict.broken)}

        def root_first(rep: Any) -> tuple[int, str, int]:
            """The most basic broken behaviour first; within it, the tests in the order they are
            written (simplest first), not the order parallel workers happened to finish them."""
            found = self.records.get(rep.nodeid)
            rank = rank_of.get(found.behaviour, len(rank_of)) if found else len(rank_of) + 1
            path, line, _ = rep.location
            return rank, path, line or 0

        failed = sorted(stats.get("failed", []), key=root_first)
        if failed:
            stats["failed"] = failed
        if not verbose:
            for rep in [r for r in failed if record_of(r) is not None][1:]:
                rep.longrepr = headline(rep)
                rep.sections = []
                self.shortened += 1

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int) -> None:
        if self.verdict is None:
            return
        terminalreporter.section("echolab verdict")
        rows = lines(self.verdict, self.subject)
        notes = [*self.notes]
        if self.shortened:
            notes.append(
                f"{self.shortened} failure(s) after the root cause's are shown in one line each; -v shows them whole"
            )
        for note in notes:
            rows.insert(-1, (note, {}))
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            rows[-1] = ("VERDICT: INCOMPLETE - the run was interrupted", {"yellow": True, "bold": True})
        for text, colour in rows:
            terminalreporter.write_line(text, **colour)


def subject(options: Options, labels: list[str]) -> str:
    """What the verdict is about: the user's server and client, or the reference ones, on which targets."""
    what = [f"{c.OPTION} {c.template!r}" for c in (options.server_cmd, options.client_cmd) if c is not None]
    return f"{' and '.join(what) or 'the reference server and client'} ({', '.join(labels)})"


def notes(options: Options) -> list[str]:
    """What the run left out on purpose, said before the last line."""
    found = []
    if not options.wire:
        found.append("wire: not checked (--wire off)")
    if options.server_cmd is not None:
        other = "concurrent" if options.server_mode == "iterative" else "iterative"
        found.append(f"checks for {other} servers: not run (the server is {options.server_mode}: --server-mode)")
        if options.client_cmd is None:
            found.append("client checks: not run (no --client-cmd: only your server is under test)")
    elif options.client_cmd is not None:
        found.append("server checks: not run (no --server-cmd: only your client is under test)")
    return found
