"""The reports' pytest side. Every process (an xdist worker, or the only one) keeps each test's
pcaps on disk and names them in the test's teardown report; the process that prints collects the
reports and, once the verdict is in, writes the HTML page, the grader's results.json and the
JUnit file's evidence."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from harness.errors import EcholabError
from harness.options import Options
from harness.report.model import CAPTURES, LAB_LADDER, Exhibit, Run
from harness.wire.tap import WIRE

#: The report's own copy of every pcap, under its directory.
PCAPS = "pcaps"


class Reports:
    """Registered in every process when a report is asked for (--report, --results-json, --junitxml)."""

    def __init__(self, options: Options, controller: bool) -> None:
        self.options = options
        self.controller = controller
        self.tests: dict[str, Exhibit] = {}
        self.started = time.monotonic()
        self.written: list[str] = []

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.when == "teardown":  # every fixture is done: the captures are complete
            kept = self._keep(item)
            if kept:
                report.user_properties.append((CAPTURES, kept))
            marker = item.get_closest_marker("lab_ladder")
            if marker is not None:
                report.user_properties.append((LAB_LADDER, int(marker.args[0])))
        return report

    def _keep(self, item: pytest.Item) -> list[list[Any]]:
        """[path, server port] of each of the test's captures: every one in the report's pcaps/ with
        --report, else those kept already (a failing test's, --keep-pcaps)."""
        tap = item.stash.get(WIRE, None)
        if tap is None:
            return []
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid.removeprefix("tests/")).strip("_")
        kept = []
        for i, capture in enumerate(tap.captures, 1):
            path = getattr(capture, "saved", None)
            if self.options.report is not None:
                path = self.options.report / PCAPS / f"{stem}-{i}.pcap"
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(capture.stop())
                except (OSError, EcholabError):  # the report then says the capture could not be read
                    logging.getLogger("echolab.report").exception("keeping the capture of port %s", capture.port)
            if path is not None:
                kept.append([str(path), capture.port])
        return kept

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """The controller keeps what the report needs of each phase before the verdict shortens
        the terminal's copies (a failure's whole evidence, the captures)."""
        if not self.controller:
            return
        test = self.tests.setdefault(report.nodeid, Exhibit(report.nodeid))
        test.add(report)

    @pytest.hookimpl(trylast=True)  # after the verdict is judged (harness/verdict.py) and JUnit written
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.controller:
            return
        verdict_plugin = session.config.pluginmanager.get_plugin("echolab-verdict")
        run = Run.of(verdict_plugin, self.tests, time.monotonic() - self.started)
        written = []
        if self.options.report is not None:
            from harness.report.page import write_page

            written.append(f"report: {write_page(run, self.options.report)}")
        if self.options.results_json is not None:
            from harness.report.gradescope import write_results

            written.append(f"results: {write_results(run, self.options.results_json, self.options.weights)}")
        xmlpath = session.config.option.xmlpath
        if xmlpath:
            from harness.report.junit import enrich

            enrich(Path(xmlpath), run, session.config.getini("junit_family"), session.config.option.junitprefix)
        self.written = written

    @pytest.hookimpl(trylast=True)  # after the verdict
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for line in self.written:
            terminalreporter.write_line(f"echolab {line}")
