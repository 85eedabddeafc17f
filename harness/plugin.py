"""The echolab pytest plugin (entry point ``pytest11``): its options, markers and hooks. The
fixtures are in harness/fixtures.py, what tests need in harness/gate.py, the verdict in
harness/verdict.py."""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Generator
from pathlib import Path

import pytest

from harness.backends import backend_class, local
from harness.cmdline import OPTIONS, add_options, parse_options, targets
from harness.errors import BackendUnavailableError, ConfigError, EcholabError, ServerStartError
from harness.evidence import evidence_of
from harness.gate import (
    BEHAVIOUR,
    BOARD,
    BOARD_KEY,
    GATED_BY,
    NEEDS,
    NOT_JUDGED,
    SERVER_START,
    Board,
    BoardToWorkers,
    Gate,
    NotJudged,
    props_of,
    transitive,
)
from harness.net.preflight import refuse, try_on
from harness.net.tally import Tally
from harness.options import Options
from harness.report.hooks import Reports
from harness.verdict import Reporter, notes, subject
from harness.wire.tap import WIRE

pytest_plugins = ["harness.fixtures"]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "behaviour(name): the lab behaviour a test judges, for the verdict")
    config.addinivalue_line(
        "markers", "needs(*behaviours): what the test relies on; if one is broken, the test is not judged"
    )
    config.addinivalue_line("markers", "serves(mode): only for servers that serve clients this way")
    config.addinivalue_line("markers", "judges(program): what the test judges, server (the default) or client")
    config.addinivalue_line("markers", "backlogs(*n): run with each listen backlog (or the server's own)")
    config.addinivalue_line(
        "markers", "lab_ladder(length): the HTML report shows the lab's Wireshark packets beside this test's ladder"
    )
    # The command log (harness/backends/base.py) is captured with every test: a failing test's
    # report shows the commands the harness ran for it. pytest's --log-level still rules if given.
    if config.getoption("log_level") is None:
        logging.getLogger("echolab").setLevel(logging.DEBUG)
    try:
        options = config.stash[OPTIONS] = parse_options(config)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    workerinput = getattr(config, "workerinput", None)
    board = config.stash[BOARD] = Board(Path(workerinput[BOARD_KEY])) if workerinput else Board.create()
    config.pluginmanager.register(Gate(board), "echolab-gate")
    if workerinput is None and config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(BoardToWorkers(board), "echolab-board")
    if workerinput is None:  # the process that prints
        labels = [target.label for target in targets(options)]
        config.pluginmanager.register(Reporter(subject(options, labels), notes(options)), "echolab-verdict")
        if options.net is not None:
            tally = Tally(options.net, on_ssh="ssh" in options.backends)
            config.pluginmanager.register(tally, "echolab-net-tally")
    if options.report is not None or options.results_json is not None or config.option.xmlpath:
        config.pluginmanager.register(Reports(options, controller=workerinput is None), "echolab-reports")


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and BOARD in config.stash:
        config.stash[BOARD].remove()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Shared slow work (image builds) once, in the controlling process, with visible progress. A
    backend the user named that cannot be used ends the run here, in one line, before any test."""
    config = session.config
    options = config.stash[OPTIONS]
    if "local" in options.backends and (hasattr(config, "workerinput") or not _distributed(config)):
        # Where tests run: this machine's agent and tcpdump start while pytest collects.
        local.warm_up(capture=options.wire)
    if hasattr(config, "workerinput"):  # an xdist worker: the controller has done it
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def say(line: str) -> None:
        if reporter is not None:
            reporter.write_line(f"echolab: {line}")

    # What stays applied for the whole run (--net on a Pi), taken off when pytest unconfigures:
    # also after a later backend's refusal, a failure or Ctrl-C.
    applied = contextlib.ExitStack()
    config.add_cleanup(applied.close)
    for name in options.backends:
        try:
            refuse(name, options)  # --net where the backend cannot take it at all
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
        try:
            backend_class(name).prepare(options, say)
        except (BackendUnavailableError, ConfigError) as exc:
            raise pytest.UsageError(f"--backend {name} cannot be used: {exc}") from None
        try:
            applied.enter_context(try_on(name, options, say))  # --net's commands, tried once where they would run
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None


def pytest_sessionfinish(session: pytest.Session) -> None:
    local.discard_warm()  # if no local test ran, nothing adopted it


def _distributed(config: pytest.Config) -> bool:
    """Whether this process hands the tests to xdist workers instead of running them."""
    return bool(getattr(config.option, "numprocesses", None)) and getattr(config.option, "dist", "") != "no"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    options = metafunc.config.stash[OPTIONS]
    if "target" in metafunc.fixturenames:
        found = targets(options)
        metafunc.parametrize("target", found, ids=[t.label for t in found], indirect=True, scope="session")
    marker = metafunc.definition.get_closest_marker("backlogs")
    if marker is not None and "backlog" in metafunc.fixturenames:
        command = options.server_cmd
        if command is None or command.takes_backlog:
            metafunc.parametrize("backlog", marker.args, ids=[f"backlog{n}" for n in marker.args])
        else:
            # The server chose its own listen() backlog; the test reads it off the kernel (ss).
            metafunc.parametrize("backlog", [None], ids=["own-backlog"])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tag each behaviour test with what it judges and everything it needs (directly, or through
    what those need); deselect what does not apply to the server under test; run the behaviours
    others need first, so a broken one is known before the tests that need it start."""
    options = config.stash[OPTIONS]
    keep, dropped = [], []
    direct: dict[pytest.Item, tuple[str, list[str]]] = {}
    for item in items:
        marker = item.get_closest_marker("behaviour")
        if marker is not None and not _applies(item, marker.args[0], options):
            dropped.append(item)
            continue
        keep.append(item)
        if marker is not None:
            needs = [name for mark in item.iter_markers("needs") for name in mark.args]
            if "start_server_on" in getattr(item, "fixturenames", ()):
                needs.append(SERVER_START)
            direct[item] = (marker.args[0], needs)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    graph: dict[str, set[str]] = defaultdict(set)
    for behaviour, needs in direct.values():
        graph[behaviour].update(needs)
    try:
        every = transitive(graph)
    except ValueError as exc:
        raise pytest.UsageError(f"echolab: {exc}") from None
    for item, (behaviour, needs) in direct.items():
        closed = dict.fromkeys([*needs, *(far for need in needs for far in sorted(every.get(need, ())))])
        item.user_properties.append((BEHAVIOUR, behaviour))
        item.user_properties.append((NEEDS, list(closed)))
    keep.sort(key=lambda item: len(every.get(direct[item][0], ())) if item in direct else 0)
    items[:] = keep


def _applies(item: pytest.Item, behaviour: str, options: Options) -> bool:
    if behaviour == "wire" and not options.wire:
        return False
    judges = item.get_closest_marker("judges")
    program = judges.args[0] if judges is not None else "server"
    if options.server_cmd is not None and options.client_cmd is None and program == "client":
        return False  # the reference client is not under test
    if options.client_cmd is not None and options.server_cmd is None and program == "server":
        return False  # nor is the reference server
    gate = item.get_closest_marker("serves")
    return gate is None or options.server_cmd is None or gate.args[0] == options.server_mode


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.excinfo is not None and BEHAVIOUR in props_of(item) and _harness_fault(call.excinfo.value):
        # The harness or its environment failed, not the program: never a verdict on the program.
        reason = f"the harness failed: {type(call.excinfo.value).__name__}: {call.excinfo.value}".split("\n")[0]
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, reason)
        report.user_properties.append((NOT_JUDGED, reason))
        return report
    if call.excinfo is not None and call.excinfo.errisinstance(NotJudged):
        exc: NotJudged = call.excinfo.value  # type: ignore[assignment]  # checked just above
        report.user_properties.append((NOT_JUDGED, exc.reason))
        if exc.gated_by is not None:
            report.user_properties.append((GATED_BY, exc.gated_by))
    if report.when != "call" or not report.failed or BEHAVIOUR not in props_of(item):
        return report
    if call.excinfo is not None and call.excinfo.errisinstance(AssertionError) and _plain(item.config):
        report.longrepr = evidence_of(call.excinfo.value)
    tap = item.stash.get(WIRE, None)
    if tap is not None and tap.captures:
        options = item.config.stash[OPTIONS]
        report.sections.append(("echolab packet capture", tap.report(options, item.nodeid.split("::")[-1])))
    return report


def _harness_fault(error: BaseException) -> bool:
    """An error of echolab's own or of its environment (a probe that crashed, a backend that went
    away), as opposed to the program under test's (ServerStartError) or a failed check."""
    return isinstance(error, EcholabError) and not isinstance(error, ServerStartError)


def _plain(config: pytest.Config) -> bool:
    """Whether a failed check is shown as its evidence alone (no traceback of the test's code)."""
    return config.option.tbstyle == "auto" and config.get_verbosity() < 2
