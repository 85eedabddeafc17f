"""What a test needs before it can judge anything, and what the run already knows is broken.

A test that cannot judge its behaviour (its capture failed, a behaviour it relies on is broken)
ends with ``NotJudged``: never a pass, never blamed on the behaviour it checks. The ``Board`` is
shared by every worker of a run, so once a test shows that, say, the echo is broken, the tests
that need a working echo end at once instead of each waiting out the same failure.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.evidence import headline

SERVER_START = "server start"
#: What each behaviour gives the tests that need it, for "not judged: ... (they need ...)".
PROVIDES = {
    SERVER_START: "a server that starts",
    "echo fidelity": "a working echo",
    "half-close": "an orderly close",
    "robustness": "a server that serves client after client",
    "listen backlog": "a working accept queue",
    "connection refused": "refusals",
    "lab client": "the lab client",
    "wire": "the capture",
    "client: connects": "a client that runs and connects",
    "client: sends lines": "a client that sends each line whole",
    "client: prints replies": "a client that prints each reply",
}
#: Every behaviour the suites judge (their ``behaviour`` markers; tests/unit/test_report.py checks
#: the list against them), for what names them before collection: a grader's --weights.
BEHAVIOURS = (
    *PROVIDES,
    "client: ends on EOF",
    "client: server closes",
    "client: refused",
)
PREFIX = "echolab-run-"
#: user properties of a behaviour test: set at collection
BEHAVIOUR = "behaviour"  # the behaviour it judges
NEEDS = "needs"  # everything it relies on, transitively
#: ... and at run time
STARTED_NOTHING = "server_start_failed"  # the server under test did not come up
NOT_JUDGED = "not_judged"  # the reason it could not judge
GATED_BY = "gated_by"  # the broken behaviour it needed
BOARD = pytest.StashKey["Board"]()
BOARD_KEY = "echolab_board"  # how xdist workers learn where the run's board is


class NotJudged(pytest.skip.Exception):  # type: ignore[misc,name-defined]  # a skip: no pass, no failure
    """The test could not judge its behaviour; ``reason`` says what it needed, ``gated_by`` names
    the broken behaviour it relied on, if that was the cause."""

    def __init__(self, reason: str, gated_by: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.gated_by = gated_by


def needs_text(behaviour: str) -> str:
    return PROVIDES.get(behaviour, behaviour)


def transitive(direct: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """Everything each behaviour needs, directly or through what it needs. If A needs B, A's set
    holds B's and B, so it is larger: ordering by size puts every need before what needs it."""
    found: dict[str, set[str]] = {}

    def visit(name: str, path: tuple[str, ...]) -> set[str]:
        if name in path:
            raise ValueError(f"behaviours need each other: {' -> '.join((*path, name))}")
        if name not in found:
            every: set[str] = set()
            for need in direct.get(name, ()):
                every |= {need, *visit(need, (*path, name))}
            found[name] = every
        return found[name]

    for name in list(direct):
        visit(name, ())
    return found


class Board:
    """Behaviours found broken so far in this run, one file each in a directory all workers see.

    Written by whichever worker sees a behaviour fail on its own; read before each test. The first
    writer's line (the failing test and its headline) is kept as the evidence a gated test cites.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def create(cls) -> Board:
        """A fresh board for a run; boards of runs whose process is gone are swept first."""
        sweep()
        return cls(Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")))

    def _path(self, behaviour: str) -> Path:
        return self.directory / re.sub(r"[^a-z0-9]+", "-", behaviour.lower())

    def mark_broken(self, behaviour: str, evidence: str) -> None:
        with (
            contextlib.suppress(FileExistsError, FileNotFoundError),  # another worker was first
            open(self._path(behaviour), "x", encoding="utf-8") as handle,
        ):
            handle.write(evidence)

    def broken(self, behaviour: str) -> str | None:
        """The evidence that ``behaviour`` is broken, or None."""
        try:
            return self._path(behaviour).read_text(encoding="utf-8") or "broken"
        except OSError:
            return None

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def sweep() -> None:
    """Remove boards left by runs that were killed outright (their pid no longer exists)."""
    for path in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        match = re.match(rf"{PREFIX}(\d+)-", path.name)
        if match is None or _alive(int(match.group(1))):
            continue
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def props_of(node: pytest.Item | pytest.TestReport) -> dict[str, Any]:
    return dict(node.user_properties)


class Gate:
    """Runs in every process: ends a test whose needs are known broken at once, as not judged, and
    puts a behaviour that failed on its own checks on the run's board for the tests that need it."""

    def __init__(self, board: Board) -> None:
        self.board = board

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        for need in props_of(item).get(NEEDS, ()):
            evidence = self.board.broken(need)
            if evidence is not None:
                raise NotJudged(f"needs {needs_text(need)}: {need} is broken ({evidence})", gated_by=need)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = props_of(report)
        if not report.failed or BEHAVIOUR not in props or GATED_BY in props:
            return
        behaviour = SERVER_START if props.get(STARTED_NOTHING) else props[BEHAVIOUR]
        if report.when != "call" and behaviour != SERVER_START:
            return  # the harness's own trouble in a fixture says nothing about the server
        if not any(self.board.broken(need) for need in props.get(NEEDS, ()) if need != behaviour):
            self.board.mark_broken(behaviour, f"{report.nodeid.split('::')[-1]}: {headline(report)}")


class BoardToWorkers:
    """xdist, in the controller: every worker gets the run's board."""

    def __init__(self, board: Board) -> None:
        self.board = board

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[BOARD_KEY] = str(self.board.directory)
