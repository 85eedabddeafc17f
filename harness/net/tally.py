"""Under --net: how many retransmissions the run's captures showed, as a line of the verdict."""

from __future__ import annotations

from typing import Any

import pytest

from harness.net.conditions import Conditions
from harness.wire.table import retransmissions
from harness.wire.tap import Wire

#: A test report's property: the retransmissions in its captures (set by the ``wire`` fixture).
RETRANSMISSIONS = "echolab.retransmissions"


def count(tap: Wire) -> int:
    """Retransmitted segments in a test's captures (Wireshark's ``[TCP Retransmission]``)."""
    return sum(retransmissions(capture.segments(), capture.port) for capture in tap.captures)


class Tally:
    """Sums the tests' retransmissions and says them before the verdict's last line."""

    def __init__(self, conditions: Conditions, *, on_ssh: bool = False) -> None:
        self.conditions = conditions
        #: On ssh the Pi's interface keeps its MTU (its SSH link shares it): the lab's MSS is clamped.
        mtu = conditions.mtu
        self.clamp = (
            f" (on ssh, mtu={mtu} is an MSS clamp to {mtu - 40}, the Pi keeps its MTU)" if on_ssh and mtu else ""
        )
        self.seen = 0
        self.tests = 0

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == RETRANSMISSIONS and report.when == "teardown":
                self.seen += int(str(value))
                self.tests += 1

    @pytest.hookimpl(trylast=True)  # after the verdict is judged
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        reporter: Any = session.config.pluginmanager.get_plugin("echolab-verdict")
        if reporter is None or reporter.verdict is None or not self.tests:
            return
        verdict = reporter.verdict
        echoes = [b for b in ("echo fidelity", "client: prints replies") if b in verdict.by_behaviour()]
        exact = ", every echo exact" if echoes and all(verdict.state(b) == "ok" for b in echoes) else ""
        reporter.notes.append(
            f"under {self.conditions}: {self.seen} retransmissions seen in {self.tests} tests{exact}{self.clamp}"
        )
